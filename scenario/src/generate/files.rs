//! The files of a scenario: the observations, the reference's expected outputs beside them, and
//! `<stem>.scenario.json`; and reading that summary back.
//!
//! Sparse scenarios are streamed to their file as they are made; regular ones are made in memory
//! and then written. The expected outputs need the brute-force reference, which is quadratic in
//! the objects per window: large scenarios are written without it (`reference: false`) and
//! checked with [`crate::check`] instead.

use super::streaming::{self, LineSink};
use super::{GenerateOptions, ScenarioSummary, generate, populate, summarise};
use crate::error::ScenarioError;
use crate::reference::{self, ReferenceCounts, ReferenceOutput};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// How far [`write_scenario_with`] has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Making and writing the observations: scenario time covered, of `total_ms`.
    Generating { done_ms: i64, total_ms: i64 },
    /// The reference: windows screened, of `total`.
    Reference { done: usize, total: usize },
}

/// The reference's outputs and the files they were written to.
#[derive(Debug)]
pub struct ExpectedFiles {
    /// `<stem>.expected-alerts.jsonl`: the reference's alerts, one per line, in emission order.
    pub alerts: PathBuf,
    /// `<stem>.expected-candidates.jsonl`: the reference's candidates, to check the correlator alone.
    pub candidates: PathBuf,
    pub reference: ReferenceOutput,
}

/// The files [`write_scenario_with`] wrote, and what they hold.
#[derive(Debug)]
pub struct WrittenScenario {
    /// The observation lines (the path given).
    pub observations: PathBuf,
    /// `<stem>.scenario.json`: `{"summary": ..., "reference": counts}` (no `reference` without one).
    pub scenario: PathBuf,
    pub summary: ScenarioSummary,
    /// `None` when the reference was not asked for.
    pub expected: Option<ExpectedFiles>,
}

/// The files [`write_scenario`] wrote, and what they hold.
#[derive(Debug)]
pub struct ScenarioFiles {
    /// The observation lines (the path given).
    pub observations: PathBuf,
    /// `<stem>.expected-alerts.jsonl`: the reference's alerts, one per line, in emission order.
    pub expected_alerts: PathBuf,
    /// `<stem>.expected-candidates.jsonl`: the reference's candidates, to check the correlator alone.
    pub expected_candidates: PathBuf,
    /// `<stem>.scenario.json`: `{"summary": ..., "reference": counts}`.
    pub scenario: PathBuf,
    pub summary: ScenarioSummary,
    pub reference: ReferenceOutput,
}

/// The document written to `<stem>.scenario.json`.
#[derive(Serialize)]
struct ScenarioDocument<'a> {
    summary: &'a ScenarioSummary,
    #[serde(skip_serializing_if = "Option::is_none")]
    reference: Option<&'a ReferenceCounts>,
}

/// What [`read_summary`] needs of the document.
#[derive(Deserialize)]
struct SummaryDocument {
    summary: ScenarioSummary,
}

/// Generates the scenario, runs the reference on it, and writes `out` (the observations) with
/// `<stem>.expected-alerts.jsonl`, `<stem>.expected-candidates.jsonl` and `<stem>.scenario.json`
/// beside it. `progress(done, total)` follows the reference's windows.
pub fn write_scenario(
    out: &Path,
    options: &GenerateOptions,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<ScenarioFiles, ScenarioError> {
    let written = write_scenario_with(out, options, true, &|step| {
        if let Progress::Reference { done, total } = step {
            progress(done, total);
        }
    })?;
    let expected = written.expected.expect("the reference was asked for");
    Ok(ScenarioFiles {
        observations: written.observations,
        expected_alerts: expected.alerts,
        expected_candidates: expected.candidates,
        scenario: written.scenario,
        summary: written.summary,
        reference: expected.reference,
    })
}

/// Generates the scenario and writes `out` (the observations) and `<stem>.scenario.json` beside
/// it; with `reference`, also runs the reference and writes `<stem>.expected-alerts.jsonl` and
/// `<stem>.expected-candidates.jsonl`. Without it, expected files left there by an earlier run
/// are removed, so none can be mistaken for this scenario's.
///
/// A sparse scenario streams to `out` as it is made, in memory that grows with the objects, not
/// with the lines (unless the reference needs them). `progress` follows both steps.
pub fn write_scenario_with(
    out: &Path,
    options: &GenerateOptions,
    reference: bool,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<WrittenScenario, ScenarioError> {
    options.validate()?;
    let stem = out
        .file_stem()
        .filter(|stem| !stem.is_empty())
        .ok_or_else(|| ScenarioError::NotAFilePath { path: out.to_owned() })?
        .to_string_lossy()
        .into_owned();
    let companion = |suffix: &str| out.with_file_name(format!("{stem}.{suffix}"));
    let expected_alerts = companion("expected-alerts.jsonl");
    let expected_candidates = companion("expected-candidates.jsonl");
    let scenario_path = companion("scenario.json");
    if let Some(dir) = out.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| ScenarioError::CreateDir { path: dir.to_owned(), source })?;
    }

    let total_ms = options.end_ms() - options.start_ms;
    progress(Progress::Generating { done_ms: 0, total_ms });
    let (summary, lines) = match &options.sparse_cadence {
        None => {
            let scenario = generate(options)?;
            let mut sink = FileSink::create(out, false)?;
            for line in &scenario.lines {
                sink.line(line)?;
            }
            sink.finish()?;
            (scenario.summary, reference.then_some(scenario.lines))
        }
        Some(cadence) => {
            let population = populate(options);
            let mut sink = FileSink::create(out, reference)?;
            let delivered = streaming::write(options, cadence, &population, &mut sink, &|done_ms, total_ms| {
                progress(Progress::Generating { done_ms, total_ms })
            })?;
            (summarise(options, &population, delivered), sink.finish()?)
        }
    };
    progress(Progress::Generating { done_ms: total_ms, total_ms });

    let expected = match lines {
        Some(lines) => {
            let output = reference::run(&lines, &options.correlator, &options.classifier, &|done, total| {
                progress(Progress::Reference { done, total })
            })?;
            write_file(&expected_alerts, to_jsonl(&output.alerts, &expected_alerts)?)?;
            write_file(&expected_candidates, to_jsonl(&output.candidates, &expected_candidates)?)?;
            Some(ExpectedFiles { alerts: expected_alerts, candidates: expected_candidates, reference: output })
        }
        None => {
            for stale in [&expected_alerts, &expected_candidates] {
                match std::fs::remove_file(stale) {
                    Ok(()) => {}
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                    Err(source) => return Err(ScenarioError::Write { path: stale.clone(), source }),
                }
            }
            None
        }
    };
    let document = ScenarioDocument { summary: &summary, reference: expected.as_ref().map(|e| &e.reference.counts) };
    let mut json =
        serde_json::to_string_pretty(&document).map_err(|source| ScenarioError::Encode { path: scenario_path.clone(), source })?;
    json.push('\n');
    write_file(&scenario_path, json)?;
    Ok(WrittenScenario { observations: out.to_owned(), scenario: scenario_path, summary, expected })
}

/// The summary in a `<stem>.scenario.json` written by [`write_scenario_with`].
pub fn read_summary(path: &Path) -> Result<ScenarioSummary, ScenarioError> {
    let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read { path: path.to_owned(), source })?;
    let document: SummaryDocument =
        serde_json::from_str(&text).map_err(|source| ScenarioError::Decode { path: path.to_owned(), source })?;
    Ok(document.summary)
}

/// The observations file, written through a buffer, and the lines kept for the reference.
struct FileSink {
    path: PathBuf,
    file: BufWriter<File>,
    kept: Option<Vec<String>>,
}

impl FileSink {
    fn create(path: &Path, keep_lines: bool) -> Result<Self, ScenarioError> {
        let file = File::create(path).map_err(|source| ScenarioError::Write { path: path.to_owned(), source })?;
        Ok(FileSink { path: path.to_owned(), file: BufWriter::with_capacity(1 << 20, file), kept: keep_lines.then(Vec::new) })
    }

    /// Flushes the buffer; returns the kept lines.
    fn finish(self) -> Result<Option<Vec<String>>, ScenarioError> {
        let FileSink { path, file, kept } = self;
        file.into_inner().map_err(|error| ScenarioError::Write { path, source: error.into_error() })?;
        Ok(kept)
    }
}

impl LineSink for FileSink {
    fn line(&mut self, text: &str) -> Result<(), ScenarioError> {
        let written = self.file.write_all(text.as_bytes()).and_then(|()| self.file.write_all(b"\n"));
        written.map_err(|source| ScenarioError::Write { path: self.path.clone(), source })?;
        if let Some(kept) = &mut self.kept {
            kept.push(text.to_owned());
        }
        Ok(())
    }
}

fn jsonl_text<'a>(lines: impl Iterator<Item = &'a str>) -> String {
    let mut text = String::new();
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    text
}

fn to_jsonl<T: Serialize>(records: &[T], path: &Path) -> Result<String, ScenarioError> {
    let lines = records
        .iter()
        .map(|record| serde_json::to_string(record))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| ScenarioError::Encode { path: path.to_owned(), source })?;
    Ok(jsonl_text(lines.iter().map(String::as_str)))
}

fn write_file(path: &Path, contents: String) -> Result<(), ScenarioError> {
    std::fs::write(path, contents).map_err(|source| ScenarioError::Write { path: path.to_owned(), source })
}
