//! `sda-pipeline validate` and `plan` (with `--diff`): a pipeline file checked, its graph printed, two of them compared.

use crate::common::{EXIT_INVALID, load_plan};
use crate::text::plural;
use sda_host::graph::{Plan, SinkKind, SourceKind};
use sda_host::pipeline;
use sda_host::runtime::Runtime;
use std::path::Path;
use std::process::ExitCode;

/// `validate`: checks a pipeline file, printing every problem.
pub fn validate(file: &Path) -> anyhow::Result<ExitCode> {
    let plan = match load_plan(file)? {
        Ok(plan) => plan,
        Err(code) => return Ok(code),
    };
    if let Err(e) = check_plugins_fit_sources(&plan) {
        eprintln!("error: {e}");
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    println!(
        "`{}` is valid: pipeline `{}` with {} source{}, {} operator{} and {} sink{}",
        file.display(),
        plan.name,
        plan.sources.len(),
        plural(plan.sources.len()),
        plan.operators.len(),
        plural(plan.operators.len()),
        plan.sinks.len(),
        plural(plan.sinks.len()),
    );
    Ok(ExitCode::SUCCESS)
}

/// What only the plugins can tell: whether each operator behind a Kafka source gets the records it needs
/// (see [`pipeline::check_input_scopes`]). Compiles the plugins (or takes them from the cache) to ask them;
/// a pipeline with file sources only has nothing to check.
fn check_plugins_fit_sources(plan: &Plan) -> anyhow::Result<()> {
    if !plan.sources.iter().any(|s| matches!(s.kind, SourceKind::Kafka(_))) {
        return Ok(());
    }
    let runtime = Runtime::new(plan.cache_dir.clone())?;
    let loaded = plan.operators.iter().map(|op| runtime.load(&op.name, &op.plugin)).collect::<Result<Vec<_>, _>>()?;
    pipeline::check_input_scopes(plan, &runtime, &loaded)?;
    Ok(())
}

/// `plan`: prints the graph a pipeline file describes.
pub fn show_plan(file: &Path) -> anyhow::Result<ExitCode> {
    let plan = match load_plan(file)? {
        Ok(plan) => plan,
        Err(code) => return Ok(code),
    };
    let mut out = String::new();
    use std::fmt::Write as _;
    writeln!(out, "pipeline `{}` ({}), batch size {}", plan.name, file.display(), plan.batch_size)?;
    writeln!(out, "\nsources")?;
    for s in &plan.sources {
        match &s.kind {
            SourceKind::File(f) => {
                write!(out, "  {}  file {}", s.name, f.path.display())?;
                if let Some(k) = &f.key_field {
                    write!(out, ", key from `{k}`")?;
                }
                if let Some(t) = &f.event_time_field {
                    write!(out, ", event time from `{t}`")?;
                }
                if f.follow {
                    write!(out, ", followed")?;
                }
            }
            SourceKind::Kafka(k) => {
                write!(out, "  {}  kafka://{}/{}, group `{}`, key from the record key", s.name, k.brokers, k.topic, k.group_id)?;
                if let Some(t) = &k.event_time_field {
                    write!(out, ", event time from `{t}`")?;
                }
                match &k.assignment {
                    sda_host::graph::Assignment::All { idle_timeout, lease: None } => {
                        write!(out, ", every partition in one task (merged by event time, idle after {} ms)", idle_timeout.as_millis())?;
                    }
                    sda_host::graph::Assignment::All { idle_timeout, lease: Some(lease) } => write!(
                        out,
                        ", every partition in each of {} shard task(s) (merged by event time, idle after {} ms), leased through \
                         topic `{}`, group `{}`",
                        lease.shards,
                        idle_timeout.as_millis(),
                        lease.topic,
                        lease.group_id
                    )?,
                    sda_host::graph::Assignment::Group => {}
                }
            }
        }
        writeln!(out)?;
    }
    writeln!(out, "\noperators, in execution order")?;
    for op in &plan.operators {
        let inputs: Vec<&str> = op.inputs.iter().map(|&n| plan.node_name(n)).collect();
        writeln!(out, "  {}  <- {}", op.name, inputs.join(", "))?;
        writeln!(out, "      plugin  {}", op.plugin.path.display())?;
        writeln!(out, "      digest  {}", op.plugin.digest)?;
        writeln!(out, "      WIT     sda:operator@{}", op.plugin.wit_version)?;
        if op.parallelism > 1 {
            writeln!(out, "      shards  {} instances, each screening its share (`parallelism`)", op.parallelism)?;
        }
        writeln!(
            out,
            "      limits  memory {} MiB, timeouts {} ms per call, {} ms per watermark, {} ms per snapshot, {} retries from {} ms",
            op.limits.max_memory_bytes / (1024 * 1024),
            op.limits.call_timeout.as_millis(),
            op.limits.watermark_timeout.as_millis(),
            op.limits.state_timeout.as_millis(),
            op.retry.max_retries,
            op.retry.backoff.as_millis()
        )?;
        writeln!(out, "      config  {}", op.config_json)?;
    }
    writeln!(out, "\nsinks")?;
    for s in &plan.sinks {
        let inputs: Vec<&str> = s.inputs.iter().map(|&n| plan.node_name(n)).collect();
        let how = match &s.kind {
            SinkKind::File { .. } => "file",
            SinkKind::Directory { .. } => "directory",
            SinkKind::Kafka(k) if k.transactional => "kafka, transactional",
            SinkKind::Kafka(_) => "kafka",
            SinkKind::Postgres(_) => "postgres",
        };
        writeln!(out, "  {}  <- {}  {how} {}", s.name, inputs.join(", "), s.kind.describe())?;
    }
    writeln!(out, "\ndead-letter queue: {}", plan.dlq.describe())?;
    writeln!(out, "\ngraph")?;
    for line in plan.graph_lines() {
        writeln!(out, "  {line}")?;
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// `plan OLD --diff NEW`: what `run --watch` would do on an edit from OLD to NEW.
pub fn show_diff(old: &Path, new: &Path) -> anyhow::Result<ExitCode> {
    let old_plan = match load_plan(old)? {
        Ok(plan) => plan,
        Err(code) => return Ok(code),
    };
    let new_plan = match load_plan(new)? {
        Ok(plan) => plan,
        Err(code) => return Ok(code),
    };
    let diff = sda_host::graph::diff::diff(&old_plan, &new_plan);
    print!("{diff}");
    if diff.refused().next().is_some() {
        println!("run --watch would refuse this edit and leave the running pipeline unchanged.");
    }
    Ok(ExitCode::SUCCESS)
}
