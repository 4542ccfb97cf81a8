//! Realistic conjunction scenarios, and an independent brute-force reference of the conjunction
//! operators to check the production plugins against.
//!
//! - [`reference`](mod@reference): the expected outputs (candidates, alerts, dead letters, counts) of the
//!   `correlator` and `classifier` plugins for a sequence of observation lines, simulated from
//!   `plugins/SEMANTICS.md` record by record. Orbits are propagated by numerical integration
//!   ([`propagate`]) and every pair of objects in a window is minimised by bounded brute force
//!   ([`screening`]): no Kepler solver and no spatial index, so it shares no method with the
//!   production code, which uses both. (The generator's truth does solve Kepler's equation, in its
//!   own private module: a planted conjunction found where it was planted then cross-checks the
//!   integrator too.)
//! - [`generate`](mod@generate): reproducible scenarios (observations with planted conjunctions, formations,
//!   out-of-order, late, duplicate and malformed records) and the files that describe them; a
//!   regular cadence held in memory, or a sparse catalogue cadence streamed to its file, up to 10^6
//!   objects.
//! - [`check`]: checks of a pipeline's output that scale to catalogue sizes, where the reference's
//!   quadratic screening cannot run: every planted conjunction found, and the reference's brute
//!   force restricted to the pairs of a random sample of objects.

pub mod check;
pub mod config;
pub mod error;
pub mod generate;
pub mod json;
pub mod observation;
pub mod propagate;
pub mod records;
pub mod reference;
pub mod screening;

pub use config::{ClassifierConfig, CorrelatorConfig};
pub use error::ScenarioError;
pub use generate::{
    GenerateOptions, Scenario, ScenarioFiles, ScenarioSummary, SparseCadence, generate, write_scenario, write_scenario_with,
};
pub use observation::{InvalidKind, Observation, parse_observation};
pub use records::{Alert, Candidate, Severity, alert_id};
pub use reference::{ReferenceCounts, ReferenceOutput};
