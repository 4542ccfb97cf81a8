//! A Kafka source read whole by one task (`assignment = "all"`): every partition, merged into one stream in event-time order that does not depend on how fetches interleave.
//!
//! Operators that relate records to each other (the correlator screens all pairs) must see every
//! record of the topic. Reading several partitions in whatever order fetches return them would make
//! results depend on timing: which of two duplicates wins, which record is late. So the merge is a
//! function of the partitions' contents alone, as Kafka Streams' task merge is: it always hands on the
//! head with the smallest key (ties: the lower partition; a record without a readable event time, or a
//! reject, goes as soon as it is a head), and while a partition has at most [`LOOKAHEAD`] items
//! buffered and has not reported its end it waits for more before choosing.
//!
//! A head's key is its event time or, if smaller, the median of the event times of the head and the
//! `LOOKAHEAD` records behind it: in a partition in event-time order, its own time, so a sorted
//! partition's order stays exact (a candidates topic's window order relies on it). One record's own time
//! is not to be trusted: a malformed record or a wrong clock stamped minutes or years ahead would hold
//! its whole partition back until every other partition had passed that time, and everything after it
//! in its partition would come late (seen: one malformed record 17 minutes ahead made 57,409 of 72,970
//! observations late; keying such a head by the earliest of the records behind it still left 3.5% late
//! where the file's order has 0.5%, as a sensor whose clock runs ahead puts several such records close
//! together). The median of five ignores two records out of place.
//!
//! A partition that has reached its end stops holding the merge back: at once with `--stop-at-end`,
//! else once it has had nothing to read for `idle_timeout` (a live topic's quiet partition; from then
//! on its records can arrive after later ones of other partitions, as in Flink with idleness).
//!
//! A position in the merged stream is the count of items (records and rejects) handed on before it;
//! positions are what the task's batches, checkpoints and rewinds count in. Each position maps to one
//! (partition, offset): a checkpoint records the merge's frontier (per partition, the first offset not
//! handed on) with its position, and a rewind re-reads every partition from the frontier, which merges
//! into the same stream again.

use super::kafka::{Decoded, decode};
use super::{Origin, ReadStatus, Reject, SourceBatch, SourceError};
use crate::graph::KafkaSourcePlan;
use crate::kafka;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use sda_wire::BatchWriter;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Messages taken from a partition's queue at a time, when it has none left: what waits outside librdkafka, whose
/// own prefetch limits (`queued.min.messages`, `queued.max.messages.kbytes`, per partition) bound the rest.
const TAKEN_PER_FILL: usize = 256;
/// How many records behind a head make, with it, the partition's time (their median): two records out of
/// place among the five (a wrong clock ahead, a late one behind) do not move it.
pub const LOOKAHEAD: usize = 4;
/// Frontiers of recent checkpoints kept, for rewinds to them.
const MARKS_KEPT: usize = 16;

/// The merge's frontier: per partition (by index), the first offset not handed on.
pub type Frontier = Vec<u64>;

/// A record or a reject, owned, waiting in its partition's queue.
struct Item {
    offset: u64,
    /// The merge key: the record's event time; `i64::MIN` (go as soon as it is a head) for a reject or a
    /// record without one, whatever came before it, so that the key never depends on where a read began.
    merge_key: i64,
    kind: ItemKind,
}

enum ItemKind {
    Record { event_time: i64, key: Vec<u8>, payload: Vec<u8>, headers: Vec<(Vec<u8>, Vec<u8>)> },
    Reject(Reject),
}

/// What the merge knows of one partition.
#[derive(Default)]
struct PartitionState {
    buffered: VecDeque<Item>,
    /// The first offset not handed on (what a checkpoint records).
    next_offset: u64,
    /// Where the read after the buffered items continues: messages before it are stale (fetched before a rewind).
    fetch_offset: u64,
    /// When the partition last reported its end with nothing read since; `None` while it has more.
    at_end_since: Option<Instant>,
}

/// Every partition of a topic, merged by event time (see the module docs).
pub struct MergedKafkaSource {
    name: String,
    topic: String,
    /// Each partition's own queue, split from the consumer's, so that the merge reads exactly the partition it
    /// waits for, and nothing else piles up meanwhile. (Declared before `consumer`: dropped before it.)
    queues: Vec<rdkafka::consumer::base_consumer::PartitionQueue<kafka::EndReadingContext>>,
    consumer: kafka::AssignedReader<kafka::EndReadingContext>,
    partitions: Vec<PartitionState>,
    /// Items handed on so far.
    position: u64,
    event_time_field: Option<String>,
    max_record_bytes: u64,
    stop_at_end: bool,
    idle_timeout: Duration,
    /// The frontier where the last batch began, and the origin of each item it handed on: enough to
    /// name the frontier at any position inside it (a checkpoint after part of a batch).
    batch_start: (u64, Frontier),
    batch_items: Vec<(u32, u64)>,
    /// Frontiers recorded for checkpoints, newest last: where a rewind may go.
    marks: VecDeque<(u64, Frontier)>,
}

impl MergedKafkaSource {
    /// Opens every partition of the topic at `start`: a checkpoint's position and frontier (partitions it does not
    /// list, added to the topic since, start at their beginning), or the beginning of everything.
    pub fn open(
        name: &str,
        plan: &KafkaSourcePlan,
        start: Option<(u64, &[(u32, u64)])>,
        stop_at_end: bool,
        idle_timeout: Duration,
    ) -> Result<MergedKafkaSource, SourceError> {
        let err = |message: String| SourceError::Kafka { source_name: name.to_string(), message };
        let count =
            kafka::check_topic(&plan.brokers, &plan.topic, &plan.librdkafka, plan.connect_timeout).map_err(|e| err(e.to_string()))?;
        if let Some((_, frontier)) = start
            && let Some(&(p, _)) = frontier.iter().find(|(p, _)| *p as usize >= count)
        {
            return Err(err(format!(
                "the checkpoint has read partition {p} of topic `{}`, which now has {count} partitions: a topic's partitions cannot be \
                 removed, so this is another topic; start afresh (another `checkpoint.dir`) to read it",
                plan.topic
            )));
        }
        let mut config = kafka::client_config(&plan.brokers, &plan.librdkafka);
        // Reading only: no group membership, no commits. Every partition's end is reported, so that
        // a partition with nothing to read can stop holding the merge back.
        config
            .set("group.id", format!("{}-reader", plan.group_id))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .set("auto.offset.reset", "earliest");
        if stop_at_end {
            kafka::wait_briefly_at_the_end(&mut config, &plan.librdkafka);
        }
        let consumer: BaseConsumer<kafka::EndReadingContext> =
            config.create_with_context(kafka::EndReadingContext).map_err(|e| err(e.to_string()))?;
        let (position, frontier) = match start {
            Some((position, listed)) => {
                let mut frontier = vec![0; count];
                for &(p, offset) in listed {
                    frontier[p as usize] = offset;
                }
                (position, frontier)
            }
            None => (0, vec![0; count]),
        };
        let mut source = MergedKafkaSource {
            name: name.to_string(),
            topic: plan.topic.clone(),
            queues: Vec::new(),
            consumer: kafka::AssignedReader::new(consumer),
            partitions: (0..count).map(|_| PartitionState::default()).collect(),
            position,
            event_time_field: plan.event_time_field.clone(),
            max_record_bytes: plan.max_record_bytes,
            stop_at_end,
            idle_timeout,
            batch_start: (position, frontier.clone()),
            batch_items: Vec::new(),
            marks: VecDeque::from([(position, frontier.clone())]),
        };
        source.assign(&frontier)?;
        tracing::info!(source = name, topic = %plan.topic, partitions = count, position, "reading every partition, merged by event time");
        Ok(source)
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The position of the next item: where to resume.
    pub fn offset(&self) -> u64 {
        self.position
    }

    /// The frontier at `position` (for a checkpoint there), remembered as a place to rewind to.
    pub fn frontier_at(&mut self, position: u64) -> Result<Vec<(u32, u64)>, SourceError> {
        let frontier = self.find_frontier(position)?;
        if self.marks.back().is_none_or(|(p, _)| *p != position) {
            self.marks.push_back((position, frontier.clone()));
            if self.marks.len() > MARKS_KEPT {
                self.marks.pop_front();
            }
        }
        Ok(frontier.iter().enumerate().map(|(p, &o)| (p as u32, o)).collect())
    }

    /// Moves the next read to `position` (a checkpoint's, or inside the last batch): every partition
    /// is read again from the frontier there.
    pub fn seek(&mut self, position: u64) -> Result<(), SourceError> {
        let frontier = self.find_frontier(position)?;
        self.assign(&frontier)?;
        self.position = position;
        self.batch_start = (position, frontier);
        self.batch_items.clear();
        Ok(())
    }

    fn find_frontier(&self, position: u64) -> Result<Frontier, SourceError> {
        let (start, ref start_frontier) = self.batch_start;
        if (start..=start + self.batch_items.len() as u64).contains(&position) {
            let mut frontier = start_frontier.clone();
            for &(p, offset) in &self.batch_items[..(position - start) as usize] {
                frontier[p as usize] = offset + 1;
            }
            return Ok(frontier);
        }
        match self.marks.iter().rev().find(|(p, _)| *p == position) {
            Some((_, frontier)) => Ok(frontier.clone()),
            None => Err(SourceError::Kafka {
                source_name: self.name.clone(),
                message: format!("cannot go back to position {position} of the merged partitions: no checkpoint or batch there"),
            }),
        }
    }

    /// Assigns every partition at `frontier`, dropping whatever was buffered, and splits off each one's queue
    /// (an assignment undoes earlier splits).
    fn assign(&mut self, frontier: &[u64]) -> Result<(), SourceError> {
        let mut tpl = TopicPartitionList::new();
        for (p, &offset) in frontier.iter().enumerate() {
            tpl.add_partition_offset(&self.topic, p as i32, Offset::Offset(offset as i64)).map_err(|e| self.error(e))?;
        }
        self.queues.clear();
        self.consumer.assign(&tpl).map_err(|e| self.error(e))?;
        for p in 0..frontier.len() {
            let queue = self.consumer.shared().split_partition_queue(&self.topic, p as i32);
            self.queues.push(queue.ok_or_else(|| self.error(format!("cannot read partition {p} on its own")))?);
        }
        for (state, &offset) in self.partitions.iter_mut().zip(frontier) {
            *state = PartitionState { next_offset: offset, fetch_offset: offset, ..PartitionState::default() };
        }
        Ok(())
    }

    fn error(&self, e: impl std::fmt::Display) -> SourceError {
        SourceError::Kafka { source_name: self.name.clone(), message: e.to_string() }
    }

    /// Hands on up to `max_records` items in merge order, waiting briefly for partitions that hold the merge back.
    pub fn read_batch(&mut self, max_records: u32, batch: &mut SourceBatch) -> Result<ReadStatus, SourceError> {
        let mut writer = BatchWriter::reuse(std::mem::take(&mut batch.packed));
        batch.offsets.clear();
        batch.rejects.clear();
        batch.origins.clear();
        let frontier: Frontier = self.partitions.iter().map(|q| q.next_offset).collect();
        self.batch_start = (self.position, frontier);
        self.batch_items.clear();
        // A partition the merge does not wait for (idle, or at its end) is looked at once a batch, so that what
        // arrives on it joins the merge.
        self.fill_empty();
        let deadline = Instant::now() + Duration::from_millis(100);
        let status = loop {
            if writer.len() >= max_records {
                break ReadStatus::More;
            }
            match self.next_partition() {
                Next::Take(p) => {
                    let item = self.partitions[p].buffered.pop_front().expect("a head was chosen");
                    self.partitions[p].next_offset = item.offset + 1;
                    let position = self.position;
                    self.position += 1;
                    self.batch_items.push((p as u32, item.offset));
                    batch.origins.push(Origin { position, partition: p as u32, offset: item.offset });
                    match item.kind {
                        ItemKind::Record { event_time, key, payload, headers } => {
                            let headers: Vec<(&[u8], &[u8])> = headers.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
                            writer.push(None, event_time, &key, &payload, headers);
                            batch.offsets.push(position);
                        }
                        ItemKind::Reject(reject) => batch.rejects.push(Reject { offset: position, ..reject }),
                    }
                }
                Next::End => break ReadStatus::End,
                Next::Wait(waited_for) => {
                    let now = Instant::now();
                    if now >= deadline {
                        break if writer.is_empty() && batch.rejects.is_empty() { ReadStatus::Idle } else { ReadStatus::More };
                    }
                    let wait = (deadline - now).min(Duration::from_millis(20));
                    match waited_for {
                        Some(p) => self.fill(p, wait),
                        None => {
                            // Every partition idle: look at each, then wait a little before looking again.
                            if !self.fill_empty() {
                                std::thread::sleep(wait.min(Duration::from_millis(5)));
                            }
                        }
                    }
                }
            }
        };
        self.serve_consumer();
        batch.count = writer.len();
        batch.packed = writer.finish();
        batch.end_offset = self.position;
        Ok(status)
    }

    /// Which partition's head goes next, if the merge can choose now.
    fn next_partition(&self) -> Next {
        let mut best: Option<(i64, usize)> = None;
        for (p, queue) in self.partitions.iter().enumerate() {
            if queue.buffered.len() <= LOOKAHEAD && self.holds_back(queue) {
                // Its head's key depends on the records behind it (or on the partition's end).
                return Next::Wait(Some(p));
            }
            if let Some(key) = head_key(&queue.buffered)
                && best.is_none_or(|(t, _)| key < t)
            {
                best = Some((key, p));
            }
        }
        match best {
            Some((_, p)) => Next::Take(p),
            // Every partition empty and none holding back: at their ends, or idle.
            None if self.stop_at_end => Next::End,
            None => Next::Wait(None),
        }
    }

    /// Whether a partition with too little buffered must be waited for: it may still have a record that
    /// goes first (or that decides its head's key), unless it has reported its end (with `--stop-at-end`),
    /// or its end and then `idle_timeout` of nothing.
    fn holds_back(&self, queue: &PartitionState) -> bool {
        match queue.at_end_since {
            None => true,
            Some(since) => !self.stop_at_end && since.elapsed() < self.idle_timeout,
        }
    }

    /// Takes what partition `p`'s queue has (waiting up to `wait` for the first message), up to [`TAKEN_PER_FILL`],
    /// or notes that the partition is at its end.
    fn fill(&mut self, p: usize, wait: Duration) {
        let mut wait = wait;
        for _ in 0..TAKEN_PER_FILL {
            match self.queues[p].poll(wait) {
                None => return,
                Some(Err(KafkaError::PartitionEOF(_))) => {
                    self.partitions[p].at_end_since.get_or_insert_with(Instant::now);
                    return;
                }
                Some(Err(e)) => {
                    // Transport problems are retried by the client; say so and go on.
                    tracing::warn!(source = %self.name, partition = p, error = %e, "consumer error (retried)");
                    return;
                }
                Some(Ok(message)) => enqueue(&mut self.partitions[p], &message, self.event_time_field.as_deref(), self.max_record_bytes),
            }
            wait = Duration::ZERO;
        }
    }

    /// Takes, without waiting, what the queues of partitions with at most [`LOOKAHEAD`] items buffered have (a
    /// head's key needs the records behind it); says whether anything came.
    fn fill_empty(&mut self) -> bool {
        let mut any = false;
        for p in 0..self.partitions.len() {
            let before = self.partitions[p].buffered.len();
            if before <= LOOKAHEAD {
                self.fill(p, Duration::ZERO);
                any |= self.partitions[p].buffered.len() > before;
            }
        }
        any
    }

    /// Serves the consumer's own queue: its callbacks and errors, and any message fetched for a partition before its
    /// queue was split off.
    fn serve_consumer(&mut self) {
        while let Some(polled) = self.consumer.poll(Duration::ZERO) {
            match polled {
                Ok(message) => {
                    if let Some(state) = self.partitions.get_mut(message.partition() as usize) {
                        enqueue(state, &message, self.event_time_field.as_deref(), self.max_record_bytes);
                    }
                }
                Err(KafkaError::PartitionEOF(p)) => {
                    if let Some(state) = self.partitions.get_mut(p as usize) {
                        state.at_end_since.get_or_insert_with(Instant::now);
                    }
                }
                Err(e) => tracing::warn!(source = %self.name, error = %e, "consumer error (retried)"),
            }
        }
    }
}

/// The merge key of a partition's head: the smaller of its event time and the median of the readable
/// event times among the head and the up to [`LOOKAHEAD`] items behind it (the lower middle of an even
/// count), or `i64::MIN` for a head without one (see the module docs). In a partition in event-time order
/// that is the head's own time. Decided by the partition's contents alone, so that a rewind or a restart
/// merges the same way.
fn head_key(buffered: &VecDeque<Item>) -> Option<i64> {
    let head = buffered.front()?.merge_key;
    if head == i64::MIN {
        return Some(head);
    }
    // Asked for every partition before every record handed on: no allocation.
    let mut times = [0i64; LOOKAHEAD + 1];
    let mut count = 0;
    for key in buffered.iter().take(LOOKAHEAD + 1).map(|item| item.merge_key).filter(|&k| k != i64::MIN) {
        times[count] = key;
        count += 1;
    }
    let times = &mut times[..count];
    times.sort_unstable();
    Some(head.min(times[(count - 1) / 2]))
}

/// Queues a message read from its partition, unless it was fetched before a rewind.
fn enqueue(state: &mut PartitionState, message: &BorrowedMessage<'_>, event_time_field: Option<&str>, max_record_bytes: u64) {
    let offset = message.offset() as u64;
    if offset < state.fetch_offset {
        return;
    }
    state.fetch_offset = offset + 1;
    state.at_end_since = None;
    let item = match decode(message, event_time_field, max_record_bytes) {
        Decoded::Record { event_time, key, payload, headers } => Item {
            offset,
            merge_key: event_time.unwrap_or(i64::MIN),
            kind: ItemKind::Record {
                event_time: event_time.unwrap_or(0),
                key: key.to_vec(),
                payload: payload.to_vec(),
                headers: headers.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect(),
            },
        },
        Decoded::Reject(reject) => Item { offset, merge_key: i64::MIN, kind: ItemKind::Reject(reject) },
    };
    state.buffered.push_back(item);
}

enum Next {
    /// This partition's head is next.
    Take(usize),
    /// Partition `p` has nothing buffered and may still have a record that goes first: read it. (`None`:
    /// every partition is idle.)
    Wait(Option<usize>),
    /// `--stop-at-end`: every partition is read to its end.
    End,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(keys: &[i64]) -> VecDeque<Item> {
        (keys.iter().enumerate())
            .map(|(i, &k)| Item {
                offset: i as u64,
                merge_key: k,
                kind: ItemKind::Record { event_time: k, key: Vec::new(), payload: Vec::new(), headers: Vec::new() },
            })
            .collect()
    }

    #[test]
    fn a_heads_key_is_its_time_or_the_median_of_its_partitions_next_five_if_smaller() {
        // A malformed record stamped 17 minutes ahead, then the partition's normal flow: the median.
        assert_eq!(head_key(&queue(&[1_020_000, 10_000, 11_000, 12_000, 13_000])), Some(12_000));
        // A late record and a wrong clock among the five move nothing.
        assert_eq!(head_key(&queue(&[100, 50, 101, 9_999_999, 102])), Some(100));
        // Sorted, even with ties: the head's own time (never later than it).
        assert_eq!(head_key(&queue(&[10, 20, 30, 40, 50, 1])), Some(10));
        assert_eq!(head_key(&queue(&[60, 120, 120, 120, 120])), Some(60));
        // Three of five behind it and earlier: the median; only five are looked at; no time, left out.
        assert_eq!(head_key(&queue(&[100, 50, 60, 70, 101, 1])), Some(70));
        assert_eq!(head_key(&queue(&[100, i64::MIN, 30, 40])), Some(40), "the lower middle of an even count");
        assert_eq!(head_key(&queue(&[100])), Some(100));
        assert_eq!(head_key(&queue(&[i64::MIN, 5, 6])), Some(i64::MIN), "no time: goes as soon as it is a head");
        assert_eq!(head_key(&queue(&[])), None);
    }
}
