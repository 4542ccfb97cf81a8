//! The admin endpoint: `GET /metrics`, `/healthz` and `/status` on a local port, served from a background thread.
//!
//! The host keeps a [`StatusBoard`] (in [`crate::status`]) up to date as it
//! runs; the [`AdminServer`] reads it to answer:
//!
//! - `GET /metrics`: the Prometheus text exposition of [`crate::metrics`], with
//!   `checkpoint_age_seconds` recomputed from the board first, so it is fresh
//!   at every scrape.
//! - `GET /healthz`: `200 ok` while every task is healthy; `503` when one has
//!   failed, with the reasons, one a line, after the word `down`. A
//!   `degraded` pipeline (a condition set with [`StatusBoard::set_degraded`])
//!   still answers 200, so a liveness probe does not restart it, and names
//!   the conditions the same way.
//! - `GET /status`: [`PipelineStatus`] as pretty JSON.
//! - anything else: 404 (405 for another method on the three paths).
//!
//! The server has its own single-threaded tokio runtime on its own thread, so
//! it answers even while every task thread is busy; dropping the
//! [`AdminServer`] stops it and frees the port.

pub mod client;

use crate::status::{Health, StatusBoard};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::watch;

/// How long connections still open at shutdown may take to finish before they are cut.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// The Prometheus text exposition format's content type.
const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The address could not be bound; `reason` says why in a few words
    /// (`address in use`, `permission denied`, ...).
    #[error("cannot listen on `{address}`: {reason}")]
    Bind { address: SocketAddr, reason: String, kind: std::io::ErrorKind },
    #[error("cannot start the admin endpoint: {0}")]
    Start(std::io::Error),
}

impl AdminError {
    fn bind(address: SocketAddr, e: std::io::Error) -> AdminError {
        use std::io::ErrorKind;
        let reason = match e.kind() {
            ErrorKind::AddrInUse => "address in use".to_string(),
            ErrorKind::AddrNotAvailable => "no such address on this machine".to_string(),
            ErrorKind::PermissionDenied => "permission denied".to_string(),
            _ => e.to_string(),
        };
        AdminError::Bind { address, reason, kind: e.kind() }
    }
}

/// The admin HTTP server; serves until dropped.
#[derive(Debug)]
pub struct AdminServer {
    local_addr: SocketAddr,
    stop: Option<watch::Sender<bool>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Clone)]
struct AppState {
    board: Arc<StatusBoard>,
    metrics: PrometheusHandle,
    control: Option<AdminControl>,
}

/// What the admin endpoint needs to change the running pipeline (`POST /swap`).
#[derive(Clone)]
pub struct AdminControl {
    /// Callers present it as `Authorization: Bearer <token>`.
    pub token: String,
    /// Whether every route requires the token (`[admin] allow_remote`), not only `POST /swap`.
    pub token_on_every_route: bool,
    /// The folders `POST /swap` may load plugins from (canonical): those of the plugins the pipeline
    /// file names. A path that resolves (through `..` or a symlink) outside them is refused.
    pub plugin_dirs: Vec<std::path::PathBuf>,
    /// Set once the tasks can be swapped (after start-up); until then `POST /swap` answers 503.
    pub controller: Arc<OnceLock<Arc<crate::swap::Controller>>>,
}

impl AdminServer {
    /// Binds `listen` (e.g. `127.0.0.1:0` in tests) and serves on a background
    /// thread with its own small tokio runtime. Binding happens before this
    /// returns, so an address in use is reported here.
    ///
    /// `metrics` should be the handle [`crate::metrics::install`] returned: the
    /// `checkpoint_age_seconds` refresh goes to the process-wide recorder.
    pub fn start(listen: SocketAddr, board: Arc<StatusBoard>, metrics: PrometheusHandle) -> Result<AdminServer, AdminError> {
        AdminServer::start_with_control(listen, board, metrics, None)
    }

    /// [`AdminServer::start`], also serving `POST /swap` when `control` is given.
    pub fn start_with_control(
        listen: SocketAddr,
        board: Arc<StatusBoard>,
        metrics: PrometheusHandle,
        control: Option<AdminControl>,
    ) -> Result<AdminServer, AdminError> {
        let listener = std::net::TcpListener::bind(listen).map_err(|e| AdminError::bind(listen, e))?;
        let local_addr = listener.local_addr().map_err(AdminError::Start)?;
        listener.set_nonblocking(true).map_err(AdminError::Start)?;
        let runtime =
            tokio::runtime::Builder::new_current_thread().enable_all().thread_name("sda-admin").build().map_err(AdminError::Start)?;
        let listener = {
            let _context = runtime.enter();
            tokio::net::TcpListener::from_std(listener).map_err(AdminError::Start)?
        };
        let app = router(AppState { board, metrics, control });
        let (stop, stopped) = watch::channel(false);
        let thread = std::thread::Builder::new()
            .name("sda-admin".into())
            .spawn(move || runtime.block_on(serve(listener, app, stopped)))
            .map_err(AdminError::Start)?;
        tracing::info!(address = %local_addr, "admin endpoint serving /metrics, /healthz and /status");
        Ok(AdminServer { local_addr, stop: Some(stop), thread: Some(thread) })
    }

    /// The address it listens on (with the port chosen, if `listen` had port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for AdminServer {
    /// Stops accepting, lets open requests finish (for up to two seconds), and joins the thread.
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            // Fails only if the server already ended, which is what we want.
            let _ = stop.send(true);
        }
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::warn!(address = %self.local_addr, "the admin endpoint's thread panicked");
        }
    }
}

fn router(state: AppState) -> Router {
    let guarded = state.control.as_ref().is_some_and(|c| c.token_on_every_route);
    let routes = Router::new()
        .route("/metrics", get(metrics_page))
        .route("/healthz", get(healthz))
        .route("/status", get(status))
        .route("/swap", post(swap))
        .fallback(not_found);
    let routes = if guarded { routes.layer(axum::middleware::from_fn_with_state(state.clone(), token_required)) } else { routes };
    routes.with_state(state)
}

/// With `allow_remote`, every request must carry the bearer token, whatever its route.
async fn token_required(State(state): State<AppState>, request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    match &state.control {
        Some(control) if !bearer_matches(request.headers(), &control.token) => unauthorized(),
        _ => next.run(request).await,
    }
}

/// Whether the request's `Authorization: Bearer` token is `expected`.
fn bearer_matches(headers: &HeaderMap, expected: &str) -> bool {
    let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    given.is_some_and(|t| !expected.is_empty() && same_token(t.trim().as_bytes(), expected.as_bytes()))
}

fn unauthorized() -> Response {
    // Nothing about where the token is: this caller has not shown it may know.
    json_error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token".into(), None)
}

async fn serve(listener: tokio::net::TcpListener, app: Router, mut stopped: watch::Receiver<bool>) {
    let mut signal = stopped.clone();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        let _ = signal.wait_for(|stop| *stop).await;
    });
    let mut server = tokio::spawn(std::future::IntoFuture::into_future(server));
    tokio::select! {
        ended = &mut server => {
            // axum retries failed accepts, so this is unexpected.
            tracing::error!("the admin endpoint stopped serving: {ended:?}");
        }
        _ = stopped.wait_for(|stop| *stop) => {
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await.is_err() {
                server.abort();
            }
        }
    }
}

async fn metrics_page(State(state): State<AppState>) -> Response {
    state.board.publish_checkpoint_ages();
    state.board.refresh_dlq_growth();
    let body = state.metrics.render();
    ([(header::CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE)], body).into_response()
}

async fn healthz(State(state): State<AppState>) -> Response {
    state.board.refresh_dlq_growth();
    let (health, reasons) = state.board.health();
    let mut body = format!("{}\n", health.as_str());
    for reason in reasons {
        body.push_str(&reason);
        body.push('\n');
    }
    let code = if health == Health::Down { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    (code, body).into_response()
}

async fn status(State(state): State<AppState>) -> Response {
    state.board.refresh_dlq_growth();
    match serde_json::to_string_pretty(&state.board.snapshot()) {
        Ok(mut json) => {
            json.push('\n');
            ([(header::CONTENT_TYPE, "application/json")], json).into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("cannot render the status: {e}\n")).into_response(),
    }
}

/// `POST /swap` body.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SwapBody {
    operator: String,
    /// Path of the new component, as the host process sees it.
    plugin: String,
    /// Who asks, for `/status` and the swap journal (e.g. `sda-pipeline swap (user alice)`).
    requested_by: Option<String>,
}

/// Compares without an early exit, so response time says nothing of how much of a guess was right.
fn same_token(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len() && given.iter().zip(expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

fn json_error(status: StatusCode, message: String, step: Option<crate::swap::SwapStep>) -> Response {
    let body = serde_json::json!({ "error": message, "step": step });
    (status, [(header::CONTENT_TYPE, "application/json")], format!("{body}\n")).into_response()
}

async fn swap(State(state): State<AppState>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let Some(control) = state.control else {
        return json_error(StatusCode::NOT_FOUND, "this pipeline's admin endpoint does not take changes".into(), None);
    };
    if !bearer_matches(&headers, &control.token) {
        return unauthorized();
    }
    let request: SwapBody = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                format!("the body must be {{\"operator\", \"plugin\"[, \"requested_by\"]}}: {e}"),
                None,
            );
        }
    };
    let Some(controller) = control.controller.get().cloned() else {
        return json_error(StatusCode::SERVICE_UNAVAILABLE, "the pipeline is still starting; try again in a moment".into(), None);
    };
    let plugin = match plugin_in_allowed_dirs(&request.plugin, &control.plugin_dirs) {
        Ok(plugin) => plugin,
        Err(message) => return json_error(StatusCode::FORBIDDEN, message, None),
    };
    let by = request.requested_by.unwrap_or_else(|| "admin endpoint".into());
    let request = crate::swap::SwapRequest::plugin(&request.operator, plugin, &by);
    match tokio::task::spawn_blocking(move || controller.swap(&request)).await {
        Ok(Ok(report)) => {
            let json = serde_json::to_string_pretty(&report).unwrap_or_default();
            ([(header::CONTENT_TYPE, "application/json")], format!("{json}\n")).into_response()
        }
        Ok(Err(e)) => {
            use crate::swap::SwapError;
            let status = match e {
                SwapError::UnknownOperator { .. } => StatusCode::NOT_FOUND,
                SwapError::Busy => StatusCode::CONFLICT,
                SwapError::Failed { .. } | SwapError::Timeout { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            };
            json_error(status, e.to_string(), e.step())
        }
        Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, format!("the swap panicked: {e}"), None),
    }
}

/// The plugin a swap request names, resolved (`..` and symlinks), if it lies in one of `dirs`; a
/// path that does not resolve goes on as given, for the swap's read step to report.
fn plugin_in_allowed_dirs(requested: &str, dirs: &[std::path::PathBuf]) -> Result<std::path::PathBuf, String> {
    let Ok(resolved) = std::path::Path::new(requested).canonicalize() else { return Ok(requested.into()) };
    if dirs.iter().any(|dir| resolved.starts_with(dir)) {
        return Ok(resolved);
    }
    let dirs = dirs.iter().map(|d| format!("`{}`", d.display())).collect::<Vec<_>>().join(", ");
    Err(format!(
        "`{requested}` (`{}`) is outside the plugin folders of this pipeline ({dirs}): put the new plugin beside the one it replaces",
        resolved.display()
    ))
}

async fn not_found(uri: Uri) -> Response {
    (StatusCode::NOT_FOUND, format!("no page `{}` here; try /metrics, /healthz or /status (and POST /swap)\n", uri.path())).into_response()
}
