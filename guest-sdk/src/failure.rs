//! What an operator says about an input record it cannot handle.

use std::fmt;

pub use sda_wire::{FailureKind, FailureReason};

/// A per-record failure: a kind, a reason and a sentence.
///
/// Made by the constructors below, which pair each reason with the kind the host expects of it
/// (`late` is a discard, `validation` permanent, ...); read with [`Failure::kind`],
/// [`Failure::reason`] and [`Failure::message`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    kind: FailureKind,
    reason: FailureReason,
    message: String,
}

impl Failure {
    /// Any kind with any reason: prefer the named constructors, which pair them as the host expects.
    pub fn new(kind: FailureKind, reason: FailureReason, message: impl Into<String>) -> Self {
        Failure { kind, reason, message: message.into() }
    }

    /// Whether the host retries the record, dead-letters it, or drops it and counts it.
    pub fn kind(&self) -> FailureKind {
        self.kind
    }

    /// Why, as the host counts and dead-letters it.
    pub fn reason(&self) -> FailureReason {
        self.reason
    }

    /// The sentence for people (a dead letter's `error_message`).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The three parts, taken apart: for the runtime that hands them to the host.
    pub fn into_parts(self) -> (FailureKind, FailureReason, String) {
        (self.kind, self.reason, self.message)
    }

    /// The payload could not be parsed: dead-lettered as `Deserialization`.
    pub fn deserialization(message: impl Into<String>) -> Self {
        Self::new(FailureKind::Permanent, FailureReason::Deserialization, message)
    }

    /// The payload broke a schema rule: dead-lettered as `Validation`.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(FailureKind::Permanent, FailureReason::Validation, message)
    }

    /// The record came after its window closed: dropped and counted as late.
    pub fn late(message: impl Into<String>) -> Self {
        Self::new(FailureKind::Discard, FailureReason::Late, message)
    }

    /// The operator's logic cannot handle this record, ever: dead-lettered.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self::new(FailureKind::Permanent, FailureReason::Operator, message)
    }

    /// A passing problem: the host retries the record.
    pub fn transient(message: impl Into<String>) -> Self {
        Self::new(FailureKind::Transient, FailureReason::Operator, message)
    }

    /// The record repeats one already taken into account: dropped and counted.
    pub fn duplicate(message: impl Into<String>) -> Self {
        Self::new(FailureKind::Discard, FailureReason::Duplicate, message)
    }

    /// The record is held back on purpose: dropped and counted as suppressed.
    pub fn suppressed(message: impl Into<String>) -> Self {
        Self::new(FailureKind::Discard, FailureReason::Suppressed, message)
    }

    /// Drop the record deliberately, counted under `reason`.
    pub fn discard(reason: FailureReason, message: impl Into<String>) -> Self {
        Self::new(FailureKind::Discard, reason, message)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} {:?}: {}", self.kind, self.reason, self.message)
    }
}

impl std::error::Error for Failure {}
