//! The command line's side of the admin endpoint: `sda-pipeline swap` and `sda-pipeline status` talk to a running pipeline over HTTP.
//!
//! Replies are read as the server's own types ([`SwapReport`], [`PipelineStatus`]): one wire
//! schema, one definition.

use crate::status::PipelineStatus;
use crate::swap::SwapReport;
use serde_json::Value;
use std::time::Duration;

/// Longer than a swap may take (`crate::swap::PREPARE_TIMEOUT` plus its commit).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum AdminClientError {
    #[error("cannot reach the admin endpoint at {address}: {message} (is the pipeline running, with `[admin] listen` set?)")]
    Unreachable { address: String, message: String },
    #[error("the admin endpoint at {address} answered {status}: {message}")]
    Refused { address: String, status: u16, message: String },
    #[error("the admin endpoint at {address} answered something this version cannot read: {message}")]
    Garbled { address: String, message: String },
    #[error(
        "cannot read the admin token `{path}`: {error} (the running pipeline writes it at start-up; pass --token-file if it is elsewhere)"
    )]
    Token { path: String, error: std::io::Error },
    #[error("cannot start an HTTP client: {0}")]
    Client(String),
}

/// Reads a token file written by a running pipeline.
pub fn read_token(path: &std::path::Path) -> Result<String, AdminClientError> {
    std::fs::read_to_string(path)
        .map(|t| t.trim().to_string())
        .map_err(|error| AdminClientError::Token { path: path.display().to_string(), error })
}

/// `POST /swap`: returns the swap's report.
pub fn swap(address: &str, token: &str, operator: &str, plugin: &str, requested_by: &str) -> Result<SwapReport, AdminClientError> {
    let body = serde_json::json!({ "operator": operator, "plugin": plugin, "requested_by": requested_by });
    request(address, "/swap", Some((token, body.to_string())), None)
}

/// `GET /status`, with the bearer token if given (an endpoint with `allow_remote` requires it).
pub fn status(address: &str, token: Option<&str>) -> Result<PipelineStatus, AdminClientError> {
    request(address, "/status", None, token)
}

fn request<T: serde::de::DeserializeOwned>(
    address: &str,
    path: &str,
    post: Option<(&str, String)>,
    get_token: Option<&str>,
) -> Result<T, AdminClientError> {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| AdminClientError::Client(e.to_string()))?;
    let client = reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build().map_err(|e| AdminClientError::Client(e.to_string()))?;
    let url = format!("http://{address}{path}");
    runtime.block_on(async {
        let request = match post {
            Some((token, body)) => client.post(&url).bearer_auth(token).header("content-type", "application/json").body(body),
            None => match get_token {
                Some(token) => client.get(&url).bearer_auth(token),
                None => client.get(&url),
            },
        };
        let response =
            request.send().await.map_err(|e| AdminClientError::Unreachable { address: address.to_string(), message: e.to_string() })?;
        let status = response.status().as_u16();
        let text =
            response.text().await.map_err(|e| AdminClientError::Unreachable { address: address.to_string(), message: e.to_string() })?;
        if !(200..300).contains(&status) {
            let error = serde_json::from_str::<Value>(&text).ok().and_then(|v| v["error"].as_str().map(str::to_string));
            let message = error.unwrap_or_else(|| text.trim().to_string());
            return Err(AdminClientError::Refused { address: address.to_string(), status, message });
        }
        serde_json::from_str(&text).map_err(|e| AdminClientError::Garbled { address: address.to_string(), message: e.to_string() })
    })
}
