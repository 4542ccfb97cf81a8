//! Plugin stdout and stderr, line by line, into `tracing` tagged with the operator's name.
//!
//! The last few stderr lines are also kept, because a Rust plugin's panic message
//! goes there just before it traps: the fault report quotes them.

use bytes::Bytes;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Lines of stderr kept for fault reports.
const TAIL_LINES: usize = 8;
/// Longest line logged; the rest is cut (a plugin cannot flood one log event).
const MAX_LINE_BYTES: usize = 4096;

/// The most recent stderr lines of one instance.
#[derive(Debug, Clone, Default)]
pub struct StderrTail(Arc<Mutex<VecDeque<String>>>);

impl StderrTail {
    fn push(&self, line: String) {
        let mut tail = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }

    /// Takes the lines kept so far, oldest first.
    pub fn take(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).drain(..).collect()
    }
}

/// A WASI output stream that logs each complete line.
#[derive(Clone)]
pub struct PluginOutput {
    operator: Arc<str>,
    stream: &'static str,
    tail: Option<StderrTail>,
}

impl PluginOutput {
    pub fn stdout(operator: Arc<str>) -> Self {
        PluginOutput { operator, stream: "stdout", tail: None }
    }

    pub fn stderr(operator: Arc<str>, tail: StderrTail) -> Self {
        PluginOutput { operator, stream: "stderr", tail: Some(tail) }
    }
}

impl IsTerminal for PluginOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for PluginOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(LineWriter { out: self.clone(), partial: Vec::new() })
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(LineWriter { out: self.clone(), partial: Vec::new() })
    }
}

struct LineWriter {
    out: PluginOutput,
    partial: Vec<u8>,
}

impl LineWriter {
    fn write_bytes(&mut self, bytes: &[u8]) {
        for chunk in bytes.split_inclusive(|&b| b == b'\n') {
            if self.partial.len() < MAX_LINE_BYTES {
                let room = MAX_LINE_BYTES - self.partial.len();
                self.partial.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            if chunk.ends_with(b"\n") {
                self.emit_line();
            }
        }
    }

    fn emit_line(&mut self) {
        let line = String::from_utf8_lossy(&self.partial).trim_end_matches(['\n', '\r']).to_string();
        self.partial.clear();
        if line.trim().is_empty() {
            return;
        }
        tracing::info!(target: "sda::plugin", operator = %self.out.operator, stream = self.out.stream, "{line}");
        if let Some(tail) = &self.out.tail {
            tail.push(line);
        }
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.partial.is_empty() {
            self.emit_line();
        }
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LineWriter {
    async fn ready(&mut self) {}
}

impl OutputStream for LineWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.write_bytes(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for LineWriter {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.get_mut().write_bytes(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
