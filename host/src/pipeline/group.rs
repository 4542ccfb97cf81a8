//! A Kafka source's consumer-group membership: a task per partition the group assigns to this process, stopped when it is revoked.

use super::task::{Running, build_task, join, spawn_building, task_id};
use super::{PipelineError, Shared};
use crate::graph::SourceKind;
use crate::source::kafka::{GroupMember, PartitionOwner};
use crate::source::{KafkaPartitionSource, SourceReader};
use crate::task::Shutdown;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Runs a Kafka source's group membership: starts a task for each partition
/// the group assigns here, stops it when the partition is revoked.
pub(super) struct KafkaCoordinator {
    shared: Arc<Shared>,
    source: usize,
    /// The whole pipeline's stop request.
    shutdown: Shutdown,
    member: OnceLock<Arc<GroupMember>>,
    running: Mutex<BTreeMap<i32, Running>>,
    /// Partitions whose task ended on its own (the end of its input, with `--stop-at-end`).
    ended: Mutex<BTreeSet<i32>>,
    failure: Mutex<Option<PipelineError>>,
}

impl KafkaCoordinator {
    /// Joins the group of source `source` on a thread of its own; the thread ends when the pipeline stops
    /// (or, with `--stop-at-end`, when every partition it was given has ended) and says whether it stopped early.
    pub(super) fn spawn(shared: Arc<Shared>, source: usize, shutdown: Shutdown) -> std::thread::JoinHandle<Result<bool, PipelineError>> {
        let name = format!("sda-group-{}", shared.plan.sources[source].name);
        let coordinator = Arc::new(KafkaCoordinator {
            shared,
            source,
            shutdown,
            member: OnceLock::new(),
            running: Mutex::new(BTreeMap::new()),
            ended: Mutex::new(BTreeSet::new()),
            failure: Mutex::new(None),
        });
        std::thread::Builder::new().name(name).spawn(move || coordinator.run()).expect("spawning a group coordinator")
    }

    fn fail(&self, error: PipelineError) {
        tracing::error!(error = %error, "stopping the pipeline");
        self.failure.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(error);
        self.shutdown.request();
    }

    /// Polls the group until the pipeline stops (or, with `--stop-at-end`,
    /// every partition it was given has reached its end). Returns whether it
    /// stopped before its input ended.
    fn run(self: Arc<Self>) -> Result<bool, PipelineError> {
        let plan = self.shared.plan.clone();
        let source = &plan.sources[self.source];
        let SourceKind::Kafka(kafka) = &source.kind else { unreachable!("coordinators run Kafka sources") };
        let member = match GroupMember::join(&source.name, kafka, self.clone()) {
            Ok(member) => Arc::new(member),
            Err(e) => {
                self.shutdown.request();
                return Err(e.into());
            }
        };
        let _ = self.member.set(member.clone());
        // `--stop-at-end` stops once this process has read every partition to
        // its end: partitions a dead member still holds (until its session
        // times out) are waited for, not skipped.
        let partitions = member.partitions();
        let mut stopped_early = false;
        loop {
            member.poll(Duration::from_millis(100));
            self.reap();
            if self.shutdown.is_requested() {
                stopped_early = true;
                break;
            }
            let running = self.running.lock().unwrap_or_else(|e| e.into_inner()).len();
            let ended = self.ended.lock().unwrap_or_else(|e| e.into_inner()).len();
            if self.shared.options.stop_at_end && running == 0 && ended >= partitions {
                break;
            }
        }
        // Stop what still runs (each checkpoints and commits), then leave.
        let still: Vec<i32> = self.running.lock().unwrap_or_else(|e| e.into_inner()).keys().copied().collect();
        self.stop_partitions(&still);
        member.leave();
        if let Some(e) = self.failure.lock().unwrap_or_else(|e| e.into_inner()).take() {
            return Err(e);
        }
        Ok(stopped_early)
    }

    /// Joins tasks that ended on their own (end of input, or an error).
    fn reap(&self) {
        let finished: Vec<i32> = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(_, r)| r.handle.is_finished())
            .map(|(p, _)| *p)
            .collect();
        for p in finished {
            let Some(r) = self.running.lock().unwrap_or_else(|e| e.into_inner()).remove(&p) else { continue };
            match join(r) {
                Ok(_) => {
                    self.ended.lock().unwrap_or_else(|e| e.into_inner()).insert(p);
                }
                Err(e) => self.fail(e),
            }
        }
    }

    fn stop_partitions(&self, partitions: &[i32]) {
        let stopping: Vec<Running> = {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            partitions.iter().filter_map(|p| running.remove(p)).collect()
        };
        for r in &stopping {
            r.stop.request();
        }
        for r in stopping {
            if let Err(e) = join(r) {
                self.fail(e);
            }
        }
    }
}

impl PartitionOwner for KafkaCoordinator {
    /// Starts a task per partition, each recovering on its own thread: this runs inside librdkafka's
    /// rebalance callback, and a member that does not come back to poll within `max.poll.interval.ms`
    /// is dropped from the group (recovering a partition can take seconds).
    fn assigned(&self, partitions: &[i32]) {
        let Some(member) = self.member.get().cloned() else { return };
        let plan = &*self.shared.plan;
        let source = &plan.sources[self.source];
        for &p in partitions {
            if self.shutdown.is_requested() {
                return;
            }
            let (shared, member, s) = (self.shared.clone(), member.clone(), self.source);
            let build = move || {
                let source = &shared.plan.sources[s];
                let SourceKind::Kafka(kafka) = &source.kind else { unreachable!("coordinators run Kafka sources") };
                let committed = member.committed(p, kafka.connect_timeout)?;
                let stop_at_end = shared.options.stop_at_end;
                build_task(&shared, s, task_id(&source.name, Some(p as u32)), Some(member.clone()), committed, |checkpoint| {
                    let offset = checkpoint.map(|c| c.offset);
                    Ok(SourceReader::Kafka(KafkaPartitionSource::open(&source.name, kafka, p, offset, committed, stop_at_end)?))
                })
            };
            let r = spawn_building(&self.shared, format!("{}-{p}", source.name), Shutdown::new(), build);
            self.running.lock().unwrap_or_else(|e| e.into_inner()).insert(p, r);
        }
    }

    fn revoked(&self, partitions: &[i32]) {
        self.stop_partitions(partitions);
    }
}
