//! Which PostgreSQL failures are worth retrying (by SQLSTATE): an error sorted by its SQLSTATE (or by what failed when the server
//! never answered), and described on one line.

use tokio_postgres::error::SqlState;

/// What a failed attempt calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Retry on the same connection: the transaction failed but the session is fine.
    Retry,
    /// Retry on a new connection: the session is gone or cannot be trusted.
    Reconnect,
    /// Will fail again however often it is tried: report it.
    Permanent,
}

/// Sorts an error into transient (retried, never losing a row) or permanent, by its SQLSTATE, or
/// by what failed when the server never answered.
///
/// Retried on the same connection (the transaction failed, the session is usable):
/// - `40000` transaction_rollback, `40001` serialization_failure, `40003`
///   statement_completion_unknown, `40P01` deadlock_detected (all of class 40 but `40002`);
/// - `55P03` lock_not_available (lock_timeout), `57014` query_canceled (statement_timeout, or a
///   cancel by an administrator);
/// - class `53` insufficient resources (disk full, out of memory, too many connections...) and
///   `58000` system_error, `58030` io_error: conditions an operator fixes without us.
///
/// Retried on a new connection (the session is lost or cannot be trusted):
/// - class `08` connection exception;
/// - `57000` operator_intervention, `57P01` admin_shutdown (a fast shutdown or
///   `pg_terminate_backend`), `57P02` crash_shutdown, `57P03` cannot_connect_now (starting up or in
///   recovery), `57P05` idle_session_timeout, `25P03` idle_in_transaction_session_timeout;
/// - `25006` read_only_sql_transaction: connected to a standby, as after a failover; a new
///   connection may reach the new primary;
/// - any error without a SQLSTATE that is a closed connection or carries an I/O error (refused,
///   reset, timed out, DNS), and an attempt that got no answer in time (handled by the caller).
///
/// Permanent, everything else, notably: class `42` (`42501` insufficient_privilege, `42P01`
/// undefined_table, `42703` undefined_column, `42804` datatype_mismatch, `42P10` no unique index for
/// ON CONFLICT), class `23` (a CHECK, or a NOT NULL column the sink does not fill), class `22` (a
/// value the table refuses that [`PostgresSink::write`] let through), class `28` (authentication),
/// `3D000` no such database, `57P04` database_dropped, class `XX` (internal error, corruption),
/// `58P01`/`58P02`, TLS and configuration errors. Retrying those would only hide them: the batch is
/// returned to the caller with the error instead.
pub fn classify(error: &tokio_postgres::Error) -> Class {
    match error.code() {
        Some(code) => classify_sqlstate(code),
        None if error.is_closed() || has_io_cause(error) => Class::Reconnect,
        None => Class::Permanent,
    }
}

fn classify_sqlstate(code: &SqlState) -> Class {
    const RECONNECT: [SqlState; 8] = [
        SqlState::OPERATOR_INTERVENTION,
        SqlState::ADMIN_SHUTDOWN,
        SqlState::CRASH_SHUTDOWN,
        SqlState::CANNOT_CONNECT_NOW,
        SqlState::IDLE_SESSION_TIMEOUT,
        SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT,
        SqlState::READ_ONLY_SQL_TRANSACTION,
        SqlState::CONNECTION_EXCEPTION,
    ];
    const RETRY: [SqlState; 4] = [SqlState::LOCK_NOT_AVAILABLE, SqlState::QUERY_CANCELED, SqlState::SYSTEM_ERROR, SqlState::IO_ERROR];
    let class = &code.code()[..2];
    if RECONNECT.contains(code) || class == "08" {
        Class::Reconnect
    } else if RETRY.contains(code) || class == "53" || (class == "40" && *code != SqlState::T_R_INTEGRITY_CONSTRAINT_VIOLATION) {
        Class::Retry
    } else {
        Class::Permanent
    }
}

fn has_io_cause(error: &tokio_postgres::Error) -> bool {
    let mut cause = std::error::Error::source(error);
    while let Some(e) = cause {
        if e.is::<std::io::Error>() {
            return true;
        }
        cause = e.source();
    }
    false
}

/// An error as one line: for a server error its severity, message, SQLSTATE and detail (the
/// library's own `Display` says only "db error"); otherwise the error and its causes.
pub(super) fn describe(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        let mut text = format!("{}: {} (SQLSTATE {})", db.severity(), db.message(), db.code().code());
        if let Some(detail) = db.detail() {
            text.push_str("; ");
            text.extend(detail.split_whitespace().flat_map(|word| [word, " "]));
            text.pop();
        }
        return text;
    }
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(e) = cause {
        text.push_str(&format!(": {e}"));
        cause = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_are_classified() {
        for (code, class) in [
            ("40001", Class::Retry),
            ("40P01", Class::Retry),
            ("40002", Class::Permanent),
            ("55P03", Class::Retry),
            ("53100", Class::Retry),
            ("57P01", Class::Reconnect),
            ("57P03", Class::Reconnect),
            ("08006", Class::Reconnect),
            ("25006", Class::Reconnect),
            ("57P04", Class::Permanent),
            ("42501", Class::Permanent),
            ("42P01", Class::Permanent),
            ("23505", Class::Permanent),
            ("XX000", Class::Permanent),
        ] {
            assert_eq!(classify_sqlstate(&SqlState::from_code(code)), class, "{code}");
        }
    }
}
