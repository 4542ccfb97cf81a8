//! The run's plugins: each operator's plugin compiled (or taken from the cache), or the one a swap put in before a restart, as the swap journal records; and whether the sources feed each what it needs.

use super::PipelineError;
use crate::graph::{Assignment, NodeRef, Plan, SinkKind, SourceKind};
use crate::runtime::{InputScope, LoadedPlugin, Runtime, RuntimeError};
use crate::status::{OperatorStatus, StatusBoard};
use crate::swap::journal::SwapJournal;

/// Loads every operator's plugin, in plan order, and shows each on the status board. An operator swapped
/// while pipeline.toml still names what it names now runs the swapped-in plugin; if pipeline.toml has
/// changed since, its plugin wins and the journal forgets the swap.
pub(super) fn load_plugins(plan: &Plan, runtime: &Runtime, board: &StatusBoard) -> Result<Vec<LoadedPlugin>, PipelineError> {
    let journal = SwapJournal::new(&plan.checkpoint.dir, &plan.name);
    let swapped = journal.load()?;
    let mut loaded = Vec::with_capacity(plan.operators.len());
    for op in &plan.operators {
        let record = swapped.get(&op.name);
        let file = match record {
            // Swapped in while pipeline.toml still named what it names now: run what was running.
            Some(r) if r.configured_digest == op.plugin.digest && r.digest != op.plugin.digest => {
                tracing::warn!(
                    operator = %op.name, digest = %r.digest, swapped_at = %r.swapped_at, swapped_by = %r.swapped_by,
                    journal = %journal.path().display(),
                    "running the plugin swapped in before the restart, not the one pipeline.toml names; edit pipeline.toml to make it \
                        permanent"
                );
                journal.read_plugin(&op.name, r)?
            }
            Some(_) => {
                tracing::info!(operator = %op.name, "pipeline.toml names another plugin than when this operator was swapped; running \
                    pipeline.toml's");
                journal.forget(&op.name)?;
                op.plugin.clone()
            }
            None => op.plugin.clone(),
        };
        let plugin = runtime.load(&op.name, &file)?;
        tracing::info!(operator = %op.name, digest = %plugin.digest, source = ?plugin.source, time = ?plugin.compile_time, "plugin ready");
        let swap = record.filter(|r| r.digest == plugin.digest);
        board.set_operator(
            &op.name,
            OperatorStatus {
                plugin_path: plugin.path.display().to_string(),
                digest: plugin.digest.clone(),
                wit_version: plugin.wit_version.clone(),
                state_version: None,
                swapped_at: swap.map(|r| r.swapped_at.clone()),
                swapped_by: swap.map(|r| r.swapped_by.clone()),
                swapped_from: swap.map(|r| r.configured_digest.clone()),
                ..OperatorStatus::default()
            },
        );
        loaded.push(plugin);
    }
    Ok(loaded)
}

/// Why a pipeline would read an operator's input in a way the operator cannot work with.
#[derive(Debug, thiserror::Error)]
pub enum InputScopeError {
    #[error(
        "operator `{operator}` needs every record of its input (its plugin `{plugin}` describes itself as all-records: it relates \
         records to each other, e.g. screens all pairs), but source `{source_name}` splits topic `{topic}` over the consumer group, a \
         task per partition: each task would see only its own partition's records, and whatever relates records of two partitions \
         (a conjunction between objects keyed to different partitions) would be missed without a word. Set `assignment = \"all\"` \
         on source `{source_name}` (one task reads every partition, merged in event-time order), or, if no two records this \
         operator relates can ever be in different partitions, `per_partition = true` on operator `{operator}`"
    )]
    SplitInput { operator: String, plugin: String, source_name: String, topic: String },
    #[error(
        "sink `{sink}` is transactional, which commits its consumer offsets through the group, but source `{source_name}` reads \
         with `assignment = \"all\"`, which joins no group: drop `transactional` (the default idempotent producer with read-back \
         is exactly-once too), or use the default `assignment`"
    )]
    TransactionalMerge { sink: String, source_name: String },
    #[error(
        "operator `{operator}` reads the outputs of operator `{sharded}`, which source `{source_name}` runs in {shards} shards \
         leased across processes: each shard emits the outputs of the pairs it owns in each window, and which shard owns a pair \
         can change from one window to the next, so `{operator}` would see some of a pair's outputs in one process and the rest \
         in another. Run `{operator}` in a second stage: a Kafka sink after `{sharded}`, and a second source reading that topic \
         with `assignment = \"all\"` (and `shards = 1` to fail over), as pipeline.scale-out.toml does"
    )]
    AfterShards { operator: String, sharded: String, source_name: String, shards: u32 },
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

/// Refuses a pipeline that would feed an all-records operator only part of a Kafka topic (a task per
/// partition) without the user's `per_partition = true`, and a transactional sink after a merged source.
/// Whatever the topic's partition count: one partition today may be eight tomorrow, and nothing would
/// say that screening had become partial.
pub fn check_input_scopes(plan: &Plan, runtime: &Runtime, loaded: &[LoadedPlugin]) -> Result<(), InputScopeError> {
    for (s, source) in plan.sources.iter().enumerate() {
        let SourceKind::Kafka(kafka) = &source.kind else { continue };
        let (operators, sinks) = plan.reachable_from(s);
        match kafka.assignment {
            Assignment::Group => {
                for &i in &operators {
                    let op = &plan.operators[i];
                    if op.per_partition {
                        continue;
                    }
                    if runtime.input_scope(&op.name, &loaded[i])? == InputScope::AllRecords {
                        return Err(InputScopeError::SplitInput {
                            operator: op.name.clone(),
                            plugin: op.plugin.path.display().to_string(),
                            source_name: source.name.clone(),
                            topic: kafka.topic.clone(),
                        });
                    }
                }
            }
            Assignment::All { ref lease, .. } => {
                if let Some(&k) = sinks.iter().find(|&&k| matches!(&plan.sinks[k].kind, SinkKind::Kafka(sink) if sink.transactional)) {
                    return Err(InputScopeError::TransactionalMerge { sink: plan.sinks[k].name.clone(), source_name: source.name.clone() });
                }
                if let Some(lease) = lease.as_ref().filter(|l| l.shards > 1) {
                    check_nothing_after_shards(plan, runtime, loaded, s, lease.shards, &operators)?;
                }
            }
        }
    }
    Ok(())
}

/// Refuses an operator that reads the outputs of an all-records operator run in leased shards: its
/// input would be split across processes by the shards' ownership. (Checking direct readers is
/// enough: anything further down reads one of them, which is refused first.)
fn check_nothing_after_shards(
    plan: &Plan,
    runtime: &Runtime,
    loaded: &[LoadedPlugin],
    s: usize,
    shards: u32,
    operators: &[usize],
) -> Result<(), InputScopeError> {
    for &i in operators {
        let op = &plan.operators[i];
        for input in &op.inputs {
            let NodeRef::Operator(j) = *input else { continue };
            if runtime.input_scope(&plan.operators[j].name, &loaded[j])? == InputScope::AllRecords {
                return Err(InputScopeError::AfterShards {
                    operator: op.name.clone(),
                    sharded: plan.operators[j].name.clone(),
                    source_name: plan.sources[s].name.clone(),
                    shards,
                });
            }
        }
    }
    Ok(())
}
