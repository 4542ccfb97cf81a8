//! Recovering an append-only JSON Lines file after a crash: drop a torn last line, read back what was written after a position.
//!
//! A crash can stop a write part-way through a line. That partial line was
//! never a delivery (readers of JSON Lines take whole lines only), so it is cut
//! off before anything is appended again. The lines after the position a
//! checkpoint recorded are the deliveries the replay will regenerate; the sink
//! reads them back so it can recognise them.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// Truncates `path` after its last newline, if it ends without one. Returns the
/// number of bytes cut (0 for an absent, empty or whole file).
pub fn drop_torn_tail(path: &Path) -> std::io::Result<u64> {
    let mut file = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(0);
    }
    // Walk back in chunks to the last newline.
    let mut end = len;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let start = end.saturating_sub(chunk.len() as u64);
        let n = (end - start) as usize;
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut chunk[..n])?;
        if let Some(i) = chunk[..n].iter().rposition(|&b| b == b'\n') {
            let keep = start + i as u64 + 1;
            if keep == len {
                return Ok(0);
            }
            file.set_len(keep)?;
            file.sync_all()?;
            return Ok(len - keep);
        }
        if start == 0 {
            file.set_len(0)?;
            file.sync_all()?;
            return Ok(len);
        }
        end = start;
    }
}

/// Calls `each` with every whole line written at or after byte `position`
/// (without its newline). A position past the end reads nothing.
pub fn lines_since(path: &Path, position: u64, mut each: impl FnMut(&[u8])) -> std::io::Result<u64> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    if position >= file.metadata()?.len() {
        return Ok(0);
    }
    file.seek(SeekFrom::Start(position))?;
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    let mut line = Vec::new();
    let mut count = 0;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(count);
        }
        if line.last() == Some(&b'\n') {
            line.pop();
            each(&line);
            count += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_last_line_is_cut_and_whole_files_are_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.jsonl");
        assert_eq!(drop_torn_tail(&path).unwrap(), 0, "absent file");
        std::fs::write(&path, "a\nb\n").unwrap();
        assert_eq!(drop_torn_tail(&path).unwrap(), 0);
        std::fs::write(&path, "a\nb\n{\"par").unwrap();
        assert_eq!(drop_torn_tail(&path).unwrap(), 5);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a\nb\n");
        std::fs::write(&path, "no newline at all").unwrap();
        drop_torn_tail(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"");
        // A torn tail longer than one read chunk.
        let long = format!("first\n{}", "x".repeat(200_000));
        std::fs::write(&path, &long).unwrap();
        drop_torn_tail(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "first\n");
    }

    #[test]
    fn reads_whole_lines_after_a_position() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.jsonl");
        std::fs::write(&path, "one\ntwo\nthree\npartial").unwrap();
        let mut seen = Vec::new();
        let n = lines_since(&path, 4, |l| seen.push(String::from_utf8(l.to_vec()).unwrap())).unwrap();
        assert_eq!(n, 2);
        assert_eq!(seen, vec!["two", "three"]);
        assert_eq!(lines_since(&path, 1000, |_| panic!()).unwrap(), 0);
    }
}
