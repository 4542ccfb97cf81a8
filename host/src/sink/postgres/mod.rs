//! The PostgreSQL sink: each record one row keyed by the record key, one transaction per batch, idempotent by that key.
//!
//! A row is `(<key column> text PRIMARY KEY, payload jsonb, delivered_at timestamptz)`, and every
//! batch goes in as
//!
//! ```sql
//! BEGIN;
//! INSERT INTO <table> (<key column>, payload)
//!     SELECT k, p::jsonb FROM unnest($1::text[], $2::text[]) AS u(k, p) ORDER BY k
//!     ON CONFLICT (<key column>) DO NOTHING;
//! COMMIT;
//! ```
//!
//! `ORDER BY k`: every batch takes its row locks in key order, so sinks (tasks, processes) writing
//! overlapping keys to one table wait for each other instead of deadlocking.
//!
//! sent pipelined, so a batch costs one round trip whatever its size. A replay after a crash
//! regenerates outputs with the same keys (alert ids are deterministic), so delivering it again
//! changes nothing by construction: the rows already there are counted in
//! [`PostgresSink::already_present`], never written twice. This is also why a transient failure can
//! simply be retried, even when it is unknown whether the lost COMMIT took effect.
//!
//! Callers are synchronous threads: the sink owns a small current-thread tokio runtime and blocks
//! on it. It must not be called from inside another tokio runtime.

mod names;
mod sqlstate;
mod url;

pub use names::{check_key_column, check_table_name};
pub use sqlstate::{Class, classify};
pub use url::{check_url, redact_url};

use super::{Rejection, SinkError, Undelivered};
use names::{Ident, Table};
use sqlstate::describe;
use std::time::{Duration, Instant};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, NoTls, Statement};

/// First pause after a transient failure; doubled after each further one, up to [`MAX_BACKOFF`].
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
/// Longest pause between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Longest one attempt (reconnecting if needed, then the batch's transaction) may take before the
/// connection is given up as hung and the attempt counted as a transient failure. A TCP connection
/// whose peer vanished without a reset would otherwise block a flush forever.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest key accepted. A btree index entry cannot exceed about 2.7 kB (on 8 kB pages), so a key
/// past this could fail to insert, and with it its whole batch, forever; a real record key is far
/// shorter.
pub const MAX_KEY_BYTES: usize = 2048;

#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    #[error("sink `{sink}`: `{name}` is not allowed as a {what}: {reason}")]
    InvalidIdentifier { sink: String, what: &'static str, name: String, reason: String },
    #[error("sink `{sink}`: `{url}` is not a valid PostgreSQL URL: {}", describe(.error))]
    InvalidUrl { sink: String, url: String, error: tokio_postgres::Error },
    #[error("sink `{sink}`: cannot start its tokio runtime: {error}")]
    Runtime { sink: String, error: std::io::Error },
    #[error("sink `{sink}`: could not connect to `{url}` within {timeout:?}")]
    ConnectTimeout { sink: String, url: String, timeout: Duration },
    #[error("sink `{sink}`: could not connect to `{url}`: {}", describe(.error))]
    Connect { sink: String, url: String, error: tokio_postgres::Error },
    #[error("sink `{sink}`: table `{table}`: could not {action}: {reason}")]
    Setup { sink: String, table: String, action: &'static str, reason: String },
    #[error("sink `{sink}`: table `{table}` exists but cannot take this sink's rows: {reason}")]
    IncompatibleTable { sink: String, table: String, reason: String },
    #[error("sink `{sink}`: table `{table}`: inserting a batch of {rows} rows failed for good (they stay queued): {reason}")]
    Insert { sink: String, table: String, rows: usize, reason: String },
    #[error(
        "sink `{sink}`: table `{table}`: gave up after {attempts} attempts over {elapsed:.1?} \
         (retry limit {limit:?}); the {pending} rows stay queued for the next flush; last error: {last}"
    )]
    RetryLimit { sink: String, table: String, attempts: u32, elapsed: Duration, limit: Duration, pending: usize, last: String },
}

/// A live connection and what was prepared on it.
struct Conn {
    client: Client,
    insert: Statement,
    /// The task driving the connection's socket on the sink's runtime.
    task: tokio::task::JoinHandle<()>,
}

pub struct PostgresSink {
    name: String,
    /// `None` after a connection was lost, until the next flush reconnects.
    conn: Option<Conn>,
    config: Config,
    /// The URL as shown in messages: without its password.
    url: String,
    connect_timeout: Duration,
    table: Table,
    key_column: Ident,
    insert_sql: String,
    /// The batch in hand, in arrival order, inserted whole by [`PostgresSink::flush`].
    keys: Vec<String>,
    payloads: Vec<String>,
    /// How long a flush keeps retrying transient failures; `None`: until it succeeds.
    retry_for: Option<Duration>,
    inserted: u64,
    already_present: u64,
    /// Declared last so it is dropped after the connection it drives.
    runtime: tokio::runtime::Runtime,
}

/// Why an attempt at a batch failed, and what to do next.
enum Failure {
    /// Retry after a pause; `reconnect` drops the connection first (it is lost or in doubt).
    Transient {
        reason: String,
        reconnect: bool,
    },
    Permanent(PostgresError),
}

impl PostgresSink {
    /// Connects (within `connect_timeout`, else a clear error naming the URL without its password)
    /// and creates the table if absent:
    /// `CREATE TABLE IF NOT EXISTS <table> (<key_column> text PRIMARY KEY, payload jsonb NOT NULL,
    /// delivered_at timestamptz NOT NULL DEFAULT now())`.
    ///
    /// `table` may be schema-qualified (`schema.table`). Both names may hold only ASCII letters,
    /// digits and `_` (plus the one dot), at most 63 bytes a part, and are always double-quoted in
    /// SQL: no text from the configuration reaches SQL unchecked, and their case is kept as written
    /// (`Alerts` is not `alerts`). `key_column` cannot be `payload` or `delivered_at`.
    ///
    /// An existing table is checked now rather than at the first flush, so a misconfiguration stops
    /// the pipeline at start: the key column must be `text` (or unbounded `varchar`) and the sole
    /// column of a unique, non-partial, immediate index (what `ON CONFLICT` needs), `payload` must
    /// be `jsonb`, any other column must be nullable or have a default, and the role must be allowed
    /// to insert both columns.
    ///
    /// This first connection is not retried: a sink that cannot reach its database at start says
    /// so at once. Once running, [`PostgresSink::flush`] reconnects on its own.
    pub fn connect(
        name: &str,
        url: &str,
        table: &str,
        key_column: &str,
        connect_timeout: std::time::Duration,
    ) -> Result<PostgresSink, PostgresError> {
        let sink = name.to_string();
        let invalid = |what, name: &str, reason: String| PostgresError::InvalidIdentifier {
            sink: sink.clone(),
            what,
            name: name.to_string(),
            reason,
        };
        let table = Table::parse(table).map_err(|reason| invalid("table name", table, reason))?;
        check_key_column(key_column).map_err(|reason| invalid("key column", key_column, reason))?;
        let key = Ident(key_column.to_string());
        let shown = redact_url(url);
        let mut config: Config =
            url.parse().map_err(|error| PostgresError::InvalidUrl { sink: sink.clone(), url: shown.clone(), error })?;
        config.connect_timeout(connect_timeout);
        if config.get_application_name().is_none() {
            config.application_name(format!("sda-pipeline sink {name}"));
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| PostgresError::Runtime { sink: sink.clone(), error })?;
        let insert_sql = format!(
            "INSERT INTO {t} ({k}, payload) SELECT k, p::jsonb FROM unnest($1::text[], $2::text[]) AS u(k, p) ORDER BY k \
             ON CONFLICT ({k}) DO NOTHING",
            t = table.quoted(),
            k = key.quoted(),
        );
        let mut sink = PostgresSink {
            name: sink,
            conn: None,
            config,
            url: shown,
            connect_timeout,
            table,
            key_column: key,
            insert_sql,
            keys: Vec::new(),
            payloads: Vec::new(),
            retry_for: None,
            inserted: 0,
            already_present: 0,
            runtime,
        };
        let (client, task) = sink.runtime.block_on(open(&sink.config, connect_timeout)).map_err(|e| match e {
            None => PostgresError::ConnectTimeout { sink: sink.name.clone(), url: sink.url.clone(), timeout: connect_timeout },
            Some(error) => PostgresError::Connect { sink: sink.name.clone(), url: sink.url.clone(), error },
        })?;
        let insert = match sink.runtime.block_on(async { tokio::time::timeout(ATTEMPT_TIMEOUT, sink.set_up(&client)).await }) {
            Ok(result) => result,
            Err(_) => Err(sink.setup_error("set it up", format!("no answer from the server within {ATTEMPT_TIMEOUT:?}"))),
        };
        let insert = insert.inspect_err(|_| task.abort())?;
        sink.conn = Some(Conn { client, insert, task });
        Ok(sink)
    }

    /// How long a flush keeps retrying transient failures before it returns
    /// [`PostgresError::RetryLimit`] (the rows staying queued). By default it retries until the
    /// database is back, since a sink that gives up would have to stop the pipeline anyway; a
    /// limit lets the caller take a checkpoint-free decision (alert, stop) after a known time.
    pub fn with_retry_limit(mut self, retry_for: Duration) -> PostgresSink {
        self.retry_for = Some(retry_for);
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The table as configured (`schema.table` or `table`), for messages and the summary.
    pub fn table(&self) -> &str {
        &self.table.display
    }

    /// Queues one record for the batch. Refuses for good (the host dead-letters it as
    /// `SinkRejected`) what could never be inserted, since one such row would fail its whole batch
    /// on every retry: an empty key, a key that is not UTF-8, holds a NUL byte or is longer than
    /// [`MAX_KEY_BYTES`]; a payload that is not JSON (as `serde_json` reads it, which is slightly
    /// stricter than `jsonb`: numbers beyond the range of f64 and nesting deeper than 128 are
    /// refused too), or that holds the escape `\u0000` (`jsonb` cannot store it).
    pub fn write(&mut self, key: &[u8], payload: &[u8]) -> Result<(), Rejection> {
        let (key, payload) = check_record(key, payload)?;
        self.keys.push(key.to_owned());
        self.payloads.push(payload.to_owned());
        Ok(())
    }

    /// Inserts the queued rows in one transaction, in one round trip (see the module docs).
    ///
    /// A transient failure (see [`classify`]) is retried with exponential backoff and jitter
    /// (100 ms doubling to 5 s), reconnecting when the connection is lost or in doubt, each retry
    /// logged at warn with its reason; the queued rows are never dropped. After the limit set with
    /// [`PostgresSink::with_retry_limit`] (none by default), it returns
    /// [`PostgresError::RetryLimit`]. A permanent failure returns at once with an error naming the
    /// table. In both cases the rows stay queued, and a later flush delivers them.
    ///
    /// Since a lost COMMIT may have taken effect, a row retried after one is counted in
    /// [`PostgresSink::already_present`] rather than [`PostgresSink::inserted`]: it is there once
    /// either way.
    pub fn flush(&mut self) -> Result<(), PostgresError> {
        if self.keys.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let mut backoff = INITIAL_BACKOFF;
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let budget = self.retry_for.map(|limit| limit.saturating_sub(started.elapsed()));
            let (reason, reconnect) = match self.attempt(budget) {
                Ok(inserted) => {
                    let rows = self.keys.len() as u64;
                    self.inserted += inserted;
                    self.already_present += rows - inserted.min(rows);
                    self.keys.clear();
                    self.payloads.clear();
                    if attempts > 1 {
                        tracing::info!(sink = %self.name, table = %self.table.display, attempts, rows, inserted, "batch delivered after \
                            retrying");
                    }
                    return Ok(());
                }
                Err(Failure::Permanent(e)) => return Err(e),
                Err(Failure::Transient { reason, reconnect }) => (reason, reconnect),
            };
            if reconnect {
                self.drop_connection();
            }
            let elapsed = started.elapsed();
            let mut delay = jittered(backoff);
            if let Some(limit) = self.retry_for {
                if elapsed >= limit {
                    return Err(PostgresError::RetryLimit {
                        sink: self.name.clone(),
                        table: self.table.display.clone(),
                        attempts,
                        elapsed,
                        limit,
                        pending: self.keys.len(),
                        last: reason,
                    });
                }
                delay = delay.min(limit - elapsed);
            }
            tracing::warn!(
                sink = %self.name,
                table = %self.table.display,
                attempt = attempts,
                rows = self.keys.len(),
                retry_in = ?delay,
                reconnect,
                %reason,
                "transient failure delivering a batch to PostgreSQL; retrying"
            );
            std::thread::sleep(delay);
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Delivers a batch in one transaction (see [`PostgresSink::flush`]); returns the records not delivered, by index:
    /// those [`PostgresSink::write`] refused for good, and, when `retry_for` ran out, every other record of the
    /// batch, dead-lettered as `RetriesExhausted` rather than holding the pipeline back for good.
    pub fn deliver(&mut self, records: &[(&[u8], &[u8])]) -> Result<Vec<(usize, Undelivered)>, SinkError> {
        let mut undelivered = Vec::new();
        for (i, (key, payload)) in records.iter().enumerate() {
            if let Err(r) = self.write(key, payload) {
                undelivered.push((i, Undelivered::Rejected(r)));
            }
        }
        let error = match self.flush() {
            Ok(()) => return Ok(undelivered),
            Err(error) => error,
        };
        let PostgresError::RetryLimit { attempts, .. } = &error else {
            return Err(SinkError::Postgres { sink: self.name.clone(), message: error.to_string() });
        };
        let retries = attempts.saturating_sub(1);
        tracing::warn!(sink = %self.name, error = %error, "dead-lettering the batch");
        self.abandon_pending();
        let refused: std::collections::HashSet<usize> = undelivered.iter().map(|(i, _)| *i).collect();
        let message = error.to_string();
        for i in (0..records.len()).filter(|i| !refused.contains(i)) {
            undelivered.push((i, Undelivered::RetriesExhausted { retries, message: message.clone() }));
        }
        undelivered.sort_by_key(|(i, _)| *i);
        Ok(undelivered)
    }

    /// Rows actually inserted so far (not counting conflicts): what this sink delivered.
    pub fn inserted(&self) -> u64 {
        self.inserted
    }

    /// Rows skipped as already there: replays recognised by the table's key.
    pub fn already_present(&self) -> u64 {
        self.already_present
    }

    /// Gives up the rows queued (after [`PostgresError::RetryLimit`]: the caller dead-letters
    /// them); returns how many there were.
    pub fn abandon_pending(&mut self) -> usize {
        let n = self.keys.len();
        self.keys.clear();
        self.payloads.clear();
        n
    }

    /// Rows queued and not yet inserted (after a failed flush: the rows a later flush will deliver).
    pub fn pending(&self) -> usize {
        self.keys.len()
    }

    /// The server process of the current connection (`pg_backend_pid()`), `None` when there is
    /// none or it does not answer. For tests that kill the sink's connection from another session.
    #[doc(hidden)]
    pub fn backend_pid(&self) -> Option<i32> {
        let conn = self.conn.as_ref()?;
        let query = conn.client.query_one("SELECT pg_backend_pid()", &[]);
        match self.runtime.block_on(async { tokio::time::timeout(Duration::from_secs(5), query).await }) {
            Ok(Ok(row)) => row.try_get(0).ok(),
            _ => None,
        }
    }

    /// One try at the batch: reconnects if needed, then BEGIN, INSERT, COMMIT pipelined. Returns
    /// the rows inserted. `budget` is what remains of the retry limit; the attempt takes at most
    /// that (at least one second) and never more than [`ATTEMPT_TIMEOUT`].
    fn attempt(&mut self, budget: Option<Duration>) -> Result<u64, Failure> {
        let timeout = budget.map_or(ATTEMPT_TIMEOUT, |b| b.max(Duration::from_secs(1)).min(ATTEMPT_TIMEOUT));
        let deadline = tokio::time::Instant::now() + timeout;
        if self.conn.as_ref().is_some_and(|c| c.client.is_closed()) {
            self.drop_connection();
        }
        if self.conn.is_none() {
            let (client, task) = self.runtime.block_on(open(&self.config, self.connect_timeout.min(timeout))).map_err(|e| match e {
                None => Failure::Transient { reason: format!("connecting to `{}` timed out", self.url), reconnect: true },
                Some(error) => {
                    self.failure(error, |reason| PostgresError::Connect { sink: self.name.clone(), url: self.url.clone(), error: reason })
                }
            })?;
            let prepared = self.runtime.block_on(async { tokio::time::timeout_at(deadline, client.prepare(&self.insert_sql)).await });
            let insert = match prepared {
                Ok(Ok(insert)) => insert,
                Ok(Err(error)) => {
                    task.abort();
                    return Err(self.failure(error, |error| self.setup_error("prepare the insert", describe(&error))));
                }
                Err(_) => {
                    task.abort();
                    return Err(Failure::Transient { reason: format!("preparing the insert took over {timeout:?}"), reconnect: true });
                }
            };
            tracing::info!(sink = %self.name, table = %self.table.display, url = %self.url, "connected to PostgreSQL");
            self.conn = Some(Conn { client, insert, task });
        }
        let conn = self.conn.as_ref().expect("connected above");
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&self.keys, &self.payloads];
        let batch = async {
            // `biased`: polled in this order, each sends its message on its first poll, so the three
            // go out back to back (pipelined) and the server runs them in order.
            let (_, inserted, _) = tokio::try_join!(
                biased;
                conn.client.batch_execute("BEGIN"),
                conn.client.execute(&conn.insert, &params),
                conn.client.batch_execute("COMMIT"),
            )?;
            Ok::<u64, tokio_postgres::Error>(inserted)
        };
        match self.runtime.block_on(async { tokio::time::timeout_at(deadline, batch).await }) {
            Ok(Ok(inserted)) => Ok(inserted),
            Ok(Err(error)) => Err(self.failure(error, |error| PostgresError::Insert {
                sink: self.name.clone(),
                table: self.table.display.clone(),
                rows: self.keys.len(),
                reason: describe(&error),
            })),
            // The transaction's fate is unknown and the connection may be stuck behind it: drop
            // the connection (the server rolls back what did not commit) and retry.
            Err(_) => Err(Failure::Transient { reason: format!("no answer to the batch within {timeout:?}"), reconnect: true }),
        }
    }

    /// Sorts an error from an attempt into transient or permanent (see [`classify`]).
    fn failure(&self, error: tokio_postgres::Error, permanent: impl FnOnce(tokio_postgres::Error) -> PostgresError) -> Failure {
        match classify(&error) {
            Class::Permanent => Failure::Permanent(permanent(error)),
            Class::Retry => Failure::Transient { reason: describe(&error), reconnect: false },
            Class::Reconnect => Failure::Transient { reason: describe(&error), reconnect: true },
        }
    }

    /// Creates the table if absent, checks that it can take this sink's rows, prepares the insert.
    async fn set_up(&self, client: &Client) -> Result<Statement, PostgresError> {
        let (table, key) = (self.table.quoted(), self.key_column.quoted());
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {table} ({key} text PRIMARY KEY, payload jsonb NOT NULL, \
             delivered_at timestamptz NOT NULL DEFAULT now())"
        );
        // Only when absent: CREATE TABLE IF NOT EXISTS needs the CREATE privilege on the schema even
        // when the table exists, and a sink's role should need no more than INSERT on its table.
        let exists = client
            .query_one("SELECT to_regclass($1::text) IS NOT NULL", &[&table])
            .await
            .map_err(|error| self.setup_error("look it up", describe(&error)))?
            .get::<_, bool>(0);
        if !exists && let Err(error) = client.batch_execute(&create).await {
            // Two sinks creating the same table at once: one of them loses a race inside the
            // catalog (a known PostgreSQL behaviour of IF NOT EXISTS), as a unique violation on
            // `pg_type`, a duplicate table, or "type ... already exists" (42710), depending on where
            // the two meet. The table is there: `check_table` below makes sure of it.
            let lost_the_race = [SqlState::UNIQUE_VIOLATION, SqlState::DUPLICATE_TABLE, SqlState::DUPLICATE_OBJECT];
            let raced = matches!(error.code(), Some(c) if lost_the_race.contains(c));
            if !raced {
                return Err(self.setup_error("create it", describe(&error)));
            }
        }
        self.check_table(client).await?;
        client.prepare(&self.insert_sql).await.map_err(|error| self.setup_error("prepare the insert", describe(&error)))
    }

    /// Checks, from the catalog, what `INSERT ... ON CONFLICT (key) DO NOTHING` will need.
    async fn check_table(&self, client: &Client) -> Result<(), PostgresError> {
        let failed = |error: tokio_postgres::Error| self.setup_error("read its definition", describe(&error));
        let incompatible =
            |reason: String| PostgresError::IncompatibleTable { sink: self.name.clone(), table: self.table.display.clone(), reason };
        let relation = self.table.quoted();
        let kind: i8 = client
            .query_one("SELECT relkind::\"char\" FROM pg_class WHERE oid = $1::text::regclass", &[&relation])
            .await
            .map_err(failed)?
            .get(0);
        if kind as u8 != b'r' && kind as u8 != b'p' {
            return Err(incompatible(format!("it is not a table (pg_class.relkind `{}`)", kind as u8 as char)));
        }
        let columns = client
            .query(
                "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), \
                        a.attnotnull AND NOT a.atthasdef AND a.attidentity = '' AND a.attgenerated = '', \
                        has_column_privilege(a.attrelid, a.attnum, 'INSERT') \
                 FROM pg_attribute a WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped \
                 ORDER BY a.attnum",
                &[&relation],
            )
            .await
            .map_err(failed)?;
        let key = &self.key_column.0;
        let mut problems = Vec::new();
        let mut seen = (false, false);
        for row in &columns {
            let (column, ty, required, may_insert): (String, String, bool, bool) = (row.get(0), row.get(1), row.get(2), row.get(3));
            if &column == key {
                seen.0 = true;
                if ty != "text" && ty != "character varying" {
                    problems.push(format!("key column `{column}` is `{ty}`, not `text`"));
                }
            } else if column == "payload" {
                seen.1 = true;
                if ty != "jsonb" {
                    problems.push(format!("column `payload` is `{ty}`, not `jsonb`"));
                }
            } else {
                if required {
                    problems.push(format!("column `{column}` ({ty}) is NOT NULL without a default, and the sink does not fill it"));
                }
                continue;
            }
            if !may_insert {
                problems.push(format!("the role may not insert into column `{column}`"));
            }
        }
        if !seen.0 {
            problems.push(format!("it has no key column `{key}`"));
        }
        if !seen.1 {
            problems.push("it has no column `payload`".into());
        }
        if seen.0 {
            let unique: bool = client
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a \
                        ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
                     WHERE i.indrelid = $1::text::regclass AND a.attname = $2 AND i.indisunique \
                       AND i.indimmediate AND i.indnkeyatts = 1 AND i.indpred IS NULL AND i.indexprs IS NULL)",
                    &[&relation, key],
                )
                .await
                .map_err(failed)?
                .get(0);
            if !unique {
                problems.push(format!(
                    "no unique index on `{key}` alone (PRIMARY KEY or UNIQUE, not partial or deferrable), which ON CONFLICT needs"
                ));
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(incompatible(problems.join("; "))) }
    }

    fn setup_error(&self, action: &'static str, reason: String) -> PostgresError {
        PostgresError::Setup { sink: self.name.clone(), table: self.table.display.clone(), action, reason }
    }

    /// Forgets the connection; its task is aborted, closing the socket (the server rolls back
    /// whatever had not committed).
    fn drop_connection(&mut self) {
        if let Some(conn) = self.conn.take() {
            conn.task.abort();
        }
    }
}

impl Drop for PostgresSink {
    /// Lets the connection say goodbye (a Terminate message) rather than vanish, when that is
    /// possible: not from inside another runtime, and for at most a second.
    fn drop(&mut self) {
        if let Some(Conn { client, task, .. }) = self.conn.take() {
            drop(client);
            if tokio::runtime::Handle::try_current().is_err() {
                let _ = self.runtime.block_on(async { tokio::time::timeout(Duration::from_secs(1), task).await });
            }
        }
    }
}

/// Opens a connection within `timeout` and drives it on the current runtime. `Err(None)`: timed
/// out.
async fn open(config: &Config, timeout: Duration) -> Result<(Client, tokio::task::JoinHandle<()>), Option<tokio_postgres::Error>> {
    let (client, connection) = match tokio::time::timeout(timeout, config.connect(NoTls)).await {
        Ok(Ok(pair)) => pair,
        Ok(Err(error)) => return Err(Some(error)),
        Err(_) => return Err(None),
    };
    let task = tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(error = %describe(&error), "PostgreSQL connection ended");
        }
    });
    Ok((client, task))
}

/// The pause before the next attempt: half of `backoff` plus a random part of the other half, so
/// sinks that failed together do not come back in lockstep.
fn jittered(backoff: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    // A fresh RandomState is randomly keyed: enough randomness for jitter, with no dependency.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    hasher.write_u128(now.as_nanos());
    let fraction = (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64;
    backoff / 2 + backoff.mul_f64(fraction / 2.0)
}

/// What [`PostgresSink::write`] checks; the key and payload as text when they can be inserted.
fn check_record<'a>(key: &'a [u8], payload: &'a [u8]) -> Result<(&'a str, &'a str), Rejection> {
    let refuse = |why: &str| Err(Rejection(why.to_string()));
    if key.is_empty() {
        return refuse("the key is empty, and the table is keyed by it");
    }
    let Ok(key) = std::str::from_utf8(key) else {
        return refuse("the key is not UTF-8 text, so it cannot be a PostgreSQL text key");
    };
    if key.contains('\0') {
        return refuse("the key contains a NUL byte, which PostgreSQL text cannot hold");
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(Rejection(format!(
            "the key is {} bytes long, over the {MAX_KEY_BYTES} bytes a primary key index can be sure to hold",
            key.len()
        )));
    }
    let Ok(payload) = std::str::from_utf8(payload) else {
        return refuse("the payload is not UTF-8 text, so it cannot be JSON");
    };
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(payload) {
        return Err(Rejection(format!("the payload is not JSON, so it cannot be stored as jsonb: {e}")));
    }
    if has_nul_escape(payload) {
        return refuse("the payload contains the escape \\u0000, which jsonb cannot store");
    }
    Ok((key, payload))
}

/// Whether valid JSON text holds the escape `\u0000`. A backslash in JSON text only ever starts an
/// escape inside a string, so skipping each escape whole is enough to read them right.
fn has_nul_escape(json: &str) -> bool {
    let bytes = json.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            if bytes.get(i + 1) == Some(&b'u') {
                if bytes.get(i + 2..i + 6) == Some(b"0000") {
                    return true;
                }
                i += 6;
            } else {
                i += 2;
            }
        } else {
            i += 1;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_that_could_never_be_inserted_are_refused() {
        assert!(check_record(b"k", br#"{"a":"\\u0000 is text here"}"#).is_ok(), "an escaped backslash, not a NUL");
        assert!(check_record(b"k", br#"[1, 2.5e3, "x", null, {"b": true}]"#).is_ok());
        for (key, payload) in [
            (&b""[..], &b"{}"[..]),
            (&[0xff][..], &b"{}"[..]),
            (&b"a\0b"[..], &b"{}"[..]),
            (&b"k"[..], &b"{"[..]),
            (&b"k"[..], &b""[..]),
            (&b"k"[..], &b"{} {}"[..]),
            (&b"k"[..], &[0xff][..]),
            (&b"k"[..], &br#"{"a":"x\u0000y"}"#[..]),
            (&b"k"[..], &br#"{"a\u0000":1}"#[..]),
        ] {
            assert!(check_record(key, payload).is_err(), "{key:?} {:?} accepted", String::from_utf8_lossy(payload));
        }
        assert!(check_record("k".repeat(MAX_KEY_BYTES).as_bytes(), b"{}").is_ok());
        assert!(check_record("k".repeat(MAX_KEY_BYTES + 1).as_bytes(), b"{}").is_err());
    }
    #[test]
    fn backoff_is_jittered_within_half_to_whole() {
        for _ in 0..100 {
            let d = jittered(Duration::from_millis(100));
            assert!((Duration::from_millis(50)..=Duration::from_millis(100)).contains(&d), "{d:?}");
        }
    }
}
