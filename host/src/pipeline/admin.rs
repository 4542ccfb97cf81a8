//! The run's admin endpoint (`[admin]`): metrics exporter, a fresh bearer token on disk, the HTTP server.

use super::PipelineError;
use crate::admin::{AdminControl, AdminServer};
use crate::graph::Plan;
use crate::status::StatusBoard;
use crate::swap::Controller;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// Starts the admin endpoint if the plan has one; it serves until the returned server is dropped.
/// `POST /swap` reaches the run's swap controller once the run puts it in `controller`.
pub(super) fn start_admin(
    plan: &Plan,
    board: &Arc<StatusBoard>,
    controller: &Arc<OnceLock<Arc<Controller>>>,
) -> Result<Option<AdminServer>, PipelineError> {
    let Some(admin) = plan.admin else { return Ok(None) };
    let handle = crate::metrics::install()?;
    let token = write_admin_token(&admin_token_path(plan))?;
    // Native operators have no file, so no folder.
    let plugin_dirs: BTreeSet<PathBuf> = plan.operators.iter().filter_map(|op| op.plugin.path.parent()?.canonicalize().ok()).collect();
    let control = AdminControl {
        token,
        token_on_every_route: admin.token_on_every_route,
        plugin_dirs: plugin_dirs.into_iter().collect(),
        controller: controller.clone(),
    };
    let server = AdminServer::start_with_control(admin.listen, board.clone(), handle, Some(control))?;
    tracing::info!(address = %server.local_addr(), "admin endpoint serving /metrics, /healthz, /status and POST /swap");
    Ok(Some(server))
}

/// Where the admin endpoint's bearer token is written at start-up: beside the task folders of the local checkpoint tier.
pub fn admin_token_path(plan: &Plan) -> PathBuf {
    plan.checkpoint.dir.join(&plan.name).join("admin.token")
}

/// A fresh random token, written to `path` readable by its owner only (a new file each time, so an existing
/// file's wider permissions are never kept).
fn write_admin_token(path: &Path) -> Result<String, PipelineError> {
    let fail = |error: std::io::Error| PipelineError::AdminToken { path: path.to_path_buf(), error };
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| fail(std::io::Error::other(e.to_string())))?;
    let token = hex::encode(bytes);
    crate::durable::Replace::default().private().write(path, format!("{token}\n").as_bytes()).map_err(fail)?;
    Ok(token)
}
