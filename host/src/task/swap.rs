//! A task's side of a hot swap: at a batch boundary, make the new instance from the running one's state, report, wait for the verdict, then switch (see `crate::swap`).

use super::{Task, TaskError};
use crate::swap::{Control, Prepare, Reply, SwapStep, VERDICT_TIMEOUT, Verdict, step_of};
use std::time::Instant;

impl Task {
    /// Serves the swap requests that arrived since the last batch. Only ever
    /// called between batches, when nothing is in flight.
    pub(super) fn serve_control(&mut self) -> Result<(), TaskError> {
        loop {
            let Some(control) = &self.control else { return Ok(()) };
            match control.try_recv() {
                Some(Control::Prepare(prepare)) => self.prepare_swap(prepare)?,
                None => return Ok(()),
            }
        }
    }

    fn prepare_swap(&mut self, prepare: Prepare) -> Result<(), TaskError> {
        let started = Instant::now();
        let task = self.task_id.clone();
        let Some(k) = self.operators.iter().position(|op| op.plan_index == prepare.operator) else {
            // Not ours after all: nothing to prepare, nothing to wait for.
            let _ = prepare.replies.send(Reply::Skipped { task });
            return Ok(());
        };
        let op = &mut self.operators[k];
        let prepared = (|| {
            let (version, state) = op.instance.snapshot().map_err(|fault| (SwapStep::Snapshot, fault.to_string()))?;
            let recipe = op.recipe.with_setup(prepare.setup.clone());
            let mut instance = recipe.instantiate(&op.name).map_err(|e| (step_of(&e), e.to_string()))?;
            match instance.restore(version, &state) {
                Ok(Ok(())) => Ok((recipe, instance, version)),
                Ok(Err(reason)) => {
                    Err((SwapStep::Restore, format!("the new plugin's `restore` refused state version {version}: {reason}")))
                }
                Err(fault) => Err((SwapStep::Restore, fault.to_string())),
            }
        })();
        let (recipe, mut instance, version) = match prepared {
            Ok(prepared) => prepared,
            Err((step, message)) => {
                tracing::warn!(task = %task, operator = %op.name, %step, "swap: cannot prepare: {message}");
                let _ = prepare.replies.send(Reply::Failed { task, step, message });
                return Ok(());
            }
        };
        if prepare.replies.send(Reply::Ready { task: task.clone(), state_version: version }).is_err() {
            return Ok(()); // the controller gave up
        }
        if prepare.verdict.recv_timeout(VERDICT_TIMEOUT) != Ok(Verdict::Commit) {
            tracing::info!(task = %task, operator = %op.name, "swap: not committed; the running plugin stays");
            return Ok(());
        }
        // No checkpoint here: the swap journal already makes a restart run the new plugin, which
        // restores the last checkpoint's state as it restored the running state just now (and a
        // rewind after a plugin fault does the same). The next checkpoint names the new digest.
        let op = &mut self.operators[k];
        let state_version = instance.state_version().unwrap_or(version);
        op.wit_version = recipe.plugin.wit_version.clone();
        op.instance = instance;
        op.recipe = recipe;
        let _ = prepare.replies.send(Reply::Done { task, state_version, pause: started.elapsed() });
        Ok(())
    }
}
