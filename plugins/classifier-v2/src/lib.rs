//! The risk classifier, version 2: the same alerts as version 1, and it also remembers each pair's last miss distance (state version 2), migrating version 1 state on `restore`.
//!
//! It exists to show (and test) a hot swap that changes the state's format: the
//! host hands the running version 1 state to this build's `restore`, which
//! migrates it; pairs remembered by version 1 have no miss distance until they
//! alert again. The remembered distance shows in the reason a repeat is
//! suppressed ("... (then 0.412 km)").

use classifier_engine::{Candidate, Engine, Memory, Remembered, State, delegate_to_engine};
pub use classifier_engine::{Config, Severity, alert_id, rfc3339_utc};
use sda_guest::state::{self, VersionedState};
use sda_guest::{Operator, export_operator};
use serde::{Deserialize, Serialize};

/// The last alert emitted for a pair, as state version 2 stores it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RememberedV2 {
    pub window_start_ms: i64,
    pub severity: Severity,
    /// `None` for pairs migrated from version 1 state, which did not keep it.
    pub miss_distance_km: Option<f64>,
}

/// State version 2; version 1 is read and carried over pair by pair.
impl Memory for RememberedV2 {
    const STATE_VERSION: u32 = 2;

    fn migrate(version: u32, bytes: &[u8]) -> Result<State<Self>, String> {
        match version {
            1 => Ok(migrate_v1(state::decode(bytes)?)),
            _ => Err("this build migrates version 1 only".to_string()),
        }
    }

    fn remember(candidate: &Candidate<'_>, severity: Severity) -> Self {
        RememberedV2 { window_start_ms: candidate.window_start_ms, severity, miss_distance_km: Some(candidate.miss_distance_km) }
    }
    fn window_start_ms(&self) -> i64 {
        self.window_start_ms
    }
    fn severity(&self) -> Severity {
        self.severity
    }
    fn detail(&self) -> String {
        self.miss_distance_km.map(|km| format!(" (then {km:.3} km)")).unwrap_or_default()
    }
}

/// Version 1 state, read by this build and carried over pair by pair.
fn migrate_v1(v1: State<Remembered>) -> State<RememberedV2> {
    State {
        pairs: v1
            .pairs
            .into_iter()
            .map(|(pair, r)| (pair, RememberedV2 { window_start_ms: r.window_start_ms, severity: r.severity, miss_distance_km: None }))
            .collect(),
        latest_window_start_ms: v1.latest_window_start_ms,
    }
}

pub struct ClassifierV2(Engine<RememberedV2>);

impl ClassifierV2 {
    /// The remembered miss distance of a pair, if any (for tests).
    pub fn last_miss_km(&self, primary_id: u32, secondary_id: u32) -> Option<f64> {
        self.0.state.pairs.get(&(primary_id, secondary_id)).and_then(|r| r.miss_distance_km)
    }

    /// How many pairs it remembers (for tests).
    pub fn remembered_pairs(&self) -> usize {
        self.0.state.pairs.len()
    }
}

impl Operator for ClassifierV2 {
    type Config = Config;
    const STATE_VERSION: u32 = State::<RememberedV2>::VERSION;

    delegate_to_engine!();
}

export_operator!(ClassifierV2);
