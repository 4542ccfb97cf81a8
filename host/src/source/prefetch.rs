//! Reading a file source ahead on a thread of its own, so that reading and parsing the next batch overlaps the operators' work on this one.
//!
//! The task sees the same source as without it: batches in order, and [`Prefetching::offset`] is
//! the end of the last batch *handed out*, never of one read ahead, so a checkpoint records exactly
//! what the operators have seen. Batches read ahead are plain input: a crash forgets them, a
//! [`Prefetching::seek`] discards them. Source deduplication stays in the task, after the hand-over,
//! so no state runs ahead of the checkpoint either.

use super::file::FileSource;
use super::{ReadStatus, SourceBatch, SourceError};
use std::sync::mpsc::{Receiver, Sender, SyncSender, TryRecvError, channel, sync_channel};
use std::thread::JoinHandle;

/// Batches read ahead at most (besides the one being read): enough to hide a slow read, few
/// enough that memory stays a few batches' worth.
const AHEAD: usize = 2;

/// What the reading thread hands over: a batch, tagged with the seek it follows.
struct Ahead {
    generation: u64,
    read: Result<(ReadStatus, SourceBatch), SourceError>,
}

/// A file source read ahead by its own thread.
pub struct Prefetching {
    seeks: Sender<(u64, u64)>,
    batches: Receiver<Ahead>,
    /// Buffers of batches the task is done with, for the reader to fill again.
    spares: SyncSender<SourceBatch>,
    /// Seeks asked for; batches of an earlier generation are stale.
    generation: u64,
    /// End of the last batch handed out (or where the last seek went).
    offset: u64,
    /// The reading thread, joined on drop.
    thread: Option<JoinHandle<()>>,
    /// The file it reads, for fingerprints.
    input: super::file::InputFile,
}

impl Prefetching {
    /// Starts reading `source` ahead, `max_records` records a batch.
    pub fn start(source: FileSource, max_records: u32) -> Prefetching {
        let offset = source.offset();
        let input = source.input().clone();
        let (seeks, seek_requests) = channel();
        let (ahead, batches) = sync_channel(AHEAD);
        let (spares, spare_buffers) = sync_channel(AHEAD + 1);
        let thread = std::thread::Builder::new()
            .name(format!("read-ahead {}", source.name()))
            .spawn(move || read_ahead(source, max_records, seek_requests, ahead, spare_buffers))
            .expect("spawning a read-ahead thread");
        Prefetching { seeks, batches, spares, generation: 0, offset, thread: Some(thread), input }
    }

    /// What the file holds just before `offset` (see [`super::file::check_resume_point`]).
    pub fn input_fingerprint(&self, offset: u64) -> Result<crate::checkpoint::format::InputFingerprint, SourceError> {
        self.input.fingerprint(offset)
    }

    /// The next batch, as [`FileSource::read_batch`] would have read it.
    pub fn read_batch(&mut self, batch: &mut SourceBatch) -> Result<ReadStatus, SourceError> {
        loop {
            let Ok(Ahead { generation, read }) = self.batches.recv() else {
                unreachable!("the read-ahead thread ended while its source was in use");
            };
            if generation != self.generation {
                continue; // read before the last seek
            }
            let (status, next) = read?;
            let done = std::mem::replace(batch, next);
            let _ = self.spares.try_send(done);
            self.offset = batch.end_offset;
            return Ok(status);
        }
    }

    /// Where the next batch handed out starts: what a checkpoint records.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Reads from `offset` on; batches read ahead from elsewhere are dropped.
    pub fn seek(&mut self, offset: u64) -> Result<(), SourceError> {
        self.generation += 1;
        self.offset = offset;
        self.seeks.send((self.generation, offset)).expect("the read-ahead thread runs while its source is in use");
        Ok(())
    }
}

impl Drop for Prefetching {
    fn drop(&mut self) {
        // Closing the channels ends the thread at its next hand-over or wait.
        let (seeks, _) = channel();
        drop(std::mem::replace(&mut self.seeks, seeks));
        let (_, batches) = sync_channel(0);
        drop(std::mem::replace(&mut self.batches, batches));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The reading thread: batches until the input ends or reading fails, then waits for a seek.
fn read_ahead(
    mut source: FileSource,
    max_records: u32,
    seeks: Receiver<(u64, u64)>,
    ahead: SyncSender<Ahead>,
    spares: Receiver<SourceBatch>,
) {
    let mut generation = 0;
    let mut waiting = false;
    loop {
        let seek = if waiting {
            match seeks.recv() {
                Ok(seek) => Some(seek),
                Err(_) => return,
            }
        } else {
            match seeks.try_recv() {
                Ok(seek) => Some(seek),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => return,
            }
        };
        if let Some((asked, offset)) = seek {
            generation = asked;
            waiting = false;
            if let Err(e) = source.seek(offset) {
                waiting = true;
                if ahead.send(Ahead { generation, read: Err(e) }).is_err() {
                    return;
                }
            }
            continue;
        }
        let mut batch = spares.try_recv().unwrap_or_default();
        let read = source.read_batch(max_records, &mut batch).map(|status| (status, batch));
        waiting = !matches!(read, Ok((ReadStatus::More, _)));
        if ahead.send(Ahead { generation, read }).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::FileSourcePlan;
    use std::io::Write as _;

    fn lines(n: usize) -> (tempfile::NamedTempFile, Vec<u64>) {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        let mut starts = Vec::new();
        let mut at = 0u64;
        for i in 0..n {
            let line = format!("{{\"id\":\"r{i}\",\"t\":{i}}}\n");
            starts.push(at);
            at += line.len() as u64;
            file.write_all(line.as_bytes()).unwrap();
        }
        starts.push(at);
        (file, starts)
    }

    fn open(path: &std::path::Path, offset: u64) -> FileSource {
        let plan = FileSourcePlan {
            path: path.to_path_buf(),
            key_field: Some("id".into()),
            event_time_field: Some("t".into()),
            follow: false,
            poll_interval: std::time::Duration::from_millis(10),
            dedup: None,
            max_record_bytes: crate::graph::DEFAULT_MAX_RECORD_BYTES,
        };
        FileSource::open("s", &plan, offset, false).unwrap()
    }

    /// Every batch a source hands out, as (status, offsets, end_offset), until the end.
    fn drain(read: &mut dyn FnMut(&mut SourceBatch) -> ReadStatus) -> Vec<(ReadStatus, Vec<u64>, u64)> {
        let mut out = Vec::new();
        let mut batch = SourceBatch::default();
        loop {
            let status = read(&mut batch);
            out.push((status, batch.offsets.clone(), batch.end_offset));
            if status == ReadStatus::End {
                return out;
            }
        }
    }

    #[test]
    fn hands_out_what_the_file_source_reads_and_its_offset_is_the_last_handed_out() {
        let (file, starts) = lines(1000);
        let mut plain = open(file.path(), 0);
        let expected = drain(&mut |b| plain.read_batch(64, b).unwrap());
        let mut ahead = Prefetching::start(open(file.path(), 0), 64);
        assert_eq!(ahead.offset(), 0);
        let mut batch = SourceBatch::default();
        assert_eq!(ahead.read_batch(&mut batch).unwrap(), ReadStatus::More);
        // However far the thread has read, the offset is the first batch's end.
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert_eq!(ahead.offset(), starts[64]);
        let mut ahead = Prefetching::start(open(file.path(), 0), 64);
        assert_eq!(drain(&mut |b| ahead.read_batch(b).unwrap()), expected);
        assert_eq!(ahead.offset(), *starts.last().unwrap());
    }

    #[test]
    fn a_seek_drops_what_was_read_ahead_even_after_the_end() {
        let (file, starts) = lines(300);
        let mut ahead = Prefetching::start(open(file.path(), 0), 100);
        let mut batch = SourceBatch::default();
        ahead.read_batch(&mut batch).unwrap();
        ahead.read_batch(&mut batch).unwrap();
        // Back to record 50, as a rewind after a fault does.
        ahead.seek(starts[50]).unwrap();
        assert_eq!(ahead.offset(), starts[50]);
        assert_eq!(ahead.read_batch(&mut batch).unwrap(), ReadStatus::More);
        assert_eq!(batch.offsets, starts[50..150]);
        // Read to the end, then back again: the waiting thread reads once more.
        let rest = drain(&mut |b| ahead.read_batch(b).unwrap());
        assert_eq!(rest.last().unwrap().2, starts[300]);
        ahead.seek(starts[290]).unwrap();
        assert_eq!(ahead.read_batch(&mut batch).unwrap(), ReadStatus::End);
        assert_eq!(batch.offsets, starts[290..300]);
    }

    #[test]
    fn a_source_dropped_mid_file_stops_its_thread() {
        let (file, _) = lines(10_000);
        let mut ahead = Prefetching::start(open(file.path(), 0), 10);
        let mut batch = SourceBatch::default();
        ahead.read_batch(&mut batch).unwrap();
        drop(ahead); // joins the thread: a hang here fails the test run
    }
}
