//! A task's side of a hot swap: at a batch boundary, make the new instance from the running one's state, report, wait for the verdict, then switch and checkpoint (see `crate::swap`).

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
                Ok(Err(reason)) => Err((SwapStep::Restore, format!("the new plugin's `restore` refused state version {version}: {reason}"))),
                Err(fault) => Err((SwapStep::Restore, fault.to_string())),
            }
        })();
        let (recipe, instance, version) = match prepared {
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
        let op = &mut self.operators[k];
        op.wit_version = recipe.plugin.wit_version.clone();
        op.instance = instance;
        op.recipe = recipe;
        // The swap is durable once a checkpoint names the new plugin: a crash from here on restores into it.
        self.take_checkpoint(self.source.offset())?;
        let state_version = self.restore_point.operators.get(k).and_then(|s| s.as_ref()).map_or(version, |(v, _)| *v);
        let _ = prepare.replies.send(Reply::Done { task, state_version, pause: started.elapsed() });
        Ok(())
    }
}
