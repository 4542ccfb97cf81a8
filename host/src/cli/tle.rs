//! `sda-pipeline tle-to-jsonl`: two- and three-line element set files as JSON Lines, one element set per line.
//!
//! A file source reads one record per line, and a TLE spans two or three; Space-Track's `gp` JSON carries a set's
//! lines as `TLE_LINE1` and `TLE_LINE2` beside `OBJECT_NAME`, which the `elsets` operator reads. This writes that
//! form and judges nothing: a checksum, a number or a missing line is the operator's to dead-letter, with its
//! reason, so a bad set is never dropped on the way in.

use anyhow::Context;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct TleArgs {
    /// TLE files (2 or 3 lines per set, LF or CRLF); `-` reads standard input.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Write to this file instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// One element set as its lines were found: a name line if one came first, then what should be lines 1 and 2.
#[derive(Debug, Default, PartialEq)]
struct Found {
    name: Option<String>,
    line1: Option<String>,
    line2: Option<String>,
}

impl Found {
    fn is_empty(&self) -> bool {
        self.name.is_none() && self.line1.is_none() && self.line2.is_none()
    }

    fn to_json(&self) -> serde_json::Value {
        let mut object = serde_json::Map::new();
        for (key, value) in [("OBJECT_NAME", &self.name), ("TLE_LINE1", &self.line1), ("TLE_LINE2", &self.line2)] {
            if let Some(value) = value {
                object.insert(key.to_string(), value.clone().into());
            }
        }
        object.into()
    }
}

/// Groups lines into element sets: an optional name line (a leading `0 ` dropped), a line starting `1 `, a line
/// starting `2 `. A line out of place closes the set in hand, incomplete, and starts the next.
fn group(lines: impl Iterator<Item = String>, mut each: impl FnMut(Found)) {
    let mut set = Found::default();
    for line in lines {
        let line = line.trim_end().to_string();
        if line.trim().is_empty() {
            continue;
        }
        if line.starts_with("1 ") {
            if set.line1.is_some() || set.line2.is_some() {
                each(std::mem::take(&mut set));
            }
            set.line1 = Some(line);
        } else if line.starts_with("2 ") {
            if set.line2.is_some() {
                each(std::mem::take(&mut set));
            }
            set.line2 = Some(line);
            each(std::mem::take(&mut set));
        } else {
            if !set.is_empty() {
                each(std::mem::take(&mut set));
            }
            set.name = Some(line.strip_prefix("0 ").unwrap_or(&line).trim().to_string());
        }
    }
    if !set.is_empty() {
        each(set);
    }
}

pub fn tle_to_jsonl(args: &TleArgs) -> anyhow::Result<std::process::ExitCode> {
    let mut out: Box<dyn Write> = match &args.out {
        Some(path) => {
            Box::new(std::io::BufWriter::new(std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?))
        }
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let (mut sets, mut incomplete) = (0u64, 0u64);
    for file in &args.files {
        let reader: Box<dyn BufRead> = if file == Path::new("-") {
            Box::new(std::io::stdin().lock())
        } else {
            Box::new(std::io::BufReader::new(std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?))
        };
        let mut error = None;
        let lines = reader.lines().map_while(|l| l.map_err(|e| error = Some(e)).ok());
        let mut written = Ok(());
        group(lines, |found| {
            sets += 1;
            incomplete += u64::from(found.line1.is_none() || found.line2.is_none());
            if written.is_ok() {
                written = writeln!(out, "{}", found.to_json());
            }
        });
        if let Some(e) = error {
            return Err(e).with_context(|| format!("cannot read {}", file.display()));
        }
        written.context("cannot write the JSON lines")?;
    }
    out.flush().context("cannot write the JSON lines")?;
    if incomplete > 0 {
        eprintln!("{sets} element sets written, {incomplete} of them incomplete (the elsets operator will dead-letter those, saying why)");
    } else {
        eprintln!("{sets} element sets written");
    }
    Ok(std::process::ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grouped(text: &str) -> Vec<serde_json::Value> {
        let mut found = Vec::new();
        group(text.lines().map(String::from), |f| found.push(f.to_json()));
        found
    }

    #[test]
    fn three_line_two_line_and_broken_sets_each_become_one_record() {
        let text = "0 ISS (ZARYA)   \r\n1 25544U 98067A   08264.51782528 -.00002182  00000-0 -11606-4 0  2927\r\n\
                    2 25544  51.6416 247.4627 0006703 130.5360 325.0288 15.72125391563537\r\n\n\
                    1 A0404U 26192A   26263.38590896  .00031477  00000+0  57128-3 0  9992\n\
                    2 A0404  53.1597 307.1840 0001009  61.6382 298.4729 15.49331404  5885\n\
                    STRAY NAME\n1 00005U 58002B   00179.78495062  .00000023  00000-0  28098-4 0  4753\n\
                    LAST\n";
        let sets = grouped(text);
        assert_eq!(sets.len(), 4, "{sets:#?}");
        assert_eq!(sets[0]["OBJECT_NAME"], "ISS (ZARYA)", "`0 ` and padding dropped");
        assert!(sets[0]["TLE_LINE1"].as_str().unwrap().ends_with("2927"), "CR dropped");
        assert!(sets[1].get("OBJECT_NAME").is_none() && sets[1]["TLE_LINE2"].as_str().unwrap().starts_with("2 A0404"));
        assert_eq!(sets[2]["OBJECT_NAME"], "STRAY NAME");
        assert!(sets[2].get("TLE_LINE2").is_none(), "a set without line 2 is passed on incomplete, not dropped");
        assert_eq!(sets[3], serde_json::json!({"OBJECT_NAME": "LAST"}));
    }
}
