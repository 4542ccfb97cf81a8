//! Screens one closed window: every pair of objects whose two-body paths come within the screening distance.
//!
//! Testing all pairs is quadratic; a catalogue-sized window (10,000 objects) has
//! 50 million. Instead the window is cut into short sub-intervals; over each,
//! an object's path lies inside the box spanned by its endpoint positions,
//! grown by a bound on the path's bow (`a_max * dt^2 / 8`, with `a_max` the
//! gravity at the orbit's periapsis) and by half the screening distance. Two
//! objects can only come within the screening distance during a sub-interval
//! if their boxes overlap then, so a sweep-and-prune over the boxes finds every
//! possible pair without false negatives. Only those pairs get the exact
//! treatment: the distance is minimised over their overlapping sub-intervals,
//! by finding where `d/dt |r_a - r_b|^2` changes sign, to well under a
//! microsecond.

use crate::orbit::{MU_KM3_S2, Orbit, State, Vec3, acceleration, dot, norm, sub};

/// Target length of one screening sub-interval, seconds: short enough that
/// boxes stay small (a LEO object moves ~37 km in 5 s), long enough that few
/// propagations are needed.
const SUB_INTERVAL_S: f64 = 5.0;
/// Step for scanning an overlapping sub-interval for minima, seconds. Relative
/// motion cannot turn twice within it for objects on two-body orbits.
const SCAN_STEP_S: f64 = 1.0;
/// Slack added to every box, km: covers rounding in the bound arithmetic.
const BOX_SLACK_KM: f64 = 1e-6;
/// Stop refining a time of closest approach once the bracket is this narrow, seconds.
const TCA_PRECISION_S: f64 = 1e-7;

/// One object's state in the window, as the correlator keeps it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ObjectState {
    pub object_id: u32,
    pub observation_id: String,
    pub epoch_ms: i64,
    pub position_km: Vec3,
    pub velocity_km_s: Vec3,
}

/// A pair passing within the screening distance.
#[derive(Debug, Clone, PartialEq)]
pub struct Conjunction {
    /// Indices into the screened objects, `primary` having the smaller object id.
    pub primary: usize,
    pub secondary: usize,
    /// Seconds after the window start.
    pub tca_s: f64,
    pub miss_distance_km: f64,
    pub relative_speed_km_s: f64,
}

/// An object's orbit and where it is, relative to the window start.
struct Track {
    orbit: Orbit,
    /// Seconds from the object's epoch to the window start.
    offset_s: f64,
    /// Bound on the path's deviation from a straight chord over one sub-interval, km.
    bow_km: f64,
}

impl Track {
    fn at(&self, t: f64) -> State {
        self.orbit.at(self.offset_s + t)
    }
}

/// Screens `objects` over the closed window `[start_ms, start_ms + length_ms]`.
/// Results are sorted by (primary object id, secondary object id).
pub fn screen(objects: &[ObjectState], start_ms: i64, length_ms: i64, screening_km: f64) -> Vec<Conjunction> {
    if objects.len() < 2 {
        return Vec::new();
    }
    let length_s = length_ms as f64 / 1000.0;
    let segments = ((length_s / SUB_INTERVAL_S).ceil() as usize).clamp(1, 100_000);
    let segment_s = length_s / segments as f64;

    let tracks: Vec<Track> = objects
        .iter()
        .map(|o| {
            let orbit = Orbit::new(o.position_km, o.velocity_km_s);
            let r_p = orbit.periapsis_km().max(1.0);
            Track {
                orbit,
                offset_s: (start_ms - o.epoch_ms) as f64 / 1000.0,
                bow_km: MU_KM3_S2 / (r_p * r_p) * segment_s * segment_s / 8.0,
            }
        })
        .collect();

    // Positions at every sub-interval boundary, object by object (warm-started Newton).
    let mut positions: Vec<Vec3> = Vec::with_capacity(objects.len() * (segments + 1));
    for track in &tracks {
        let mut chi = 0.0;
        for j in 0..=segments {
            let (state, solved) = track.orbit.at_with_guess(track.offset_s + j as f64 * segment_s, chi);
            chi = solved;
            positions.push(state.r);
        }
    }
    let position = |i: usize, j: usize| positions[i * (segments + 1) + j];

    // Pairs whose boxes overlap in some sub-interval: (i, k, segment), i < k.
    let half_screen = screening_km / 2.0;
    let mut overlaps: Vec<(u32, u32, u32)> = Vec::new();
    let mut boxes: Vec<SweptBox> = Vec::with_capacity(objects.len());
    for j in 0..segments {
        boxes.clear();
        for (i, track) in tracks.iter().enumerate() {
            let (a, b) = (position(i, j), position(i, j + 1));
            let pad = half_screen + track.bow_km + BOX_SLACK_KM;
            let lo = [a[0].min(b[0]) - pad, a[1].min(b[1]) - pad, a[2].min(b[2]) - pad];
            let hi = [a[0].max(b[0]) + pad, a[1].max(b[1]) + pad, a[2].max(b[2]) + pad];
            boxes.push(SweptBox { lo, hi, object: i as u32 });
        }
        sweep_and_prune(&mut boxes, |i, k| overlaps.push((i.min(k), i.max(k), j as u32)));
    }
    overlaps.sort_unstable();

    // Exact minimum for each pair, over the union of its overlapping sub-intervals.
    let mut found = Vec::new();
    let mut at = 0;
    while at < overlaps.len() {
        let (i, k, _) = overlaps[at];
        let mut end = at;
        while end < overlaps.len() && overlaps[end].0 == i && overlaps[end].1 == k {
            end += 1;
        }
        let (ti, tk) = (&tracks[i as usize], &tracks[k as usize]);
        let mut best: Option<(f64, f64, f64)> = None;
        // Merge consecutive sub-intervals into one span, then minimise over it.
        let mut s = at;
        while s < end {
            let mut e = s;
            while e + 1 < end && overlaps[e + 1].2 == overlaps[e].2 + 1 {
                e += 1;
            }
            let from = f64::from(overlaps[s].2) * segment_s;
            let to = if overlaps[e].2 as usize + 1 == segments { length_s } else { f64::from(overlaps[e].2 + 1) * segment_s };
            let candidate = closest_approach(ti, tk, from, to);
            if best.is_none_or(|b| candidate.1 < b.1) {
                best = Some(candidate);
            }
            s = e + 1;
        }
        if let Some((tca_s, miss, speed)) = best.filter(|b| b.1 < screening_km) {
            let (i, k) = (i as usize, k as usize);
            let (primary, secondary) = if objects[i].object_id < objects[k].object_id { (i, k) } else { (k, i) };
            found.push(Conjunction { primary, secondary, tca_s, miss_distance_km: miss, relative_speed_km_s: speed });
        }
        at = end;
    }
    found.sort_by_key(|c| (objects[c.primary].object_id, objects[c.secondary].object_id));
    found
}

/// Where one object's path can be, grown by half the screening distance, during one sub-interval.
struct SweptBox {
    lo: [f64; 3],
    hi: [f64; 3],
    object: u32,
}

/// Reports every pair of overlapping boxes. Sorts along the axis where the boxes
/// spread most, so few non-overlapping pairs are looked at.
fn sweep_and_prune(boxes: &mut [SweptBox], mut report: impl FnMut(u32, u32)) {
    let n = boxes.len() as f64;
    let spread = |axis: usize| {
        let mean = boxes.iter().map(|b| b.lo[axis] + b.hi[axis]).sum::<f64>() / (2.0 * n);
        boxes.iter().map(|b| ((b.lo[axis] + b.hi[axis]) / 2.0 - mean).powi(2)).sum::<f64>()
    };
    let axis = (0..3).max_by(|&a, &b| spread(a).total_cmp(&spread(b))).unwrap_or(0);
    boxes.sort_unstable_by(|a, b| a.lo[axis].total_cmp(&b.lo[axis]));
    let mut active: Vec<usize> = Vec::new();
    for current in 0..boxes.len() {
        let start = boxes[current].lo[axis];
        active.retain(|&a| boxes[a].hi[axis] >= start);
        let (lo, hi) = (boxes[current].lo, boxes[current].hi);
        for &a in &active {
            let (alo, ahi) = (boxes[a].lo, boxes[a].hi);
            if (0..3).all(|d| alo[d] <= hi[d] && lo[d] <= ahi[d]) {
                report(boxes[a].object, boxes[current].object);
            }
        }
        active.push(current);
    }
}

/// Half the derivative of the squared distance: (r_a - r_b) . (v_a - v_b).
fn closing_rate(a: &State, b: &State) -> f64 {
    dot(sub(a.r, b.r), sub(a.v, b.v))
}

/// The least distance between two tracks over `[from, to]` (seconds after the
/// window start): `(time, distance km, relative speed km/s)`.
fn closest_approach(a: &Track, b: &Track, from: f64, to: f64) -> (f64, f64, f64) {
    let state_at = |t: f64| (a.at(t), b.at(t));
    let measure = |t: f64, (sa, sb): &(State, State)| (t, norm(sub(sa.r, sb.r)), norm(sub(sa.v, sb.v)));
    let first = state_at(from);
    let mut best = measure(from, &first);
    let steps = (((to - from) / SCAN_STEP_S).ceil() as usize).max(1);
    let step = (to - from) / steps as f64;
    let mut prev_t = from;
    let mut prev_rate = closing_rate(&first.0, &first.1);
    for n in 1..=steps {
        let t = if n == steps { to } else { from + n as f64 * step };
        let states = state_at(t);
        let rate = closing_rate(&states.0, &states.1);
        let here = measure(t, &states);
        if here.1 < best.1 {
            best = here;
        }
        // Closing, then opening: a local minimum of the distance in between.
        if prev_rate < 0.0 && rate > 0.0 {
            let t_min = refine_minimum(a, b, prev_t, t);
            let m = measure(t_min, &state_at(t_min));
            if m.1 < best.1 {
                best = m;
            }
        }
        prev_t = t;
        prev_rate = rate;
    }
    best
}

/// The root of the closing rate in `[lo, hi]`, where it goes from negative to
/// positive: Newton steps (its derivative is |dv|^2 + dr . da), kept inside a
/// shrinking bracket.
fn refine_minimum(a: &Track, b: &Track, mut lo: f64, mut hi: f64) -> f64 {
    let mut t = 0.5 * (lo + hi);
    for _ in 0..100 {
        let (sa, sb) = (a.at(t), b.at(t));
        let dr = sub(sa.r, sb.r);
        let dv = sub(sa.v, sb.v);
        let rate = dot(dr, dv);
        if rate < 0.0 {
            lo = t;
        } else {
            hi = t;
        }
        if hi - lo <= TCA_PRECISION_S {
            break;
        }
        let slope = dot(dv, dv) + dot(dr, sub(acceleration(sa.r), acceleration(sb.r)));
        let newton = t - rate / slope;
        t = if slope > 0.0 && newton > lo && newton < hi { newton } else { 0.5 * (lo + hi) };
        if (newton - t).abs() < TCA_PRECISION_S * 0.01 && slope > 0.0 {
            break;
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn circular(object_id: u32, radius: f64, phase: f64, inclination: f64) -> ObjectState {
        let v = (MU_KM3_S2 / radius).sqrt();
        let (s, c) = phase.sin_cos();
        ObjectState {
            object_id,
            observation_id: format!("o{object_id}"),
            epoch_ms: 0,
            position_km: [radius * c, radius * s * inclination.cos(), radius * s * inclination.sin()],
            velocity_km_s: [-v * s, v * c * inclination.cos(), v * c * inclination.sin()],
        }
    }

    /// Brute force: sample every 200 ms over the window, then refine around
    /// every sampled local minimum by golden-section search.
    fn brute_min(a: &ObjectState, b: &ObjectState, start_ms: i64, length_ms: i64) -> f64 {
        let (oa, ob) = (Orbit::new(a.position_km, a.velocity_km_s), Orbit::new(b.position_km, b.velocity_km_s));
        let distance = |t_ms: f64| {
            let sa = oa.at((t_ms - a.epoch_ms as f64) / 1000.0);
            let sb = ob.at((t_ms - b.epoch_ms as f64) / 1000.0);
            norm(sub(sa.r, sb.r))
        };
        let (start, end) = (start_ms as f64, (start_ms + length_ms) as f64);
        let samples: Vec<f64> = (0..=length_ms / 200).map(|n| distance(start + n as f64 * 200.0)).collect();
        let mut best = samples.iter().copied().fold(f64::INFINITY, f64::min);
        for n in 0..samples.len() {
            let left = if n == 0 { f64::INFINITY } else { samples[n - 1] };
            let right = samples.get(n + 1).copied().unwrap_or(f64::INFINITY);
            if samples[n] <= left && samples[n] <= right {
                let (mut lo, mut hi) = ((start + (n as f64 - 1.0) * 200.0).max(start), (start + (n as f64 + 1.0) * 200.0).min(end));
                let g = (5f64.sqrt() - 1.0) / 2.0;
                for _ in 0..80 {
                    let (x1, x2) = (hi - g * (hi - lo), lo + g * (hi - lo));
                    if distance(x1) < distance(x2) { hi = x2 } else { lo = x1 }
                }
                best = best.min(distance((lo + hi) / 2.0));
            }
        }
        best
    }

    #[test]
    fn finds_a_crossing_and_its_minimum() {
        // Two circular orbits in planes 60 degrees apart, both at the node at
        // t = 30 s, the second 0.7 km higher: they pass within ~0.7 km.
        let r: f64 = 7000.0;
        let n = (MU_KM3_S2 / r.powi(3)).sqrt();
        let a = circular(1, r, -n * 30.0, 0.0);
        let n2 = (MU_KM3_S2 / (r + 0.7f64).powi(3)).sqrt();
        let b = circular(2, r + 0.7, -n2 * 30.0, 1.047);
        let found = screen(&[a.clone(), b.clone()], 0, 60_000, 5.0);
        assert_eq!(found.len(), 1);
        let c = &found[0];
        assert!((c.tca_s - 30.0).abs() < 0.05, "{c:?}");
        assert!((c.miss_distance_km - 0.7).abs() < 0.01, "{c:?}");
        assert!((c.miss_distance_km - brute_min(&a, &b, 0, 60_000)).abs() < 1e-3);
        // Relative speed of two 7.55 km/s velocities 60 degrees apart.
        assert!((c.relative_speed_km_s - 7.546).abs() < 0.01, "{c:?}");
    }

    #[test]
    fn a_minimum_outside_the_window_is_taken_at_the_edge() {
        let r: f64 = 7000.0;
        let n = (MU_KM3_S2 / r.powi(3)).sqrt();
        // They would meet at t = 70 s, after the window: closest at its end, 60 s.
        let a = circular(1, r, -n * 70.0, 0.0);
        let b = circular(2, r, -n * 70.0, 0.3);
        let found = screen(&[a.clone(), b.clone()], 0, 60_000, 50.0);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].tca_s, 60.0);
        assert!((found[0].miss_distance_km - brute_min(&a, &b, 0, 60_000)).abs() < 1e-6);
    }

    #[test]
    fn the_threshold_is_strict_and_far_pairs_are_skipped() {
        let a = circular(1, 7000.0, 0.0, 0.0);
        let b = circular(2, 7003.0, 0.0, 0.0);
        let far = circular(3, 42164.0, 1.0, 0.0);
        let found = screen(&[a.clone(), b.clone(), far], 0, 60_000, 3.0);
        // Concentric circles 3 km apart: the distance is 3 km (not < 3) until phases drift.
        assert!(found.iter().all(|c| c.miss_distance_km < 3.0));
        let found = screen(&[a, b], 0, 60_000, 3.5);
        assert_eq!(found.len(), 1);
    }

    #[test]
    fn agrees_with_brute_force_on_a_crowd() {
        // 40 objects on two crossing rings: many close pairs.
        let mut objects = Vec::new();
        for i in 0..20u32 {
            let phase = f64::from(i) * 0.0004;
            objects.push(circular(i, 7000.0 + f64::from(i % 3), phase, 0.0));
            objects.push(circular(100 + i, 7000.0 + f64::from(i % 4), phase + 0.0002, 0.9));
        }
        let found = screen(&objects, 0, 60_000, 5.0);
        let mut expected = 0;
        for i in 0..objects.len() {
            for k in i + 1..objects.len() {
                let m = brute_min(&objects[i], &objects[k], 0, 60_000);
                if m < 5.0 - 1e-3 {
                    expected += 1;
                    let c = found
                        .iter()
                        .find(|c| (c.primary == i && c.secondary == k) || (c.primary == k && c.secondary == i))
                        .unwrap_or_else(|| panic!("missed pair {i},{k} at {m}"));
                    assert!((c.miss_distance_km - m).abs() < 1e-6, "{c:?} vs {m}");
                }
            }
        }
        assert!(expected > 20, "the crowd should be crowded: {expected}");
        // Pairs within a metre of the threshold may go either way; none other may be extra.
        let borderline = |c: &Conjunction| (c.miss_distance_km - 5.0).abs() < 1e-3;
        assert_eq!(found.iter().filter(|c| !borderline(c)).count(), expected);
        let ids: Vec<(u32, u32)> = found.iter().map(|c| (objects[c.primary].object_id, objects[c.secondary].object_id)).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
        assert!(ids.iter().all(|(p, s)| p < s));
    }
}
