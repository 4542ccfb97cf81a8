//! A synthetic catalogue for the screening benches (native and as a plugin): the same objects every run, shaped like the real catalogue.

use crate::orbit::{MU_KM3_S2, Vec3};
use crate::screen::ObjectState;

/// The start of the window the catalogue's epochs fall in (2026-01-01T00:00:00Z, a window boundary).
pub const SYNTHETIC_WINDOW_START_MS: i64 = 1_767_225_600_000;

/// A small deterministic generator (xorshift64*), so the catalogue is the same every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next()
    }
}

/// State vector from classical elements (a km, e, i, raan, argp, true anomaly; radians).
fn state(a: f64, e: f64, i: f64, raan: f64, argp: f64, nu: f64) -> (Vec3, Vec3) {
    let p = a * (1.0 - e * e);
    let r = p / (1.0 + e * nu.cos());
    let (rp, vp) = ([r * nu.cos(), r * nu.sin(), 0.0], {
        let k = (MU_KM3_S2 / p).sqrt();
        [-k * nu.sin(), k * (e + nu.cos()), 0.0]
    });
    let (co, so) = (raan.cos(), raan.sin());
    let (cw, sw) = (argp.cos(), argp.sin());
    let (ci, si) = (i.cos(), i.sin());
    let rot = [
        [co * cw - so * sw * ci, -co * sw - so * cw * ci, so * si],
        [so * cw + co * sw * ci, -so * sw + co * cw * ci, -co * si],
        [sw * si, cw * si, ci],
    ];
    let apply = |v: Vec3| [0, 1, 2].map(|row| rot[row][0] * v[0] + rot[row][1] * v[1] + rot[row][2] * v[2]);
    (apply(rp), apply(vp))
}

/// `n` objects shaped like the real catalogue: mostly LEO (with a dense sun-synchronous band near
/// 800 km), some MEO and GEO, a few eccentric orbits; epochs from `epochs_before_ms` before the
/// window start to its end.
pub fn catalogue(n: usize, epochs_before_ms: f64) -> Vec<ObjectState> {
    let mut rng = Rng(0x5DA_2026);
    let tau = std::f64::consts::TAU;
    (0..n)
        .map(|k| {
            let pick = rng.next();
            let (a, e, i) = if pick < 0.45 {
                (rng.range(7100.0, 7250.0), rng.range(0.0, 0.005), rng.range(1.4, 1.75)) // dense sun-synchronous band
            } else if pick < 0.85 {
                (rng.range(6750.0, 8400.0), rng.range(0.0, 0.02), rng.range(0.0, 1.9))
            } else if pick < 0.92 {
                (rng.range(25500.0, 29600.0), rng.range(0.0, 0.02), rng.range(0.9, 1.1))
            } else if pick < 0.97 {
                (rng.range(42100.0, 42230.0), rng.range(0.0, 0.001), rng.range(0.0, 0.05))
            } else {
                (rng.range(24000.0, 26600.0), rng.range(0.6, 0.72), rng.range(1.0, 1.2)) // Molniya-like
            };
            let (r, v) = state(a, e, i, rng.range(0.0, tau), rng.range(0.0, tau), rng.range(0.0, tau));
            ObjectState {
                object_id: k as u32,
                observation_id: format!("obs-{k:06}").into(),
                epoch_ms: SYNTHETIC_WINDOW_START_MS + (rng.range(-epochs_before_ms, 59_999.0)) as i64,
                position_km: r,
                velocity_km_s: v,
            }
        })
        .collect()
}
