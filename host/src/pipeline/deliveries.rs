//! Sinks and the dead-letter queue of a run: files repaired after a crash and opened once per process,
//! then per task a writer each with what it delivered since the checkpoint read back.

use super::{PipelineError, Shared};
use crate::checkpoint::format::Checkpoint;
use crate::dedup::SeenSet;
use crate::dlq::{DlqWriter, FileDlq, KafkaDlq};
use crate::graph::{DlqPlan, Guarantee, Plan, SinkKind};
use crate::ledger::DeliveryLedger;
use crate::output::recovery::drop_torn_tail;
use crate::runtime::Shard;
use crate::sink::{DirectorySink, FileSink, KafkaSink, PostgresSink, SinkError, SinkWriter};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The files every task of the process appends to: file sinks (by plan sink index) and a file DLQ.
pub(super) struct SharedFiles {
    pub sinks: Vec<Option<Arc<Mutex<FileSink>>>>,
    pub dlq: Option<Arc<Mutex<FileDlq>>>,
}

/// Opens the plan's file sinks and file DLQ, first dropping a line a crash may have cut in half.
pub(super) fn open_shared_files(plan: &Plan) -> Result<SharedFiles, PipelineError> {
    let sinks = plan
        .sinks
        .iter()
        .map(|s| match &s.kind {
            SinkKind::File { path } => {
                repair(path)?;
                Ok(Some(Arc::new(Mutex::new(FileSink::open(&s.name, path)?))))
            }
            _ => Ok(None),
        })
        .collect::<Result<_, PipelineError>>()?;
    let dlq = match &plan.dlq {
        DlqPlan::File { path, retention, .. } => {
            repair(path)?;
            Some(Arc::new(Mutex::new(FileDlq::open_with(path, *retention)?)))
        }
        DlqPlan::Kafka { .. } => None,
    };
    Ok(SharedFiles { sinks, dlq })
}

fn repair(path: &Path) -> Result<(), PipelineError> {
    let cut = drop_torn_tail(path).map_err(|error| PipelineError::Repair { path: path.to_path_buf(), error })?;
    if cut > 0 {
        tracing::warn!(file = %path.display(), bytes = cut, "dropped a torn last line left by a crash");
    }
    Ok(())
}

/// A task's sinks (`sink_indices` of the plan), each with its delivery ledger: what the checkpoint saved,
/// plus, under exactly-once, what the sink holds past the checkpoint's positions (a replay owes it those).
pub(super) fn open_sinks(
    shared: &Shared,
    task_id: &str,
    sink_indices: &[usize],
    checkpoint: Option<&Checkpoint>,
    now: u64,
    lease: Option<Shard>,
) -> Result<Vec<(usize, SinkWriter, DeliveryLedger)>, PipelineError> {
    let plan = &*shared.plan;
    let exactly_once = plan.guarantee == Guarantee::ExactlyOnce;
    let saved = |name: &str| {
        checkpoint.filter(|_| !shared.options.fresh_sinks.iter().any(|s| s == name)).and_then(|c| c.sinks.iter().find(|s| s.name == name))
    };
    let mut sinks = Vec::with_capacity(sink_indices.len());
    for &i in sink_indices {
        let sink = &plan.sinks[i];
        let writer = match &sink.kind {
            SinkKind::File { .. } => SinkWriter::File(shared.files.sinks[i].clone().expect("file sinks are opened at start")),
            SinkKind::Directory { path, extension } => SinkWriter::Directory(Box::new(DirectorySink::open(&sink.name, path, extension)?)),
            SinkKind::Kafka(k) => {
                let transactional_id = format!("{}-{}-{}", plan.name, task_id, sink.name);
                SinkWriter::Kafka(Box::new(KafkaSink::open(&sink.name, k, Some(&transactional_id), lease.map(|l| l.index))?))
            }
            SinkKind::Postgres(p) => {
                let connected = PostgresSink::connect(&sink.name, &p.url, &p.table, &p.key_column, p.connect_timeout)
                    .map_err(|e| SinkError::Postgres { sink: sink.name.clone(), message: e.to_string() })?;
                SinkWriter::Postgres(Box::new(match p.retry_for {
                    Some(limit) => connected.with_retry_limit(limit),
                    None => connected,
                }))
            }
        };
        let saved = saved(&sink.name);
        let mut ledger = DeliveryLedger::restore(sink.dedup, saved.map(|s| s.delivered.clone()).unwrap_or_default(), now);
        if exactly_once && writer.keeps_delivery_record() {
            let read = writer.read_back(saved.map_or(&[][..], |s| &s.positions), |id| ledger.owe(id, now))?;
            if read > 0 {
                tracing::info!(task = %task_id, sink = %sink.name, records = read, "re-read deliveries made after the checkpoint");
            }
        }
        sinks.push((i, writer, ledger));
    }
    Ok(sinks)
}

/// The task's DLQ writer and the dead letters it delivered: saved in the checkpoint, plus, under
/// exactly-once, those written past the checkpoint's positions.
pub(super) fn open_dlq(shared: &Shared, checkpoint: Option<&Checkpoint>, now: u64) -> Result<(DlqWriter, SeenSet), PipelineError> {
    let plan = &*shared.plan;
    let dlq = match &plan.dlq {
        DlqPlan::File { .. } => DlqWriter::File(shared.files.dlq.clone().expect("a file DLQ is opened at start")),
        DlqPlan::Kafka { brokers, topic, connect_timeout, librdkafka, .. } => DlqWriter::Kafka(Box::new(KafkaDlq::open(
            brokers,
            topic,
            librdkafka,
            *connect_timeout,
            plan.guarantee == Guarantee::AtMostOnce,
        )?)),
    };
    let mut dlq_delivered = SeenSet::restore(plan.dlq.dedup(), checkpoint.map(|c| c.dlq.delivered.clone()).unwrap_or_default(), now);
    if plan.guarantee == Guarantee::ExactlyOnce {
        dlq.read_back(checkpoint.map_or(&[][..], |c| &c.dlq.positions), |id| {
            dlq_delivered.check_and_insert(id, now);
        })?;
    }
    Ok((dlq, dlq_delivered))
}
