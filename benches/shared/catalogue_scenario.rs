//! The catalogue-mode scenario the catalogue and scale-out benches screen: each object seen every 2 to 20 minutes by 3 sensors, carried 20 minutes.

use sda_scenario::{CorrelatorConfig, GenerateOptions, SparseCadence};

/// Window length of the benches' correlator.
pub const WINDOW_MS: i64 = 60_000;

/// `objects` objects over `minutes` minutes, with the correlator's configuration for `state_horizon_ms`
/// (0: the windowed mode, whose cadence the caller sets).
pub fn options(objects: usize, minutes: u32, state_horizon_ms: i64) -> GenerateOptions {
    let mut options = GenerateOptions { objects, minutes, seed: 2026, ..GenerateOptions::default() };
    options.correlator = CorrelatorConfig {
        window_ms: WINDOW_MS,
        allowed_lateness_ms: 10_000,
        screening_km: 5.0,
        state_horizon_ms,
        ..CorrelatorConfig::default()
    };
    options
}

/// The catalogue mode: sparse cadence and a 20-minute horizon.
pub fn catalogue(objects: usize, minutes: u32) -> GenerateOptions {
    GenerateOptions {
        sparse_cadence: Some(SparseCadence { mean_gap_ms: 600_000, min_gap_ms: 120_000, max_gap_ms: 1_200_000, sensors_per_object: 3 }),
        ..options(objects, minutes, 1_200_000)
    }
}
