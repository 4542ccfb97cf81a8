//! A Kafka source's consumer-group membership: a task per partition (or per shard lease) the group assigns to this process, stopped when it is revoked.
//!
//! Two kinds of work are handed out this way:
//! - a source's partitions (`assignment = "group"`): a task per partition, reading it alone, its
//!   offsets committed through the group;
//! - a source's shards (`assignment = "all"` with `shards = N`): the group is the lease group, its
//!   topic the lease topic with one partition per shard, and the partitions assigned here are the
//!   shards this process owns. A shard task reads every partition of the source's topic (merged in
//!   event-time order, as one task of a source read whole does) and runs its share of the pair space
//!   of the all-records operators. It commits nothing to any group: its checkpoints carry its
//!   offsets, and the remote tier carries them to whichever process holds the lease next.

use super::task::{Running, build_task, join, spawn_building, task_id};
use super::{PipelineError, Shared};
use crate::checkpoint::local::LocalTier;
use crate::graph::{Assignment, KafkaSourcePlan, Lease, SourceKind};
use crate::runtime::Shard;
use crate::source::kafka::{GroupMember, PartitionOwner};
use crate::source::{KafkaPartitionSource, MergedKafkaSource, SourceError, SourceReader};
use crate::task::Shutdown;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// How long releasing a shard's lease waits for its last checkpoint to reach the remote tier.
const LEASE_UPLOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// The id of a shard's task, which names its checkpoints: `<source>-shard-<index>-of-<count>`
/// (another shard count is another cut of the pair space, so other tasks).
pub(super) fn shard_task_id(source: &str, shard: Shard) -> String {
    format!("{source}-shard-{}-of-{}", shard.index, shard.count)
}

/// Refuses to start the shards of source `s` beside checkpoints of another cut of it (another `shards`, or
/// the one task of the source read whole): the tasks of this cut would have no checkpoint of their own and
/// start from the topic's beginning, and their outputs, which the old cut already delivered, would be
/// delivered again (a sink recognises only what was written after a checkpoint of the task it restores).
/// With `--allow-fresh-start` that is what the user asked for: said, and run.
pub(super) fn check_one_cut(shared: &Shared, s: usize, lease: &Lease) -> Result<(), PipelineError> {
    let plan = &*shared.plan;
    let source = &plan.sources[s].name;
    let ours: BTreeSet<String> = (0..lease.shards).map(|index| shard_task_id(source, Shard { index, count: lease.shards })).collect();
    let other_cut = |task: &str| (task == task_id(source, None) || task.starts_with(&format!("{source}-shard-"))) && !ours.contains(task);
    let mut found = BTreeSet::new();
    if let Ok(entries) = std::fs::read_dir(plan.checkpoint.dir.join(&plan.name)) {
        for entry in entries.flatten() {
            let task = entry.file_name().to_string_lossy().into_owned();
            let tier = LocalTier::new(&plan.checkpoint.dir, &plan.name, &task, plan.checkpoint.keep);
            if other_cut(&task) && tier.list().is_ok_and(|l| !l.is_empty()) {
                found.insert(tier.dir().display().to_string());
            }
        }
    }
    if let Some(remote) = &shared.remote {
        for name in remote.list(&plan.name)? {
            if let Some(task) = name.split('/').nth(1).filter(|t| other_cut(t)) {
                found.insert(format!("{}/{}/{task}", remote.url().trim_end_matches('/'), plan.name));
            }
        }
    }
    if found.is_empty() {
        return Ok(());
    }
    let found: Vec<String> = found.into_iter().collect();
    if shared.options.allow_fresh_start {
        tracing::warn!(source = %source, shards = lease.shards, other = ?found, "checkpoints of another cut of this source exist; \
            --allow-fresh-start: the shards start from the beginning of the topic and deliver its outputs again");
        return Ok(());
    }
    Err(PipelineError::OtherCut { source_name: source.clone(), shards: lease.shards, found })
}

/// The partitions (or leases) the group has given a member: with the eager protocol (the only one
/// `validate` lets through) a revocation takes everything and the next assignment gives the new whole.
#[derive(Default)]
struct Held {
    kept: BTreeSet<i32>,
    /// An assignment has come since the last revocation (false before the first).
    settled: bool,
}

/// Runs a Kafka source's group membership: starts a task for each partition
/// the group assigns here, stops it when the partition is revoked.
pub(super) struct KafkaCoordinator {
    shared: Arc<Shared>,
    source: usize,
    /// The shards' leases, for a source read whole with `shards`; `None`: the source's own partitions.
    lease: Option<Lease>,
    /// The whole pipeline's stop request.
    shutdown: Shutdown,
    member: OnceLock<Arc<GroupMember>>,
    running: Mutex<BTreeMap<i32, Running>>,
    /// Partitions whose task ended on its own (the end of its input, with `--stop-at-end`).
    ended: Mutex<BTreeSet<i32>>,
    /// What the group has given this member and not taken back.
    held: Mutex<Held>,
    failure: Mutex<Option<PipelineError>>,
}

impl KafkaCoordinator {
    /// Joins the group of source `source` on a thread of its own; the thread ends when the pipeline stops
    /// (or, with `--stop-at-end`, when every partition it was given has ended) and says whether it stopped early.
    pub(super) fn spawn(shared: Arc<Shared>, source: usize, shutdown: Shutdown) -> std::thread::JoinHandle<Result<bool, PipelineError>> {
        let name = format!("sda-group-{}", shared.plan.sources[source].name);
        let lease = match &shared.plan.sources[source].kind {
            SourceKind::Kafka(KafkaSourcePlan { assignment: Assignment::All { lease, .. }, .. }) => lease.clone(),
            _ => None,
        };
        let coordinator = Arc::new(KafkaCoordinator {
            shared,
            source,
            lease,
            shutdown,
            member: OnceLock::new(),
            running: Mutex::new(BTreeMap::new()),
            ended: Mutex::new(BTreeSet::new()),
            held: Mutex::new(Held::default()),
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
        let member = match self.join(&source.name, kafka) {
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
            if self.shared.options.stop_at_end && self.all_ended(partitions) {
                break;
            }
        }
        // Stop what still runs (each checkpoints and commits), then leave.
        let still: Vec<i32> = self.running.lock().unwrap_or_else(|e| e.into_inner()).keys().copied().collect();
        self.stop_partitions(&still);
        // Shards that ended here checkpointed at their end: that checkpoint goes with the leases.
        self.flush_uploads();
        member.leave();
        if let Some(e) = self.failure.lock().unwrap_or_else(|e| e.into_inner()).take() {
            return Err(e);
        }
        Ok(stopped_early)
    }

    /// Joins the source's group, or with `shards` its lease group (creating the lease topic if missing).
    fn join(self: &Arc<Self>, name: &str, kafka: &KafkaSourcePlan) -> Result<GroupMember, SourceError> {
        let Some(lease) = &self.lease else { return GroupMember::join(name, kafka, self.clone()) };
        crate::kafka::ensure_topic(&kafka.brokers, &lease.topic, lease.shards as usize, &kafka.librdkafka, kafka.connect_timeout)
            .map_err(|e| SourceError::Kafka { source_name: name.to_string(), message: e.to_string() })?;
        let leases = KafkaSourcePlan { topic: lease.topic.clone(), group_id: lease.group_id.clone(), ..kafka.clone() };
        let (shards, topic, group) = (lease.shards, &lease.topic, &lease.group_id);
        tracing::info!(source = name, shards, lease_topic = %topic, group = %group, "joining the lease group");
        GroupMember::join(name, &leases, self.clone())
    }

    /// With `--stop-at-end`: whether this process is done. Partitions: once it has read every
    /// partition to its end (partitions a dead member still holds, until its session times out, are
    /// waited for, not skipped). Shards: once the group has assigned it its share and every shard it holds
    /// now has ended here (holding none: at once); it then leaves, and whatever shards others still run
    /// stay theirs (a shard handed to it later would end at once).
    fn all_ended(&self, partitions: usize) -> bool {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner()).len();
        let ended = self.ended.lock().unwrap_or_else(|e| e.into_inner());
        if running > 0 {
            return false;
        }
        match &self.lease {
            None => ended.len() >= partitions,
            Some(_) => {
                let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
                held.settled && held.kept.iter().all(|p| ended.contains(p))
            }
        }
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
        let stopped_any = !stopping.is_empty();
        for r in &stopping {
            r.stop.request();
        }
        for r in stopping {
            if let Err(e) = join(r) {
                self.fail(e);
            }
        }
        if stopped_any {
            self.flush_uploads();
        }
    }

    /// A shard's next owner recovers from the remote tier: its last checkpoint must be there before
    /// the lease goes (else the next owner replays more than it needs to; nothing is lost).
    fn flush_uploads(&self) {
        if let (Some(_), Some(uploader)) = (&self.lease, &self.shared.uploader)
            && let Err(e) = uploader.flush(LEASE_UPLOAD_TIMEOUT)
        {
            tracing::warn!(error = %e, "a shard's last checkpoint did not reach the remote tier before its lease was released; \
                its next owner resumes from an earlier one");
        }
    }

    /// Builds the task of partition `p`: reads it alone, from its checkpoint or the group's committed offset.
    fn partition_task(shared: &Shared, s: usize, member: Arc<GroupMember>, p: i32) -> Result<crate::task::Task, PipelineError> {
        let source = &shared.plan.sources[s];
        let SourceKind::Kafka(kafka) = &source.kind else { unreachable!("coordinators run Kafka sources") };
        let committed = member.committed(p, kafka.connect_timeout)?;
        let stop_at_end = shared.options.stop_at_end;
        build_task(shared, s, task_id(&source.name, Some(p as u32)), Some(member), committed, None, |checkpoint| {
            let offset = checkpoint.map(|c| c.offset);
            Ok(SourceReader::Kafka(KafkaPartitionSource::open(&source.name, kafka, p, offset, committed, stop_at_end)?))
        })
    }

    /// Builds the task of shard `shard`: reads every partition, merged, from its checkpoint's frontier.
    fn shard_task(shared: &Shared, s: usize, shard: Shard) -> Result<crate::task::Task, PipelineError> {
        let source = &shared.plan.sources[s];
        let SourceKind::Kafka(kafka) = &source.kind else { unreachable!("coordinators run Kafka sources") };
        let Assignment::All { idle_timeout, .. } = kafka.assignment else { unreachable!("shards are leased for sources read whole") };
        let stop_at_end = shared.options.stop_at_end;
        build_task(shared, s, shard_task_id(&source.name, shard), None, None, Some(shard), |checkpoint| {
            let start = checkpoint.map(|c| (c.offset, c.frontier.as_deref().unwrap_or_default()));
            Ok(SourceReader::KafkaMerged(MergedKafkaSource::open(&source.name, kafka, start, stop_at_end, idle_timeout)?))
        })
    }
}

impl PartitionOwner for KafkaCoordinator {
    /// Starts a task per partition, each recovering on its own thread: this runs inside librdkafka's
    /// rebalance callback, and a member that does not come back to poll within `max.poll.interval.ms`
    /// is dropped from the group (recovering a partition can take seconds).
    fn assigned(&self, partitions: &[i32]) {
        let Some(member) = self.member.get().cloned() else { return };
        {
            let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
            held.kept.extend(partitions);
            held.settled = true;
        }
        let plan = &*self.shared.plan;
        let source = &plan.sources[self.source];
        for &p in partitions {
            if self.shutdown.is_requested() {
                return;
            }
            let (shared, member, s) = (self.shared.clone(), member.clone(), self.source);
            let (name, build): (String, Box<dyn FnOnce() -> _ + Send>) = match &self.lease {
                None => (format!("{}-{p}", source.name), Box::new(move || Self::partition_task(&shared, s, member, p))),
                Some(lease) => {
                    let shard = Shard { index: p as u32, count: lease.shards };
                    (shard_task_id(&source.name, shard), Box::new(move || Self::shard_task(&shared, s, shard)))
                }
            };
            let r = spawn_building(&self.shared, name, Shutdown::new(), build);
            self.running.lock().unwrap_or_else(|e| e.into_inner()).insert(p, r);
        }
    }

    fn revoked(&self, partitions: &[i32]) {
        {
            let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
            held.kept.retain(|p| !partitions.contains(p));
            // A revocation is followed by an assignment (perhaps of nothing): wait for it.
            held.settled = false;
        }
        self.stop_partitions(partitions);
    }
}
