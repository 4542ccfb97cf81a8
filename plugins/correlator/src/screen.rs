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

    // Positions at every sub-interval boundary, object by object: each solve starts from a
    // second-order guess off the last one, so Newton converges in two or three evaluations.
    let mut positions: Vec<Vec3> = Vec::with_capacity(objects.len() * (segments + 1));
    for track in &tracks {
        let (mut state, mut chi) = track.orbit.at_with_guess(track.offset_s, track.orbit.guess(track.offset_s));
        positions.push(state.r);
        for j in 1..=segments {
            let guess = Orbit::next_guess(chi, &state, segment_s);
            (state, chi) = track.orbit.at_with_guess(track.offset_s + j as f64 * segment_s, guess);
            positions.push(state.r);
        }
    }
    let position = |i: usize, j: usize| positions[i * (segments + 1) + j];

    // Pairs whose boxes overlap in some sub-interval: (i, k, segment), i < k.
    let half_screen = screening_km / 2.0;
    let mut overlaps: Vec<(u32, u32, u32)> = Vec::new();
    let mut boxes: Vec<SweptBox> = Vec::with_capacity(objects.len());
    let mut sweep = Sweep::default();
    for j in 0..segments {
        boxes.clear();
        for (i, track) in tracks.iter().enumerate() {
            let (a, b) = (position(i, j), position(i, j + 1));
            let pad = half_screen + track.bow_km + BOX_SLACK_KM;
            boxes.push(SweptBox::spanning(a, b, pad));
        }
        sweep.overlapping_pairs(&boxes, |i, k| overlaps.push((i.min(k), i.max(k), j as u32)));
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
}

impl SweptBox {
    /// The box spanned by `a` and `b`, grown by `pad` on every side. Compares
    /// rather than calling `f64::min`/`max`: compiled to wasm those are calls
    /// (for their NaN rules), and positions here are finite.
    fn spanning(a: Vec3, b: Vec3, pad: f64) -> SweptBox {
        let (mut lo, mut hi) = ([0.0; 3], [0.0; 3]);
        for d in 0..3 {
            let (low, high) = if a[d] <= b[d] { (a[d], b[d]) } else { (b[d], a[d]) };
            lo[d] = low - pad;
            hi[d] = high + pad;
        }
        SweptBox { lo, hi }
    }
}

/// Sweep-and-prune over the boxes of one sub-interval after another. The boxes
/// are sorted along the axis where they spread most, so few non-overlapping
/// pairs are looked at. Objects move little from one sub-interval to the next,
/// so the order of the last one is nearly right for the next: an insertion sort
/// from it costs about one pass, where a sort from scratch dominated the sweep.
#[derive(Default)]
struct Sweep {
    /// Indices of the boxes, by `lo` along `axis` as of the last sub-interval.
    order: Vec<u32>,
    axis: Option<usize>,
    /// Boxes overlapping the current one along the axis, as positions in `order`.
    active: Vec<usize>,
}

impl Sweep {
    /// Reports every pair of overlapping `boxes` (by index), each once.
    fn overlapping_pairs(&mut self, boxes: &[SweptBox], mut report: impl FnMut(u32, u32)) {
        let axis = spread_axis(boxes);
        if self.axis != Some(axis) || self.order.len() != boxes.len() || !insertion_sort(&mut self.order, |&i| boxes[i as usize].lo[axis]) {
            self.order.clear();
            self.order.extend(0..boxes.len() as u32);
            self.order.sort_unstable_by(|&a, &b| boxes[a as usize].lo[axis].total_cmp(&boxes[b as usize].lo[axis]));
            self.axis = Some(axis);
        }
        self.active.clear();
        for current in 0..self.order.len() {
            let this = &boxes[self.order[current] as usize];
            let (order, start) = (&self.order, this.lo[axis]);
            self.active.retain(|&a| boxes[order[a] as usize].hi[axis] >= start);
            for &a in &self.active {
                let other = &boxes[order[a] as usize];
                if (0..3).all(|d| other.lo[d] <= this.hi[d] && this.lo[d] <= other.hi[d]) {
                    report(order[a], order[current]);
                }
            }
            self.active.push(current);
        }
    }
}

/// The axis along which the boxes' centres spread most.
fn spread_axis(boxes: &[SweptBox]) -> usize {
    let n = boxes.len() as f64;
    let spread = |axis: usize| {
        let mean = boxes.iter().map(|b| b.lo[axis] + b.hi[axis]).sum::<f64>() / (2.0 * n);
        boxes.iter().map(|b| ((b.lo[axis] + b.hi[axis]) / 2.0 - mean).powi(2)).sum::<f64>()
    };
    (0..3).max_by(|&a, &b| spread(a).total_cmp(&spread(b))).unwrap_or(0)
}

/// Sorts a nearly sorted `items` by `key` in place; gives up (returning false,
/// `items` then a permutation of what it was) once the elements have moved further than a few
/// places each on average, where a sort from scratch is cheaper.
fn insertion_sort<T: Copy>(items: &mut [T], key: impl Fn(&T) -> f64) -> bool {
    let mut budget = items.len().saturating_mul(8);
    for i in 1..items.len() {
        let item = items[i];
        let k = key(&item);
        let mut at = i;
        while at > 0 && key(&items[at - 1]).total_cmp(&k).is_gt() {
            if budget == 0 {
                items[at] = item;
                return false;
            }
            budget -= 1;
            items[at] = items[at - 1];
            at -= 1;
        }
        items[at] = item;
    }
    true
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

    /// Every pair of overlapping boxes, by testing all pairs.
    fn all_overlapping(boxes: &[SweptBox]) -> Vec<(u32, u32)> {
        let mut pairs = Vec::new();
        for i in 0..boxes.len() {
            for k in i + 1..boxes.len() {
                if (0..3).all(|d| boxes[i].lo[d] <= boxes[k].hi[d] && boxes[k].lo[d] <= boxes[i].hi[d]) {
                    pairs.push((i as u32, k as u32));
                }
            }
        }
        pairs
    }

    proptest::proptest! {
        /// The sweep reports exactly the overlapping pairs, sub-interval after sub-interval,
        /// whether the boxes drift a little (the sort carries over), jump (it starts afresh)
        /// or swap their widest axis.
        #[test]
        fn the_sweep_finds_every_overlap_as_boxes_move(
            start in proptest::collection::vec(([-100.0f64..100.0, -100.0f64..100.0, -30.0f64..30.0], 0.5f64..15.0), 2..60),
            drift in proptest::collection::vec([-3.0f64..3.0, -3.0f64..3.0, -3.0f64..3.0], 60),
            jump_at in 0usize..8,
            rotate_at in 0usize..8,
        ) {
            let mut sweep = Sweep::default();
            let mut centres: Vec<[f64; 3]> = start.iter().map(|(c, _)| *c).collect();
            for step in 0..8 {
                for (i, c) in centres.iter_mut().enumerate() {
                    let d = drift[i % drift.len()];
                    let scale = if step == jump_at { 40.0 } else { 1.0 };
                    *c = [c[0] + d[0] * scale, c[1] + d[1] * scale, c[2] + d[2] * scale];
                    if step == rotate_at {
                        *c = [c[2], c[1], c[0]];
                    }
                }
                let boxes: Vec<SweptBox> = centres
                    .iter()
                    .zip(&start)
                    .map(|(c, (_, half))| SweptBox { lo: c.map(|x| x - half), hi: c.map(|x| x + half) })
                    .collect();
                let mut found = Vec::new();
                sweep.overlapping_pairs(&boxes, |i, k| found.push((i.min(k), i.max(k))));
                found.sort_unstable();
                proptest::prop_assert_eq!(found, all_overlapping(&boxes), "step {}", step);
            }
        }

        #[test]
        fn insertion_sort_sorts_or_says_it_gave_up(mut keys in proptest::collection::vec(-1e3f64..1e3, 0..200), nearly in proptest::bool::ANY) {
            if nearly {
                keys.sort_by(f64::total_cmp);
                for i in (1..keys.len()).step_by(7) {
                    keys.swap(i - 1, i);
                }
            }
            let mut sorted = keys.clone();
            sorted.sort_by(f64::total_cmp);
            if insertion_sort(&mut keys, |k| *k) {
                proptest::prop_assert_eq!(&keys, &sorted);
            } else {
                proptest::prop_assert!(!nearly, "a nearly sorted input is sorted, not given up on");
            }
            keys.sort_by(f64::total_cmp);
            proptest::prop_assert_eq!(keys, sorted, "the elements are still all there");
        }
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
