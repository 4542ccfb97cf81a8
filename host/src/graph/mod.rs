//! `pipeline.toml`: the raw spec ([`spec`]), the validated plan ([`plan`]), and located problems ([`error`]).

mod build;
pub mod diff;
pub mod error;
pub mod librdkafka;
pub mod plan;
pub mod spec;

pub use error::{Problem, Problems};
pub use plan::{
    AdminPlan, Assignment, CheckpointPlan, DEFAULT_MAX_RECORD_BYTES, DlqPlan, FaultLimit, FileSourcePlan, Guarantee, KafkaSinkPlan,
    KafkaSourcePlan, Lease, Limits, MAX_SHARDS, NodeRef, OperatorPlan, Plan, PlanError, PluginFile, PluginFileError, PostgresSinkPlan,
    RetryPolicy, SinkKind, SinkPlan, SourceKind, SourcePlan,
};
