//! An operator as the task sees it: `parallelism` instances of one plugin, each a shard, called together and answering as one.
//!
//! Every instance gets every call with the same input (the operator's input scope is
//! all-records: each owns a share of the work and emits only that share). Shard 0 runs on the
//! calling thread; shards 1 to N-1 each live on a persistent worker thread, fed through a
//! channel, so a call costs N-1 channel round trips, never a thread spawn.
//!
//! What the N answers become:
//! - outputs: merged by their `sda-order` header (see [`super::order`]), which is removed;
//! - per-record failures: shard 0's (every shard saw the same records, and an operator decides
//!   a record's failure before any sharded work);
//! - a fault in any shard: the operator's fault, naming the shard; the whole operator is then
//!   discarded, as a single instance would be;
//! - snapshots: every shard's, compared byte for byte, one kept (they must be equal: the state
//!   does not depend on the shard). Restores put that one state into every shard, so a restart
//!   with another `parallelism` needs no re-sharding: ownership is computed from the state.
//!
//! It does not decide what to do about a fault (the task does), nor which plugins may run
//! sharded (`Runtime::instantiate` refuses the others).

use super::instance::ShardInstance;
use super::{CallOutput, FaultKind, PluginFault};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;

/// One call, as sent to a worker (the input shared, not copied per shard).
enum Request {
    Process(Arc<[u8]>),
    Watermark(i64),
    Snapshot,
    Restore(u32, Arc<[u8]>),
}

/// A shard's answer to one [`Request`], with the memory it holds after it.
struct Answer {
    reply: Reply,
    memory_bytes: usize,
}

enum Reply {
    Call(Result<CallOutput, PluginFault>),
    Snapshot(Result<(u32, Vec<u8>), PluginFault>),
    Restore(Result<Result<(), String>, PluginFault>),
}

/// The payload of a reply of the kind its request asked for (a worker answers each request in kind).
macro_rules! unwrap_reply {
    ($reply:expr, $kind:ident) => {
        match $reply {
            Reply::$kind(result) => result,
            _ => unreachable!("a shard answered another kind of call"),
        }
    };
}

impl ShardInstance {
    fn serve(&mut self, request: &Request) -> Answer {
        let reply = match request {
            Request::Process(batch) => Reply::Call(self.process(batch)),
            Request::Watermark(t) => Reply::Call(self.on_watermark(*t)),
            Request::Snapshot => Reply::Snapshot(self.snapshot()),
            Request::Restore(version, state) => Reply::Restore(self.restore(*version, state)),
        };
        Answer { reply, memory_bytes: self.memory_bytes() }
    }
}

/// A shard on its own thread.
struct Worker {
    /// Closed on drop, which ends the thread.
    requests: Option<mpsc::Sender<Request>>,
    answers: mpsc::Receiver<Answer>,
    thread: Option<JoinHandle<()>>,
    /// As of its last answer.
    memory_bytes: usize,
}

impl Worker {
    /// (The thread's name is short: Linux keeps 15 bytes of it, and the operator is in every log line anyway.)
    fn start(index: u32, mut shard: ShardInstance) -> std::io::Result<Worker> {
        let (requests, inbox) = mpsc::channel::<Request>();
        let (outbox, answers) = mpsc::channel();
        let memory_bytes = shard.memory_bytes();
        let thread = std::thread::Builder::new().name(format!("sda-shard-{index}")).spawn(move || {
            for request in inbox {
                if outbox.send(shard.serve(&request)).is_err() {
                    return;
                }
            }
        })?;
        Ok(Worker { requests: Some(requests), answers, thread: Some(thread), memory_bytes })
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.requests.take();
        if let Some(thread) = self.thread.take() {
            // A call in flight ends at its deadline; the thread then sees the closed channel.
            let _ = thread.join();
        }
    }
}

/// An operator's instances: shard 0 here, the others on workers.
pub struct OperatorInstance {
    operator: Arc<str>,
    digest: String,
    lead: ShardInstance,
    workers: Vec<Worker>,
    /// The first fault of any shard: the operator is unusable after it.
    fault: Option<PluginFault>,
}

impl OperatorInstance {
    /// Puts shards `1..` on worker threads; `shards[0]` stays on the caller's.
    pub(super) fn new(operator: &str, digest: &str, shards: Vec<ShardInstance>) -> std::io::Result<OperatorInstance> {
        let mut shards = shards.into_iter();
        let lead = shards.next().expect("an operator has at least one shard");
        let workers = shards.enumerate().map(|(i, shard)| Worker::start(i as u32 + 1, shard)).collect::<Result<_, _>>()?;
        Ok(OperatorInstance { operator: operator.into(), digest: digest.to_string(), lead, workers, fault: None })
    }

    pub fn operator(&self) -> &str {
        &self.operator
    }

    /// `sha256:<hex>` of the plugin file this operator runs.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// How many instances run the operator (`parallelism`).
    pub fn parallelism(&self) -> u32 {
        self.workers.len() as u32 + 1
    }

    /// The fault that discarded this operator, if one did.
    pub fn fault(&self) -> Option<&PluginFault> {
        self.fault.as_ref()
    }

    /// Runs `process` over a packed batch in every shard: outputs merged, shard 0's failures.
    pub fn process(&mut self, batch: &[u8]) -> Result<CallOutput, PluginFault> {
        if self.workers.is_empty() {
            let output = self.lead.process(batch);
            return self.merge_calls(vec![output]);
        }
        let answers = self.call_all(Request::Process(Arc::from(batch)));
        self.merge_calls(answers.into_iter().map(|reply| unwrap_reply!(reply, Call)).collect())
    }

    /// Runs `on-watermark` in every shard: outputs merged.
    pub fn on_watermark(&mut self, event_time_ms: i64) -> Result<CallOutput, PluginFault> {
        let answers = self.call_all(Request::Watermark(event_time_ms));
        self.merge_calls(answers.into_iter().map(|reply| unwrap_reply!(reply, Call)).collect())
    }

    /// The version of the state format this build's `snapshot` writes.
    pub fn state_version(&mut self) -> Result<u32, PluginFault> {
        self.check_usable("state-version")?;
        self.lead.state_version().inspect_err(|fault| self.fault = Some(fault.clone()))
    }

    /// `(state_version, bytes)` of the operator's state: every shard's, which must be the same.
    pub fn snapshot(&mut self) -> Result<(u32, Vec<u8>), PluginFault> {
        let answers = self.call_all(Request::Snapshot);
        let snapshots = self.first_fault(answers.into_iter().map(|reply| unwrap_reply!(reply, Snapshot)).collect())?;
        let count = snapshots.len();
        let mut snapshots = snapshots.into_iter().enumerate();
        let (_, lead) = snapshots.next().expect("an operator has at least one shard");
        for (index, other) in snapshots {
            if other != lead {
                let fault = PluginFault {
                    operator: self.operator.to_string(),
                    kind: FaultKind::Trap,
                    call: "snapshot",
                    message: format!(
                        "the plugin is not deterministic: shard {index} of {count} holds another state than shard 0 ({}), although every \
                         shard saw the same records; its state must not depend on the shard, the clock or randomness. Its outputs \
                         cannot be trusted either: run it with `parallelism = 1` until it is fixed",
                        describe_difference(&lead, &other)
                    ),
                };
                tracing::warn!(operator = %self.operator, shard = index, "shards hold different states; operator discarded");
                self.fault = Some(fault.clone());
                return Err(fault);
            }
        }
        Ok(lead)
    }

    /// Restores one state into every shard; `Ok(Err(reason))` when the plugin refuses it.
    pub fn restore(&mut self, version: u32, state: &[u8]) -> Result<Result<(), String>, PluginFault> {
        let answers = self.call_all(Request::Restore(version, Arc::from(state)));
        let results = self.first_fault(answers.into_iter().map(|reply| unwrap_reply!(reply, Restore)).collect())?;
        Ok(results.into_iter().collect::<Result<Vec<()>, String>>().map(drop))
    }

    /// Linear memory the shards hold now, in bytes, together.
    pub fn memory_bytes(&self) -> usize {
        self.lead.memory_bytes() + self.workers.iter().map(|w| w.memory_bytes).sum::<usize>()
    }

    /// Sends `request` to every worker, serves it on shard 0 meanwhile, and collects the replies in
    /// shard order. A worker that is gone answers with a fault.
    fn call_all(&mut self, request: Request) -> Vec<Reply> {
        let call = request.call_name();
        if let Err(fault) = self.check_usable(call) {
            return (0..self.parallelism()).map(|_| Reply::fault(call, fault.clone())).collect();
        }
        let sent: Vec<bool> = self
            .workers
            .iter()
            .map(|w| {
                let request = match &request {
                    Request::Process(b) => Request::Process(b.clone()),
                    Request::Watermark(t) => Request::Watermark(*t),
                    Request::Snapshot => Request::Snapshot,
                    Request::Restore(v, s) => Request::Restore(*v, s.clone()),
                };
                w.requests.as_ref().is_some_and(|r| r.send(request).is_ok())
            })
            .collect();
        let mut replies = vec![self.lead.serve(&request).reply];
        for (index, (worker, sent)) in self.workers.iter_mut().zip(sent).enumerate() {
            let answer = if sent { worker.answers.recv().ok() } else { None };
            replies.push(match answer {
                Some(answer) => {
                    worker.memory_bytes = answer.memory_bytes;
                    answer.reply
                }
                None => Reply::fault(
                    call,
                    PluginFault {
                        operator: self.operator.to_string(),
                        kind: FaultKind::Trap,
                        call,
                        message: format!("the thread of shard {} ended unexpectedly", index + 1),
                    },
                ),
            });
        }
        replies
    }

    fn check_usable(&self, call: &'static str) -> Result<(), PluginFault> {
        match &self.fault {
            None => Ok(()),
            Some(fault) => Err(PluginFault {
                message: format!("the instance was discarded after an earlier fault in `{}`: {}", fault.call, fault.message),
                call,
                ..fault.clone()
            }),
        }
    }

    /// Every shard's result, or the first shard's fault (which discards the operator), naming the shard.
    fn first_fault<T>(&mut self, results: Vec<Result<T, PluginFault>>) -> Result<Vec<T>, PluginFault> {
        let count = results.len();
        let mut values = Vec::with_capacity(count);
        for (index, result) in results.into_iter().enumerate() {
            match result {
                Ok(value) => values.push(value),
                Err(mut fault) => {
                    if count > 1 && self.fault.is_none() {
                        fault.message = format!("shard {index} of {count}: {}", fault.message);
                    }
                    self.fault.get_or_insert_with(|| fault.clone());
                    return Err(fault);
                }
            }
        }
        Ok(values)
    }

    fn merge_calls(&mut self, results: Vec<Result<CallOutput, PluginFault>>) -> Result<CallOutput, PluginFault> {
        let mut calls = self.first_fault(results)?.into_iter();
        let lead = calls.next().expect("an operator has at least one shard");
        let mut batches = Vec::with_capacity(self.workers.len() + 1);
        batches.push(lead.outputs);
        batches.extend(calls.map(|c| c.outputs));
        let (outputs, output_count) = super::order::merge(batches);
        Ok(CallOutput { outputs, output_count, failures: lead.failures })
    }
}

impl Request {
    fn call_name(&self) -> &'static str {
        match self {
            Request::Process(_) => "process",
            Request::Watermark(_) => "on-watermark",
            Request::Snapshot => "snapshot",
            Request::Restore(..) => "restore",
        }
    }
}

impl Reply {
    /// The reply a call named `call` gets when its shard cannot answer.
    fn fault(call: &str, fault: PluginFault) -> Reply {
        match call {
            "snapshot" => Reply::Snapshot(Err(fault)),
            "restore" => Reply::Restore(Err(fault)),
            _ => Reply::Call(Err(fault)),
        }
    }
}

/// Where two states part, for the error message.
fn describe_difference(lead: &(u32, Vec<u8>), other: &(u32, Vec<u8>)) -> String {
    if lead.0 != other.0 {
        return format!("state version {} against {}", other.0, lead.0);
    }
    let at = lead.1.iter().zip(&other.1).position(|(a, b)| a != b).unwrap_or(lead.1.len().min(other.1.len()));
    format!("{} bytes against {}, first different at byte {at}", other.1.len(), lead.1.len())
}
