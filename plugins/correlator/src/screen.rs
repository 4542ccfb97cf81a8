//! Screens one closed window: every pair of objects whose two-body paths come within the screening distance.
//!
//! Testing all pairs is quadratic: a catalogue window of a million objects has
//! half a trillion. Instead the window is cut into sub-intervals; over each,
//! an object's path lies inside the box spanned by its positions at the two
//! ends, grown by a bound on the path's bow (`a_max * dt^2 / 8`, with `a_max`
//! the gravity at the orbit's periapsis) and by half the screening distance.
//! Two objects can only come within the screening distance during a
//! sub-interval if their boxes overlap then. The stages:
//!
//! 1. **Shells** ([`Shard`]): the objects this shard screens and the pairs it
//!    owns, from the objects' radial extents.
//! 2. **Carrying the objects** ([`Slot`]): each object is stepped from one
//!    sub-interval boundary to the next, by the f and g series where its
//!    proven error is small, by Kepler's equation elsewhere; only its current
//!    and previous positions are kept. The broad phase's sub-intervals are as
//!    long as suits the objects' crowding ([`broad_phase_step_s`]).
//! 3. **Broad phase** ([`CellGrid`]): the overlapping boxes of one
//!    sub-interval, found by sorting the boxes into cells as wide as the
//!    boxes, so that only boxes in the same or adjacent cells are compared.
//!    Boxes too wide for the cells go through a sweep-and-prune ([`Sweep`]).
//! 4. **Chord filter** ([`chords_pass_within_pads`]): of a pair whose boxes
//!    overlap, the straight chords of the two paths, followed at the same
//!    time, must pass within the two boxes' pads; the paths stay within their
//!    bows of the chords, so other pairs never come within the screening distance.
//! 5. **Exact step** ([`closest_approach`]): for each pair kept, its own boxes
//!    over sub-intervals of [`SUB_INTERVAL_S`] (the same, bit for bit, as
//!    before the broad phase was rewritten); the distance is minimised over the
//!    union of those in which they overlap, by finding where `d/dt |r_a - r_b|^2`
//!    changes sign, to well under a microsecond.
//!
//! **Pair-local results.** What a pair yields is computed from the two objects'
//! states, the window and the screening distance alone (their radial extents,
//! their exact-step boxes, their orbits), by the same operations whatever else
//! is screened. The other objects present, the broad phase's sub-intervals and
//! cells, and the shard decide only which pairs are looked at, and every stage
//! before the exact step keeps every pair that may come within the screening
//! distance. So a pair's candidate is the same bit for bit among any objects
//! and in any shard.

use crate::orbit::{MU_KM3_S2, Orbit, SeriesStep, Shape, State, Vec3, acceleration, dot, norm, sub};

/// Target length of one screening sub-interval, seconds: short enough that
/// boxes stay small (a LEO object moves ~37 km in 5 s), long enough that few
/// propagations are needed.
const SUB_INTERVAL_S: f64 = 5.0;
/// Step for scanning an overlapping sub-interval for minima, seconds. Relative
/// motion cannot turn twice within it for objects on two-body orbits.
const SCAN_STEP_S: f64 = 1.0;
/// Slack added to every box and radial extent, km: covers rounding in the
/// bound arithmetic and the propagation's own error (well under a micrometre).
const BOX_SLACK_KM: f64 = 1e-6;
/// The most a position stepped by the f and g series may be off, by its proven
/// bound, km: a tenth of the slack, so that boxes built from stepped positions
/// still hold the paths the exact step follows.
const SERIES_ERROR_KM: f64 = BOX_SLACK_KM / 10.0;
/// The most the broad phase's positions, stepped by the series, may be off, km: its pads grow
/// by the bound, and ten metres do not matter to boxes tens of km wide.
const BROAD_SERIES_ERROR_KM: f64 = 0.01;
/// The longest sub-interval the broad phase takes, seconds (see [`broad_phase_step_s`]).
const BROAD_STEP_MAX_S: f64 = 30.0;
/// Stop refining a time of closest approach once the bracket is this narrow, seconds.
const TCA_PRECISION_S: f64 = 1e-7;

/// One object's state in the window, as the correlator keeps it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ObjectState {
    pub object_id: u32,
    /// Inline up to 24 bytes: a catalogue of a million states holds no million small allocations.
    pub observation_id: compact_str::CompactString,
    pub epoch_ms: i64,
    pub position_km: Vec3,
    pub velocity_km_s: Vec3,
}

impl ObjectState {
    /// The state at `at_ms` on the Kepler orbit through this one (forwards or backwards from its epoch), as a
    /// candidate's `states_at_tca` carries it.
    pub fn state_at(&self, at_ms: i64) -> sda_records::StateVector {
        let dt_s = at_ms.saturating_sub(self.epoch_ms) as f64 / 1000.0;
        let state = crate::orbit::Orbit::new(self.position_km, self.velocity_km_s).at(dt_s);
        sda_records::StateVector { position_km: state.r, velocity_km_s: state.v }
    }
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

/// Which share of the pair space one screening instance covers: shard `index` of `count`.
///
/// Each object's radial extent over its orbit, `[r_periapsis - screening_km/2,
/// r_apoapsis + screening_km/2]` (grown by [`BOX_SLACK_KM`]; an unbound orbit's
/// apoapsis is infinite), is an interval; two objects can come within the
/// screening distance only if their intervals overlap, since their radii then
/// differ by less than it. The radial axis is cut into `count` shells, shell
/// `i` being `[b_i, b_{i+1})` with `b_0 = -inf`, `b_count = +inf` and `b_i`
/// (0 < i < count) the lower bound of rank `r_i` among the `n` objects' lower
/// bounds (sorted by `total_cmp`), `r_i` being the number of objects that hold
/// `i / count` of the estimated screening work (see [`WorkByRadius`]: crowded
/// shells hold fewer objects): every instance sees the same objects, so all
/// compute the same shells.
/// A pair is screened only if
/// its two intervals overlap (in every shard and unsharded alike), and is
/// owned by the shard whose shell holds its reference point, the greater of
/// the two lower bounds.
///
/// **No pair is lost, none is reported twice.** The shells partition the real
/// line, so a reference point lies in exactly one shell: each pair with
/// overlapping intervals has exactly one owner, and a pair without has none
/// and is never a candidate anywhere. The owner screens both objects: the
/// reference point is at least either lower bound and, the intervals
/// overlapping, at most either upper bound, so it lies in both intervals,
/// which therefore both meet the owner's shell, and shard `i` screens exactly
/// the objects whose intervals meet shell `i`. What the pair yields does not
/// depend on the other objects screened (see the module doc), so the owner
/// computes the same candidate as one instance would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    /// At least 1, and greater than `index`.
    pub count: u32,
}

impl Shard {
    /// The whole pair space: shard 0 of 1.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };
}

/// Screens windows, keeping its buffers from one window to the next: in steady state it
/// allocates nothing but the result. It holds 184 bytes per object screened (a [`Slot`], a box,
/// two grid entries), and sharded, 32 more per object of the window (orbit shape, lower bound), besides a
/// few bytes per pair the chord filter keeps.
#[derive(Default)]
pub struct Screener {
    /// The objects this shard screens, each carried from boundary to boundary.
    slots: Vec<Slot>,
    /// The slots' boxes over the current sub-interval, by slot.
    boxes: Vec<SweptBox>,
    /// The orbit shapes of all objects, by object, when sharded and not given them.
    shapes: Vec<Shape>,
    /// Their lower bounds, reordered while finding the shell.
    lower_bounds: Vec<f64>,
    /// The objects' share of the screening work by radius, for the shells' bounds.
    work_by_radius: WorkByRadius,
    grid: CellGrid,
    /// The pairs the chord filter keeps, by object index, smaller first, once per sub-interval
    /// it keeps them in: the exact step looks at each once.
    close: Vec<(u32, u32)>,
    /// The boundary positions of the two objects of the pair in the exact step.
    path_a: Vec<Vec3>,
    path_b: Vec<Vec3>,
    /// The sub-intervals in which that pair's boxes overlap.
    overlapping: Vec<u32>,
}

/// Screens `objects` over the closed window `[start_ms, start_ms + length_ms]`, the whole pair
/// space with a fresh [`Screener`]. Results are sorted by (primary object id, secondary object id).
pub fn screen(objects: &[ObjectState], start_ms: i64, length_ms: i64, screening_km: f64) -> Vec<Conjunction> {
    let refs: Vec<&ObjectState> = objects.iter().collect();
    Screener::new().screen(&refs, start_ms, length_ms, screening_km, Shard::WHOLE)
}

impl Screener {
    pub fn new() -> Screener {
        Screener::default()
    }

    /// Screens `objects` (any order) over the closed window `[start_ms, start_ms + length_ms]`;
    /// returns the conjunctions of the pairs `shard` owns, sorted by (primary object id,
    /// secondary object id), with `primary`/`secondary` indices into `objects`.
    ///
    /// # Panics
    /// If `shard.index >= shard.count`, or given more than `u32::MAX` objects.
    pub fn screen(&mut self, objects: &[&ObjectState], start_ms: i64, length_ms: i64, screening_km: f64, shard: Shard) -> Vec<Conjunction> {
        self.screen_with_shapes(objects, None, start_ms, length_ms, screening_km, shard)
    }

    /// [`Screener::screen`], given each object's orbit shape (`shapes[i]` being
    /// `Orbit::new(objects[i].position_km, objects[i].velocity_km_s).shape()`, which a catalogue
    /// keeps from window to window) instead of working them out.
    ///
    /// # Panics
    /// As [`Screener::screen`], and if there are not as many shapes as objects.
    pub fn screen_with_shapes(
        &mut self,
        objects: &[&ObjectState],
        shapes: Option<&[Shape]>,
        start_ms: i64,
        length_ms: i64,
        screening_km: f64,
        shard: Shard,
    ) -> Vec<Conjunction> {
        assert!(shard.index < shard.count, "shard {} of {} does not exist", shard.index, shard.count);
        assert!(u32::try_from(objects.len()).is_ok(), "{} objects: slots index them with 32 bits", objects.len());
        assert!(shapes.is_none_or(|shapes| shapes.len() == objects.len()), "a shape for every object");
        if objects.len() < 2 {
            return Vec::new();
        }
        let window = Window::new(start_ms, length_ms, screening_km);
        let mut computed = std::mem::take(&mut self.shapes);
        let shapes = match shapes {
            Some(shapes) => Some(shapes),
            // Sharded, every object's shape is needed to cut the shells.
            None if shard.count > 1 => {
                computed.clear();
                computed.extend(objects.iter().map(|o| shape_of(o)));
                Some(&computed[..])
            }
            None => None,
        };
        let shell = self.shell(shapes, &window, shard);
        self.take_objects(objects, shapes, &window, &shell);
        self.shapes = computed;
        self.screen_taken(objects, &window, &shell)
    }

    /// The broad phase, the chord filter and the exact step over the objects taken.
    fn screen_taken(&mut self, objects: &[&ObjectState], window: &Window, shell: &Shell) -> Vec<Conjunction> {
        let Screener { slots, boxes, grid, close, .. } = self;
        let crowding = order_by_place(slots, &mut grid.entries, &mut grid.scratch);
        let cut = Cut::new(window.length_s, broad_phase_step_s(crowding));
        close.clear();
        boxes.clear();
        boxes.resize(slots.len(), SweptBox { lo: [0.0; 3], hi: [0.0; 3] });
        for boundary in 1..=cut.segments {
            advance_all(slots, boundary, objects, window, &cut);
            for (slot, swept) in slots.iter().zip(boxes.iter_mut()) {
                *swept = SweptBox::spanning(slot.previous, slot.state.r, slot.pad_km(&cut));
            }
            grid.overlapping_pairs(boxes, |a, b| {
                let (a, b) = (&slots[a as usize], &slots[b as usize]);
                if shell.owns(a.radial, b.radial) && chords_pass_within_pads(a, b, &cut) {
                    close.push((a.object.min(b.object), a.object.max(b.object)));
                }
            });
        }
        close.sort_unstable();
        close.dedup();

        let mut found = Vec::new();
        for at in 0..self.close.len() {
            let (i, k) = self.close[at];
            found.extend(self.screen_pair(objects, i as usize, k as usize, window));
        }
        found.sort_by_key(|c| (objects[c.primary].object_id, objects[c.secondary].object_id));
        found
    }

    /// Fills the slots with the objects this shard screens, at the window start.
    fn take_objects(&mut self, objects: &[&ObjectState], shapes: Option<&[Shape]>, window: &Window, shell: &Shell) {
        // Whether an object steps by the series is settled for the longest step the broad phase
        // may take: the step is chosen later, once the objects are placed.
        let longest = SeriesStep::new(window.length_s.min(BROAD_STEP_MAX_S));
        self.slots.clear();
        for (index, object) in objects.iter().enumerate() {
            let shape = shapes.map_or_else(|| shape_of(object), |shapes| shapes[index]);
            if shell.meets(window.radial_extent(&shape)) {
                let orbit = Orbit::new(object.position_km, object.velocity_km_s);
                self.slots.push(Slot::new(index as u32, object, orbit, &shape, window, &longest, BROAD_SERIES_ERROR_KM));
            }
        }
    }

    /// This shard's shell (see [`Shard`]).
    fn shell(&mut self, shapes: Option<&[Shape]>, window: &Window, shard: Shard) -> Shell {
        let (Some(shapes), true) = (shapes, shard.count > 1) else {
            return Shell { from: f64::NEG_INFINITY, to: f64::INFINITY };
        };
        self.lower_bounds.clear();
        self.lower_bounds.extend(shapes.iter().map(|shape| window.radial_extent(shape).0));
        let work = self.work_by_radius.estimate(&self.lower_bounds);
        let rank = |i: u32| work.rank_at_share(f64::from(i) / f64::from(shard.count)).min(shapes.len() - 1);
        // Selection finds the element of a rank whatever the order it starts from, so every
        // instance finds the same bounds; the upper one is selected among the elements after the lower.
        let mut from = f64::NEG_INFINITY;
        let mut rest: &mut [f64] = &mut self.lower_bounds;
        let mut skipped = 0;
        if shard.index > 0 {
            let (_, bound, after) = rest.select_nth_unstable_by(rank(shard.index), f64::total_cmp);
            from = *bound;
            skipped = rank(shard.index) + 1;
            rest = after;
        }
        let to = if shard.index + 1 < shard.count {
            let upper = rank(shard.index + 1);
            if upper < skipped {
                // Both ranks are the same element (fewer objects than shards, or a crowd).
                from
            } else {
                *rest.select_nth_unstable_by(upper - skipped, f64::total_cmp).1
            }
        } else {
            f64::INFINITY
        };
        Shell { from, to }
    }

    /// The exact step for one pair that the chord filter kept: the pair's own boxes over the
    /// exact step's sub-intervals, the sub-intervals where they overlap, and the least
    /// distance over those.
    fn screen_pair(&mut self, objects: &[&ObjectState], i: usize, k: usize, window: &Window) -> Option<Conjunction> {
        let (a, b) = (objects[i], objects[k]);
        let cut = &window.exact;
        let pad_a = Slot::path(a, window, &mut self.path_a);
        let pad_b = Slot::path(b, window, &mut self.path_b);
        self.overlapping.clear();
        for segment in 0..cut.segments {
            let box_a = SweptBox::spanning(self.path_a[segment], self.path_a[segment + 1], pad_a);
            let box_b = SweptBox::spanning(self.path_b[segment], self.path_b[segment + 1], pad_b);
            if box_a.overlaps(&box_b) {
                self.overlapping.push(segment as u32);
            }
        }
        let (track_a, track_b) = (Track::new(a, window), Track::new(b, window));
        let mut best: Option<(f64, f64, f64)> = None;
        // Merge consecutive sub-intervals into one span, then minimise over it.
        let spans = &self.overlapping;
        let mut s = 0;
        while s < spans.len() {
            let mut e = s;
            while e + 1 < spans.len() && spans[e + 1] == spans[e] + 1 {
                e += 1;
            }
            let from = f64::from(spans[s]) * cut.segment_s;
            let to = if spans[e] as usize + 1 == cut.segments { window.length_s } else { f64::from(spans[e] + 1) * cut.segment_s };
            let candidate = closest_approach(&track_a, &track_b, from, to);
            if best.is_none_or(|b| candidate.1 < b.1) {
                best = Some(candidate);
            }
            s = e + 1;
        }
        let (tca_s, miss, speed) = best.filter(|b| b.1 < window.screening_km)?;
        let (primary, secondary) = if a.object_id < b.object_id { (i, k) } else { (k, i) };
        Some(Conjunction { primary, secondary, tca_s, miss_distance_km: miss, relative_speed_km_s: speed })
    }
}

/// The window being screened.
struct Window {
    start_ms: i64,
    length_s: f64,
    screening_km: f64,
    /// The sub-intervals the exact step takes a pair's boxes over.
    exact: Cut,
}

impl Window {
    fn new(start_ms: i64, length_ms: i64, screening_km: f64) -> Window {
        let length_s = length_ms as f64 / 1000.0;
        Window { start_ms, length_s, screening_km, exact: Cut::new(length_s, SUB_INTERVAL_S) }
    }

    /// Seconds from the object's epoch to the window start.
    fn offset_s(&self, object: &ObjectState) -> f64 {
        (self.start_ms - object.epoch_ms) as f64 / 1000.0
    }

    /// The object's radial extent over its orbit, grown by half the screening distance and the slack.
    fn radial_extent(&self, shape: &Shape) -> (f64, f64) {
        let grow = self.screening_km / 2.0 + BOX_SLACK_KM;
        (shape.periapsis_km - grow, shape.apoapsis_km + grow)
    }
}

/// The window cut into equal sub-intervals, and how objects step from one boundary to the next.
struct Cut {
    /// Number of sub-intervals, each `segment_s` long.
    segments: usize,
    segment_s: f64,
    series: SeriesStep,
}

impl Cut {
    /// Sub-intervals of about `target_s` (no longer) over `length_s` seconds.
    fn new(length_s: f64, target_s: f64) -> Cut {
        let segments = ((length_s / target_s).ceil() as usize).clamp(1, 100_000);
        let segment_s = length_s / segments as f64;
        Cut { segments, segment_s, series: SeriesStep::new(segment_s) }
    }

    /// Whether series chains restart from a solved state at this boundary: chains of at most
    /// [`SeriesStep::MAX_CHAIN`] steps start from the window start, then from every
    /// `MAX_CHAIN`-th boundary if the window has more.
    fn restarts_at(&self, boundary: usize) -> bool {
        boundary.is_multiple_of(SeriesStep::MAX_CHAIN) && boundary < self.segments
    }

    /// How far an exact-step box reaches beyond the chord of an orbit with this periapsis:
    /// half the screening distance, the bow over one sub-interval, the slack; the same
    /// arithmetic as ever, so that these boxes are bit for bit what they were.
    fn pad_km(&self, window: &Window, periapsis_km: f64) -> f64 {
        window.screening_km / 2.0 + gravity_km_s2(periapsis_km) * self.segment_s * self.segment_s / 8.0 + BOX_SLACK_KM
    }
}

/// An object's orbit shape, as the screener works it out.
pub fn shape_of(object: &ObjectState) -> Shape {
    Orbit::new(object.position_km, object.velocity_km_s).shape()
}

/// The gravity at this periapsis (at least a kilometre), km/s^2: the greatest on the orbit.
fn gravity_km_s2(periapsis_km: f64) -> f64 {
    let r_p = periapsis_km.max(1.0);
    MU_KM3_S2 / (r_p * r_p)
}

/// Where the screening work lies along the radial axis, estimated from the objects' radial extents,
/// to cut shells that take equal time rather than equal numbers of objects.
///
/// An object costs its propagation and boxes (the same everywhere), and its pair checks, which grow
/// with the crowd around it: in the sun-synchronous band a million-object catalogue packs thousands
/// of objects into each kilometre of radius, and shells of equal counts left the lower shard a
/// quarter slower than the upper. The estimate counts lower bounds in bins of [`WORK_BIN_KM`] and
/// weighs each object by `1 + crowd / CROWD_OF_EQUAL_WORK`, the crowd being the bin's objects per
/// kilometre over the area of a sphere of its radius (relative to one of 7,000 km). The counts do
/// not depend on the objects' order and the rest is the same arithmetic in every instance, so every
/// shard cuts the same shells.
#[derive(Default)]
struct WorkByRadius {
    /// Objects per bin: bin `b` holds lower bounds in `[b, b + 1) * WORK_BIN_KM`; the first also
    /// those below (and NaN), the last those above.
    counts: Vec<u32>,
    /// The estimated work per bin.
    work: Vec<f64>,
    total: f64,
}

/// The width of the bins the work is counted in.
const WORK_BIN_KM: f64 = 10.0;
/// Bins out to 81,920 km, well past GEO; farther objects share the last.
const WORK_BINS: usize = 8192;
/// The crowd (objects per km of radius at 7,000 km) at which an object's pair checks cost as much
/// as the rest of its screening. Measured, not derived: on the synthetic catalogue (natively, two
/// shards), 10^6 objects split 1.15 s / 0.89 s by count, 1.02 s / 1.03 s with this value, and 10^5
/// objects stay even (0.037 s / 0.040 s).
const CROWD_OF_EQUAL_WORK: f64 = 7000.0;

impl WorkByRadius {
    fn estimate(&mut self, lower_bounds: &[f64]) -> &WorkByRadius {
        self.counts.clear();
        self.counts.resize(WORK_BINS, 0);
        for &lo in lower_bounds {
            // `as` saturates (and makes NaN 0): out-of-range bounds land in the end bins.
            self.counts[((lo / WORK_BIN_KM) as usize).min(WORK_BINS - 1)] += 1;
        }
        self.work.clear();
        self.work.extend(self.counts.iter().enumerate().map(|(b, &count)| {
            let radius_km = ((b as f64 + 0.5) * WORK_BIN_KM).max(1000.0);
            let crowd = f64::from(count) / WORK_BIN_KM * (7000.0 / radius_km).powi(2);
            f64::from(count) * (1.0 + crowd / CROWD_OF_EQUAL_WORK)
        }));
        self.total = self.work.iter().sum();
        self
    }

    /// How many objects, by increasing lower bound, hold `share` of the work: the rank of the
    /// lower bound that cuts there (all the objects of a bin weigh the same).
    fn rank_at_share(&self, share: f64) -> usize {
        let target = self.total * share;
        let (mut work_below, mut objects_below) = (0.0, 0usize);
        for (&work, &count) in self.work.iter().zip(&self.counts) {
            if count > 0 && work_below + work >= target {
                let per_object = work / f64::from(count);
                return objects_below + (((target - work_below) / per_object).ceil() as usize).min(count as usize);
            }
            work_below += work;
            objects_below += count as usize;
        }
        objects_below
    }
}

/// One shard's part of the radial axis, `[from, to)`.
#[derive(Clone, Copy)]
struct Shell {
    from: f64,
    to: f64,
}

impl Shell {
    /// Whether a radial extent reaches into the shell.
    fn meets(&self, (lo, hi): (f64, f64)) -> bool {
        lo < self.to && hi >= self.from
    }

    /// Whether the pair of objects with these radial extents is screened at all (the extents
    /// overlap) and is this shell's (its reference point lies in it).
    fn owns(&self, a: (f64, f64), b: (f64, f64)) -> bool {
        let reference = if a.0 >= b.0 { a.0 } else { b.0 };
        reference <= a.1 && reference <= b.1 && reference >= self.from && reference < self.to
    }
}

/// An object's orbit and where it is, relative to the window start: what the exact step follows.
struct Track {
    orbit: Orbit,
    /// Seconds from the object's epoch to the window start.
    offset_s: f64,
}

impl Track {
    fn new(object: &ObjectState, window: &Window) -> Track {
        Track { orbit: Orbit::new(object.position_km, object.velocity_km_s), offset_s: window.offset_s(object) }
    }

    fn at(&self, t: f64) -> State {
        self.orbit.at(self.offset_s + t)
    }
}

/// One screened object, carried from one sub-interval boundary to the next: all the broad
/// phase keeps of it, in 120 bytes.
#[derive(Clone)]
struct Slot {
    /// Position and velocity at the current boundary.
    state: State,
    /// Position at the boundary before.
    previous: Vec3,
    /// The universal anomaly at the current boundary, when stepped by Kepler's equation:
    /// the next solve starts from it.
    chi: f64,
    /// The gravity at the orbit's periapsis, the greatest on it: the path's bow over a
    /// sub-interval `dt` is at most `gravity * dt^2 / 8`.
    gravity_km_s2: f64,
    /// How far a box reaches beyond the chord, less the bow: half the screening distance, the
    /// slack and, stepped by the series, the series' error bound.
    pad_less_bow_km: f64,
    /// The radial extent (see [`Shard`]).
    radial: (f64, f64),
    /// Index into the screened objects.
    object: u32,
    /// Stepped by the f and g series (its proven error is small, see [`Slot::new`]), else by
    /// Kepler's equation from the object's epoch at every boundary.
    by_series: bool,
}

impl Slot {
    /// The object at the window start, to be stepped by the series if, with steps as long
    /// as `longest`'s, its error bound is at most `allowance_km`.
    fn new(
        object: u32,
        state: &ObjectState,
        orbit: Orbit,
        shape: &Shape,
        window: &Window,
        longest: &SeriesStep,
        allowance_km: f64,
    ) -> Slot {
        let radial = window.radial_extent(shape);
        let offset_s = window.offset_s(state);
        let (start, chi) = orbit.at_with_guess(offset_s, orbit.guess(offset_s));
        // The radius never exceeds the apoapsis, nor grows faster than the greatest speed.
        let r_max = shape.apoapsis_km.min(norm(start.r) + shape.periapsis_speed_km_s * window.length_s);
        // The bound grows with the step: shorter steps err less.
        let series_error_km = longest.chain_error_km(shape, r_max);
        let by_series = series_error_km <= allowance_km;
        let pad_less_bow_km = window.screening_km / 2.0 + BOX_SLACK_KM + if by_series { series_error_km } else { 0.0 };
        let gravity_km_s2 = gravity_km_s2(shape.periapsis_km);
        Slot { state: start, previous: start.r, chi, gravity_km_s2, pad_less_bow_km, radial, object, by_series }
    }

    /// How far a box reaches beyond the chord over one sub-interval of `cut`.
    fn pad_km(&self, cut: &Cut) -> f64 {
        self.pad_less_bow_km + self.gravity_km_s2 * cut.segment_s * cut.segment_s / 8.0
    }

    /// Moves the object to boundary `boundary` (from `boundary - 1`), which is not one where
    /// series chains restart ([`Cut::restarts_at`]).
    fn advance(&mut self, boundary: usize, objects: &[&ObjectState], window: &Window, cut: &Cut) {
        if self.by_series {
            self.previous = self.state.r;
            self.state = cut.series.advance(&self.state);
        } else {
            self.solve(boundary, objects[self.object as usize], window, cut);
        }
    }

    /// Moves the object to boundary `boundary` (from `boundary - 1`) by Kepler's equation.
    fn solve(&mut self, boundary: usize, object: &ObjectState, window: &Window, cut: &Cut) {
        self.previous = self.state.r;
        let orbit = Orbit::new(object.position_km, object.velocity_km_s);
        let t = window.offset_s(object) + boundary as f64 * cut.segment_s;
        let guess = if self.by_series { orbit.guess(t) } else { Orbit::next_guess(self.chi, &self.state, cut.segment_s) };
        (self.state, self.chi) = orbit.at_with_guess(t, guess);
    }

    /// The object's positions at every boundary of the exact step's cut, into `path`
    /// (by the series only where its error is within a tenth of the slack); returns the pad
    /// of its boxes.
    fn path(object: &ObjectState, window: &Window, path: &mut Vec<Vec3>) -> f64 {
        let cut = &window.exact;
        let orbit = Orbit::new(object.position_km, object.velocity_km_s);
        let shape = orbit.shape();
        let mut slot = Slot::new(0, object, orbit, &shape, window, &cut.series, SERIES_ERROR_KM);
        path.clear();
        path.push(slot.state.r);
        for boundary in 1..=cut.segments {
            if cut.restarts_at(boundary) {
                slot.solve(boundary, object, window, cut);
            } else {
                slot.advance(boundary, &[object], window, cut);
            }
            path.push(slot.state.r);
        }
        cut.pad_km(window, shape.periapsis_km)
    }
}

/// Moves every slot to boundary `boundary` (from `boundary - 1`).
fn advance_all(slots: &mut [Slot], boundary: usize, objects: &[&ObjectState], window: &Window, cut: &Cut) {
    if cut.restarts_at(boundary) {
        for slot in slots.iter_mut() {
            slot.solve(boundary, objects[slot.object as usize], window, cut);
        }
        return;
    }
    // Two at a time: one step is a long chain of dependent operations; two independent
    // chains side by side keep the processor busy.
    let mut pairs = slots.chunks_exact_mut(2);
    for pair in &mut pairs {
        let [a, b] = pair else { unreachable!("chunks of two") };
        if a.by_series && b.by_series {
            (a.previous, b.previous) = (a.state.r, b.state.r);
            (a.state, b.state) = cut.series.advance_two(&a.state, &b.state);
        } else {
            a.advance(boundary, objects, window, cut);
            b.advance(boundary, objects, window, cut);
        }
    }
    for slot in pairs.into_remainder() {
        slot.advance(boundary, objects, window, cut);
    }
}

/// Reorders `slots` by where their objects are at the window start, cells of about a box's
/// width taken row by row as the broad phase takes them: the boxes the broad phase compares,
/// and the slots it then reads, lie near each other in memory (a million objects' boxes fill
/// 48 MB; compared in the order they come, most comparisons missed every cache). Objects move
/// a few cells over a window, so the order stays good to its end. `keys` and `scratch` are
/// buffers to sort in.
fn order_by_place(slots: &mut [Slot], keys: &mut Vec<u64>, scratch: &mut Vec<u64>) -> f64 {
    /// Cells along an axis: 2^21 cells reach past 50 million km either way.
    const AXIS_BITS: u32 = 21;
    if slots.len() < 2 {
        return 0.0;
    }
    let index_bits = u64::BITS - (slots.len() as u64 - 1).leading_zeros();
    // Few bits per axis: a million objects need 20 bits of index, leaving 44 for the cell.
    let axis_bits = ((u64::BITS - index_bits) / 3).min(AXIS_BITS);
    let cell = |v: f64| {
        let half = (1u64 << (axis_bits - 1)) as f64;
        // Far objects share the outermost cells; NaN goes to the first.
        ((v / CROWDING_CELL_KM).clamp(-half, half - 1.0) + half) as u64
    };
    keys.clear();
    keys.extend(slots.iter().enumerate().map(|(i, slot)| {
        let [x, y, z] = slot.state.r.map(cell);
        (((z << axis_bits | y) << axis_bits | x) << index_bits) | i as u64
    }));
    radix_sort(keys, scratch, index_bits, 3 * axis_bits);
    // Objects sharing a cell come together: n of them make n (n - 1) ordered pairs.
    let (mut pairs, mut run) = (0u64, 1u64);
    for w in keys.windows(2) {
        if w[0] >> index_bits == w[1] >> index_bits {
            run += 1;
        } else {
            pairs += run * (run - 1);
            run = 1;
        }
    }
    pairs += run * (run - 1);
    // Apply the permutation cycle by cycle: position `to` receives the slot at `keys[to]`'s index.
    let index_mask = (1u64 << index_bits) - 1;
    let done = u64::MAX;
    for start in 0..slots.len() {
        if keys[start] == done {
            continue;
        }
        let first = slots[start].clone();
        let mut to = start;
        loop {
            let from = (keys[to] & index_mask) as usize;
            keys[to] = done;
            if from == start {
                slots[to] = first;
                break;
            }
            slots[to] = slots[from].clone();
            to = from;
        }
    }
    pairs as f64 / slots.len() as f64
}

/// Cells of the crowding measure, km.
const CROWDING_CELL_KM: f64 = 50.0;

/// The broad phase's sub-interval, seconds, for objects `crowding` crowded (each shares a
/// [`CROWDING_CELL_KM`] cell with that many others, on average). Performance only: the exact
/// step takes every pair over its own boxes of [`SUB_INTERVAL_S`], and the broad phase, at
/// any length, keeps every pair that may come within the screening distance.
///
/// Longer sub-intervals mean fewer boxes (each costs a step, a filing, look-ups of its
/// neighbouring cells), but larger ones, each compared with more others. Measured on the bench
/// catalogue: a box costs about as much as 30 comparisons, and a box of 5 s is compared with
/// about 4.8 times the crowding, growing as the length to the power 2.4. The length that
/// minimises the cost per second is taken from a few that divide a minute: 30 s for 100,000
/// objects, 12 to 20 s for a million. (Near the optimum the cost changes slowly: 10 to 15 s
/// cost the densest shard of a million objects much the same.)
fn broad_phase_step_s(crowding: f64) -> f64 {
    const CANDIDATES_S: [f64; 7] = [5.0, 7.5, 10.0, 12.0, 15.0, 20.0, BROAD_STEP_MAX_S];
    const BOX_COST: f64 = 30.0;
    let cost = |step_s: f64| (BOX_COST + 4.8 * crowding * (step_s / 5.0).powf(2.4)) / step_s;
    CANDIDATES_S.into_iter().min_by(|a, b| cost(*a).total_cmp(&cost(*b))).unwrap_or(SUB_INTERVAL_S)
}

/// Whether the chords of two objects' paths over the last sub-interval, followed at the same
/// time, come within the sum of their pads. Each path stays within its bow of its chord, so
/// where they do not, the paths stay further apart than the screening distance (the slack
/// covering rounding, as for the boxes).
fn chords_pass_within_pads(a: &Slot, b: &Slot, cut: &Cut) -> bool {
    let start = sub(a.previous, b.previous);
    let change = sub(sub(a.state.r, b.state.r), start);
    let change_2 = dot(change, change);
    // The fraction of the sub-interval at which the separation of the chords is least.
    let s = if change_2 > 0.0 { (-dot(start, change) / change_2).clamp(0.0, 1.0) } else { 0.0 };
    let least = [start[0] + s * change[0], start[1] + s * change[1], start[2] + s * change[2]];
    let reach = a.pad_km(cut) + b.pad_km(cut);
    dot(least, least) <= reach * reach
}

/// Where one object's path can be, grown by half the screening distance, during one sub-interval.
#[derive(Debug, Clone, Copy)]
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

    /// Whether the boxes share a point. All six comparisons, without branching between them:
    /// most boxes compared are apart along one axis or another, unpredictably which.
    fn overlaps(&self, other: &SweptBox) -> bool {
        (other.lo[0] <= self.hi[0])
            & (self.lo[0] <= other.hi[0])
            & (other.lo[1] <= self.hi[1])
            & (self.lo[1] <= other.hi[1])
            & (other.lo[2] <= self.hi[2])
            & (self.lo[2] <= other.hi[2])
    }

    /// The greatest width along an axis, if every bound is finite (and nothing overflows).
    fn finite_extent(&self) -> Option<f64> {
        let (x, y, z) = (self.hi[0] - self.lo[0], self.hi[1] - self.lo[1], self.hi[2] - self.lo[2]);
        // An infinite or NaN bound makes a width or a low corner infinite or NaN, and the sum too.
        if !(self.lo[0] + self.lo[1] + self.lo[2] + x + y + z).is_finite() {
            return None;
        }
        let xy = if x >= y { x } else { y };
        Some(if xy >= z { xy } else { z })
    }
}

/// Broad phase for one sub-interval: every pair of overlapping boxes, each reported once, by
/// cell lists. Space is cut into cells at least as wide as the boxes, and each box is filed
/// under the cell holding its low corner. Two overlapping boxes then have low corners in the
/// same or adjacent cells along every axis (if `b.lo <= a.lo` then `a.lo <= b.hi <= b.lo +
/// width`), so a box need only be compared with the boxes of its own cell and of the 13
/// adjacent cells that come after it (the other 13 compare with it). The filing is a radix sort
/// of the boxes by cell number, cells numbered row by row (x fastest, then y, then z): those
/// cells lie in the box's own row and in four rows after it, which a cursor per row finds by
/// moving forward only, so the pass through the sorted boxes is linear, and nothing is
/// allocated or hashed. Along x the cells are cut into slots ([`Cells`]), so that in each row a
/// box is compared only with the boxes whose low corners lie within its reach, a width behind
/// its own to its far side: 40% fewer comparisons than with three whole cells, each of which
/// costs more than the slots' look-ups (compiled to wasm, above all). (Filing each box in every
/// cell it touches instead would need no look-ups, but two to four entries a box to sort.)
///
/// The cell width is the least (rounded up to a 16th of a doubling) that holds all but 0.5%
/// of the boxes, so that a few fast objects do not coarsen every cell. Wider boxes, and any
/// with a bound that is not finite, are *oversized*: each looks up the cells its partners can
/// be filed under, and among themselves they go through a [`Sweep`].
#[derive(Default)]
struct CellGrid {
    /// `cell number << index_bits | box index` for the boxes filed in cells, sorted.
    entries: Vec<u64>,
    /// The radix sort's other buffer.
    scratch: Vec<u64>,
    /// Indices of the oversized boxes.
    oversized: Vec<u32>,
    /// Their boxes, for the sweep.
    oversized_boxes: Vec<SweptBox>,
    sweep: Sweep,
}

/// Buckets of the histogram of box extents the cell width is chosen from: 16 per doubling
/// (so the width overshoots by at most 4.4%) from 2^-20 to 2^20 km, the ends open.
const EXTENT_BUCKETS: usize = 40 * 16;
/// The bits of an `f64` below the exponent and the first four bits of the mantissa.
const EXTENT_BUCKET_SHIFT: u32 = 48;

/// The bucket of a (finite, non-negative) extent.
fn extent_bucket(extent: f64) -> usize {
    let first = 2f64.powi(-20).to_bits() >> EXTENT_BUCKET_SHIFT;
    ((extent.to_bits() >> EXTENT_BUCKET_SHIFT).saturating_sub(first) as usize).min(EXTENT_BUCKETS - 1)
}

/// The greatest extent in a bucket (infinite for the last).
fn bucket_top(bucket: usize) -> f64 {
    if bucket + 1 == EXTENT_BUCKETS {
        return f64::INFINITY;
    }
    let first = 2f64.powi(-20).to_bits() >> EXTENT_BUCKET_SHIFT;
    // The next bucket's least value, less one unit in the last place.
    f64::from_bits(((first + bucket as u64 + 1) << EXTENT_BUCKET_SHIFT) - 1)
}
/// The share of boxes left oversized at most: the few widest should not widen every cell.
const OVERSIZED_SHARE: f64 = 0.005;
/// Bits per digit of the radix sort: 2048 counters fit in the fastest cache.
const RADIX_BITS: u32 = 11;

/// How space is cut into cells over one sub-interval's boxes. Along y and z a cell is as wide
/// as the widest box filed; along x it is cut finer, into [`X_SLOTS`] slots, so that the boxes
/// compared with a box are those whose low corners lie within the box's reach along x (a
/// width behind its own to its far side), not within three whole cells.
struct Cells {
    /// The least low corner of the boxes filed.
    origin: [f64; 3],
    /// Coordinate units per km along each axis: `X_SLOTS / width` for x, `1 / width` for y and z.
    scale: [f64; 3],
    /// Coordinates along each axis, with an empty margin of [`REACH`] at either end.
    count: [u64; 3],
    /// Bits of an entry below the cell number: the box index.
    index_bits: u32,
}

/// Slots of a cell along x.
const X_SLOTS: u64 = 4;
/// How many coordinates back a box's partners' low corners can lie, per axis: a width.
const REACH: [u64; 3] = [X_SLOTS, 1, 1];

impl Cells {
    /// Where `v` lies along `axis`, in coordinate units from the origin.
    fn scaled(&self, v: f64, axis: usize) -> f64 {
        (v - self.origin[axis]) * self.scale[axis]
    }

    /// The coordinate of `v`, which lies at or past the origin, along `axis`: coordinates start
    /// after the margin. (Truncation is the floor here, and cheaper.)
    fn coordinate(&self, v: f64, axis: usize) -> u64 {
        self.scaled(v, axis) as u64 + REACH[axis]
    }

    /// The greatest cell number.
    fn last(&self) -> u64 {
        self.number(self.count[0] - 1, self.count[1] - 1, self.count[2] - 1)
    }

    /// The number of the cell at these coordinates.
    fn number(&self, x: u64, y: u64, z: u64) -> u64 {
        (z * self.count[1] + y) * self.count[0] + x
    }

    /// The cell holding `corner`, which lies at or past the origin.
    fn of(&self, corner: [f64; 3]) -> u64 {
        self.number(self.coordinate(corner[0], 0), self.coordinate(corner[1], 1), self.coordinate(corner[2], 2))
    }

    fn cell_of(&self, entry: u64) -> u64 {
        entry >> self.index_bits
    }

    fn index_of(&self, entry: u64) -> u32 {
        (entry & ((1 << self.index_bits) - 1)) as u32
    }
}

impl CellGrid {
    /// Calls `report(i, k)` once for every pair of overlapping `boxes` (by index, in either order).
    fn overlapping_pairs(&mut self, boxes: &[SweptBox], mut report: impl FnMut(u32, u32)) {
        self.entries.clear();
        self.oversized.clear();
        if boxes.len() < 2 {
            return;
        }
        if let Some(cells) = self.file(boxes) {
            self.pairs_in_cells(boxes, &cells, &mut report);
            self.pairs_with_oversized(boxes, &cells, &mut report);
        } else {
            self.oversized.extend(0..boxes.len() as u32);
        }
        self.oversized_boxes.clear();
        self.oversized_boxes.extend(self.oversized.iter().map(|&i| boxes[i as usize]));
        let oversized = &self.oversized;
        self.sweep.overlapping_pairs(&self.oversized_boxes, |i, k| report(oversized[i as usize], oversized[k as usize]));
    }

    /// Chooses the cells, files the boxes that fit into them (sorted) and sets the others
    /// aside; `None` if no box fits.
    fn file(&mut self, boxes: &[SweptBox]) -> Option<Cells> {
        // One pass for the extents' histogram and the range of the low corners.
        let mut histogram = [0u32; EXTENT_BUCKETS];
        let (mut lo, mut hi) = ([f64::INFINITY; 3], [f64::NEG_INFINITY; 3]);
        let (mut finite, mut widest) = (0usize, 0.0);
        for b in boxes {
            let Some(extent) = b.finite_extent() else { continue };
            finite += 1;
            widest = if extent > widest { extent } else { widest };
            histogram[extent_bucket(extent)] += 1;
            for d in 0..3 {
                lo[d] = if b.lo[d] < lo[d] { b.lo[d] } else { lo[d] };
                hi[d] = if b.lo[d] > hi[d] { b.lo[d] } else { hi[d] };
            }
        }
        if finite == 0 {
            return None;
        }
        // The width: the least bucket edge that holds all but a small share of the boxes.
        let wanted = finite - (finite as f64 * OVERSIZED_SHARE) as usize;
        let (mut bucket, mut held) = (0, histogram[0] as usize);
        while held < wanted {
            bucket += 1;
            held += histogram[bucket] as usize;
        }
        // The bucket's top, unless no box is that wide (the last bucket is open).
        let top = bucket_top(bucket);
        let widest = if top < widest { top } else { widest };
        let span = (0..3).map(|d| hi[d] - lo[d]).fold(0.0, f64::max);
        // A little wider than the widest box: rounding in the coordinates (below 1e-8 of a unit,
        // the span being at most four million units) cannot then put two overlapping boxes
        // further apart than the reach. At least a millionth of the span, so that cell numbers
        // stay small; never zero.
        let mut width = (widest * (1.0 + 1e-7)).max(span * 1e-6).max(f64::MIN_POSITIVE);
        let index_bits = u64::BITS - (boxes.len() as u64 - 1).leading_zeros();
        let cells = loop {
            let scale = [X_SLOTS as f64 / width, 1.0 / width, 1.0 / width];
            let count = [0, 1, 2].map(|d| ((hi[d] - lo[d]) * scale[d]) as u64 + 2 * REACH[d] + 1);
            let cells = Cells { origin: lo, scale, count, index_bits };
            // Room in the entry for the cell numbers a lookup can ask for, below the sentinel's.
            let asked = cells.last() + count[0] * count[1] + 2 * count[0] + 1;
            if u64::BITS - asked.leading_zeros() + index_bits <= u64::BITS {
                break cells;
            }
            width *= 2.0;
        };
        for (i, b) in boxes.iter().enumerate() {
            if b.finite_extent().is_some_and(|extent| extent <= widest) {
                self.entries.push(cells.of(b.lo) << index_bits | i as u64);
            } else {
                self.oversized.push(i as u32);
            }
        }
        radix_sort(&mut self.entries, &mut self.scratch, index_bits, u64::BITS - cells.last().leading_zeros());
        Some(cells)
    }

    /// The pairs of filed boxes: each box with those after it in its own row whose low corners
    /// lie before its far side along x, and with those of the four rows after its own (y + 1;
    /// y - 1, y and y + 1 at z + 1) whose low corners lie within its reach along x.
    fn pairs_in_cells(&mut self, boxes: &[SweptBox], cells: &Cells, report: &mut impl FnMut(u32, u32)) {
        // A sentinel after the last entry, in a cell above any looked up, ends every scan.
        self.entries.push(u64::MAX);
        let entries = &self.entries[..];
        let filed = entries.len() - 1;
        let (row, plane) = (cells.count[0], cells.count[0] * cells.count[1]);
        let rows = [row, plane - row, plane, plane + row];
        // One cursor per row: the first entry at or past the box's reach behind it, which only
        // moves forward, the boxes coming in order of their cells.
        let mut cursors = [0usize; 4];
        // Entries compare as their cells do: bounds are shifted, not each entry.
        let past = |cell: u64| (cell + 1) << cells.index_bits;
        for a in 0..filed {
            let cell = cells.cell_of(entries[a]);
            let i = cells.index_of(entries[a]);
            let box_a = &boxes[i as usize];
            // The cell in the box's row under its far side along x.
            let row_start = cell - cell % row;
            let far = row_start + cells.coordinate(box_a.hi[0], 0).min(row - 1);
            let mut check = |b: usize| {
                let k = cells.index_of(entries[b]);
                if box_a.overlaps(&boxes[k as usize]) {
                    report(i, k);
                }
            };
            let mut b = a + 1;
            while entries[b] < past(far) {
                check(b);
                b += 1;
            }
            for (offset, cursor) in rows.iter().zip(&mut cursors) {
                let from = (cell + offset - REACH[0]) << cells.index_bits;
                // Usually a step or two: taken without branching, which would mispredict.
                *cursor += usize::from(entries[*cursor] < from);
                *cursor += usize::from(entries[*cursor] < from);
                while entries[*cursor] < from {
                    *cursor += 1;
                }
                let mut b = *cursor;
                while entries[b] < past(far + offset) {
                    check(b);
                    b += 1;
                }
            }
        }
        self.entries.pop();
    }

    /// The pairs of an oversized box and a filed one: the filed partners of a box `o` have
    /// their low corner in `[o.lo - width, o.hi]` along each axis, so they are filed in a
    /// block of cells, looked up row by row (or, if the block has more rows than a pass
    /// over all entries costs, by that pass).
    fn pairs_with_oversized(&self, boxes: &[SweptBox], cells: &Cells, report: &mut impl FnMut(u32, u32)) {
        let entries = &self.entries[..];
        if entries.is_empty() {
            return;
        }
        let search_cost = u64::from(u64::BITS - (entries.len() as u64).leading_zeros()) + 1;
        for &o in &self.oversized {
            let big = &boxes[o as usize];
            if big.lo.iter().chain(&big.hi).any(|v| v.is_nan()) {
                continue; // A NaN bound overlaps nothing.
            }
            // Per axis, the coordinates partners can be filed at (filed boxes have coordinates
            // `REACH` to `count - REACH - 1`): a partner's corner lies at most a width (less
            // rounding) below `big.lo`, so its scaled coordinate is above `big.lo`'s less the
            // reach; and it is not above `big.hi`'s. A bound past the grid leaves no partner.
            let mut first = [0u64; 3];
            let mut last = [0u64; 3];
            let mut empty = false;
            for d in 0..3 {
                let (low, high) = (cells.scaled(big.lo[d], d), cells.scaled(big.hi[d], d));
                let top = cells.count[d] - REACH[d] - 1;
                empty |= high < 0.0 || low >= (top + 1) as f64;
                first[d] = if low >= 0.0 { (low.min(top as f64) as u64).max(REACH[d]) } else { REACH[d] };
                last[d] = if high >= 0.0 { (high.min(top as f64) as u64 + REACH[d]).min(top) } else { 0 };
            }
            if empty || (0..3).any(|d| first[d] > last[d]) {
                continue;
            }
            let rows = (last[1] - first[1] + 1).saturating_mul(last[2] - first[2] + 1);
            let mut check = |e: u64| {
                let i = cells.index_of(e);
                if big.overlaps(&boxes[i as usize]) {
                    report(o, i);
                }
            };
            if rows.saturating_mul(search_cost) >= entries.len() as u64 {
                entries.iter().for_each(|&e| check(e));
                continue;
            }
            for z in first[2]..=last[2] {
                for y in first[1]..=last[1] {
                    let (from, to) = (cells.number(first[0], y, z), cells.number(last[0], y, z));
                    let at = entries.partition_point(|&e| cells.cell_of(e) < from);
                    entries[at..].iter().take_while(|&&e| cells.cell_of(e) <= to).for_each(|&e| check(e));
                }
            }
        }
    }
}

/// Sorts `items` by their bits `shift..shift + bits`, least significant digit first (stable).
fn radix_sort(items: &mut Vec<u64>, scratch: &mut Vec<u64>, shift: u32, bits: u32) {
    scratch.clear();
    scratch.resize(items.len(), 0);
    let mut digit = shift;
    while digit < shift + bits {
        let mut counts = [0u32; 1 << RADIX_BITS];
        let bucket = |item: u64| ((item >> digit) & ((1 << RADIX_BITS) - 1)) as usize;
        for &item in items.iter() {
            counts[bucket(item)] += 1;
        }
        // A digit all items share changes nothing.
        if counts.iter().any(|&c| c as usize == items.len()) {
            digit += RADIX_BITS;
            continue;
        }
        let mut total = 0;
        for count in counts.iter_mut() {
            (*count, total) = (total, total + *count);
        }
        for &item in items.iter() {
            let slot = &mut counts[bucket(item)];
            scratch[*slot as usize] = item;
            *slot += 1;
        }
        std::mem::swap(items, scratch);
        digit += RADIX_BITS;
    }
}

/// Sweep-and-prune over the boxes of one sub-interval after another: the
/// [`CellGrid`]'s oversized boxes, few and mostly the same objects' from one
/// sub-interval to the next. (It screened whole windows before the grid: at
/// 100,000 objects its active list held hundreds of boxes.) The boxes are
/// sorted along the axis where they spread most, so few non-overlapping pairs
/// are looked at. Boxes move little from one sub-interval to the next, so the
/// order of the last one is nearly right for the next: an insertion sort from
/// it costs about one pass.
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
    use proptest::prelude::*;

    fn circular(object_id: u32, radius: f64, phase: f64, inclination: f64) -> ObjectState {
        let v = (MU_KM3_S2 / radius).sqrt();
        let (s, c) = phase.sin_cos();
        ObjectState {
            object_id,
            observation_id: format!("o{object_id}").into(),
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

    proptest! {
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
        fn insertion_sort_sorts_or_says_it_gave_up(
            mut keys in proptest::collection::vec(-1e3f64..1e3, 0..200),
            nearly in proptest::bool::ANY,
        ) {
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

    /// One box: centre, half-widths, and whether a bound is made infinite or NaN.
    fn a_box() -> impl Strategy<Value = SweptBox> {
        let size = prop_oneof![6 => 0.5f64..8.0, 2 => 8.0f64..40.0, 1 => Just(0.0), 1 => 100.0f64..1e4];
        let not_finite = prop_oneof![Just(f64::INFINITY), Just(f64::NEG_INFINITY), Just(f64::NAN)];
        let special = prop_oneof![20 => Just(None), 1 => (0usize..6, not_finite).prop_map(Some)];
        ([-120.0f64..120.0, -120.0f64..120.0, -40.0f64..40.0], [size.clone(), size.clone(), size], special).prop_map(
            |(centre, half, special)| {
                let mut b = SweptBox { lo: [0, 1, 2].map(|d| centre[d] - half[d]), hi: [0, 1, 2].map(|d| centre[d] + half[d]) };
                if let Some((at, value)) = special {
                    if at < 3 { b.lo[at] = value } else { b.hi[at - 3] = value }
                }
                b
            },
        )
    }

    /// Meeting points on LEO shells: objects sent through them at nearby times pass close.
    const MEETING_POINTS: [Vec3; 3] = [[7000.0, 0.0, 0.0], [0.0, 7100.0, 300.0], [-5000.0, 4000.0, 2500.0]];
    const START_MS: i64 = 1_767_225_600_000;

    /// An object at one of the meeting points (displaced by `offset` km) at its epoch, `epoch_s`
    /// after the window start, heading `heading` radians round the local horizontal, climbing
    /// at `climb` radians, at `speed_factor` times the circular speed. A climb near a right
    /// angle makes a nearly radial orbit, whose periapsis is deep inside the Earth (stepped by
    /// Kepler's equation); a fast one is hyperbolic; an epoch hours away is a carried state.
    #[derive(Debug, Clone)]
    struct Pass {
        point: usize,
        offset: Vec3,
        epoch_s: f64,
        heading: f64,
        climb: f64,
        speed_factor: f64,
    }

    fn a_pass() -> impl Strategy<Value = Pass> {
        // Mostly all at their meeting points within a few seconds of each other: close pairs.
        let epoch_s = prop_oneof![6 => 28.0f64..32.0, 2 => -20.0f64..200.0, 1 => -30_000.0f64..-20.0];
        let climb = prop_oneof![8 => -0.05f64..0.05, 1 => -1.57f64..1.57];
        let speed_factor = prop_oneof![8 => 0.95f64..1.05, 1 => 0.5f64..1.6];
        (0usize..3, [-6.0f64..6.0, -6.0f64..6.0, -6.0f64..6.0], epoch_s, 0.0f64..std::f64::consts::TAU, climb, speed_factor).prop_map(
            |(point, offset, epoch_s, heading, climb, speed_factor)| Pass { point, offset, epoch_s, heading, climb, speed_factor },
        )
    }

    fn object(object_id: u32, pass: &Pass) -> ObjectState {
        let p = MEETING_POINTS[pass.point];
        let position = [p[0] + pass.offset[0], p[1] + pass.offset[1], p[2] + pass.offset[2]];
        let up = position.map(|x| x / norm(position));
        let east = crate::orbit::cross([0.0, 0.0, 1.0], up).map(|x| x / norm(crate::orbit::cross([0.0, 0.0, 1.0], up)));
        let north = crate::orbit::cross(up, east);
        let speed = (MU_KM3_S2 / norm(position)).sqrt() * pass.speed_factor;
        let (sh, ch) = pass.heading.sin_cos();
        let (sc, cc) = pass.climb.sin_cos();
        let velocity = [0, 1, 2].map(|d| speed * (cc * (ch * east[d] + sh * north[d]) + sc * up[d]));
        ObjectState {
            object_id,
            observation_id: format!("obs-{object_id}").into(),
            epoch_ms: START_MS + (pass.epoch_s * 1000.0) as i64,
            position_km: position,
            velocity_km_s: velocity,
        }
    }

    /// Ids in no particular order, so that index order and id order differ.
    fn objects(passes: &[Pass]) -> Vec<ObjectState> {
        passes.iter().enumerate().map(|(i, p)| object((i as u32 * 7919 + 13) % 100_003, p)).collect()
    }

    /// A conjunction by object ids and the bits of its values.
    fn by_ids(objects: &[&ObjectState], c: &Conjunction) -> (u32, u32, u64, u64, u64) {
        (
            objects[c.primary].object_id,
            objects[c.secondary].object_id,
            c.tca_s.to_bits(),
            c.miss_distance_km.to_bits(),
            c.relative_speed_km_s.to_bits(),
        )
    }

    proptest! {
        /// The cell grid reports exactly the overlapping pairs, each once, call after call on
        /// the same buffers: boxes of mixed sizes (some too wide for the cells), crowded or
        /// spread, some with a bound that is infinite or NaN.
        #[test]
        fn the_grid_reports_exactly_the_overlapping_pairs(
            calls in proptest::collection::vec((proptest::collection::vec(a_box(), 0..120), 0.01f64..100.0), 1..4),
        ) {
            let mut grid = CellGrid::default();
            for (boxes, scale) in calls {
                let boxes: Vec<SweptBox> =
                    boxes.iter().map(|b| SweptBox { lo: b.lo.map(|v| v * scale), hi: b.hi.map(|v| v * scale) }).collect();
                let mut found = Vec::new();
                grid.overlapping_pairs(&boxes, |i, k| found.push((i.min(k), i.max(k))));
                found.sort_unstable();
                prop_assert_eq!(found, all_overlapping(&boxes));
            }
        }

        /// Oversized boxes (wider than nearly all, or unbounded) with low corners just beside
        /// filed boxes', at the edges of the grid too, meet exactly the boxes they overlap.
        #[test]
        fn oversized_boxes_meet_exactly_the_filed_boxes_they_overlap(
            filed in proptest::collection::vec(([0.0f64..10.0, 0.0f64..10.0, 0.0f64..10.0], 0.5f64..1.0), 200..260),
            oversized in proptest::collection::vec(
                (0usize..1000, [-1.2f64..1.2, -1.2f64..1.2, -1.2f64..1.2], 0usize..3, prop_oneof![3.0f64..20.0, Just(f64::INFINITY)]),
                1..4,
            ),
        ) {
            let mut boxes: Vec<SweptBox> = filed.iter().map(|(lo, w)| SweptBox { lo: *lo, hi: lo.map(|v| v + w) }).collect();
            // Beside the filed box with the greatest low corner along some axis, or any other.
            let extreme = [0, 1, 2].map(|d| (0..filed.len()).max_by(|&a, &b| filed[a].0[d].total_cmp(&filed[b].0[d])).unwrap());
            for (pick, offset, axis, width) in oversized {
                let near = if pick < 600 { extreme[pick % 3] } else { pick % filed.len() };
                let lo = [0, 1, 2].map(|d| boxes[near].lo[d] + offset[d]);
                let mut hi = lo.map(|v| v + 1.0);
                hi[axis] = lo[axis] + width;
                boxes.push(SweptBox { lo, hi });
            }
            let mut found = Vec::new();
            CellGrid::default().overlapping_pairs(&boxes, |i, k| found.push((i.min(k), i.max(k))));
            found.sort_unstable();
            prop_assert_eq!(found, all_overlapping(&boxes));
        }

        /// Positions carried from boundary to boundary (by the series where its bound allows,
        /// by Kepler's equation elsewhere, chains restarting in long windows) are where the
        /// exact step's propagation puts them, within what the boxes allow for: the exact
        /// step's cut within a tenth of the slack, a broad phase's within what its pads add.
        #[test]
        fn carried_positions_follow_the_exact_propagation(pass in a_pass(), length_s in 1.0f64..400.0, step_s in 1.0f64..30.0) {
            let o = object(1, &pass);
            let window = Window::new(START_MS, (length_s * 1000.0) as i64, 5.0);
            let track = Track::new(&o, &window);
            let check = |path: &[Vec3], cut: &Cut, allowed: f64| {
                for (j, p) in path.iter().enumerate() {
                    let exact = track.at(j as f64 * cut.segment_s).r;
                    let off = norm(sub(*p, exact));
                    prop_assert!(off <= allowed + 1e-12 * norm(exact), "boundary {}: {} km off, {} allowed", j, off, allowed);
                }
                Ok(())
            };
            let mut path = Vec::new();
            Slot::path(&o, &window, &mut path);
            check(&path, &window.exact, SERIES_ERROR_KM)?;
            // As the broad phase steps: within what its pads add, or within the slack's tenth.
            let cut = Cut::new(window.length_s, step_s);
            let longest = SeriesStep::new(window.length_s.min(BROAD_STEP_MAX_S).max(cut.segment_s));
            let orbit = Orbit::new(o.position_km, o.velocity_km_s);
            let mut slot = Slot::new(0, &o, orbit, &orbit.shape(), &window, &longest, BROAD_SERIES_ERROR_KM);
            let allowed = slot.pad_less_bow_km - window.screening_km / 2.0 - BOX_SLACK_KM + SERIES_ERROR_KM;
            path.clear();
            path.push(slot.state.r);
            for boundary in 1..=cut.segments {
                if cut.restarts_at(boundary) {
                    slot.solve(boundary, &o, &window, &cut);
                } else {
                    slot.advance(boundary, &[&o], &window, &cut);
                }
                path.push(slot.state.r);
            }
            check(&path, &cut, allowed)?;
        }

        /// Each candidate comes from exactly one shard, with the same bits as from one whole
        /// screening, whatever the number of shards; screeners are reused across windows.
        #[test]
        fn shards_partition_the_candidates(
            passes in proptest::collection::vec(a_pass(), 2..40),
            screening_km in 0.5f64..30.0,
            length_s in 1.0f64..150.0,
        ) {
            let objects = objects(&passes);
            let refs: Vec<&ObjectState> = objects.iter().collect();
            let length_ms = (length_s * 1000.0) as i64;
            let whole: Vec<_> =
                Screener::new().screen(&refs, START_MS, length_ms, screening_km, Shard::WHOLE).iter().map(|c| by_ids(&refs, c)).collect();
            for count in 1..=5 {
                let mut union = Vec::new();
                let mut screener = Screener::new();
                for index in 0..count {
                    let shard = screener.screen(&refs, START_MS, length_ms, screening_km, Shard { index, count });
                    union.extend(shard.iter().map(|c| by_ids(&refs, c)));
                }
                union.sort_unstable();
                // The whole screening's candidates are sorted and distinct by pair, so equality
                // means each candidate came from exactly one shard.
                prop_assert_eq!(&union, &whole, "{} shards", count);
            }
        }

        /// The candidates among some objects are the same, bit for bit, when more objects are
        /// screened with them, in any order.
        #[test]
        fn more_objects_change_nothing_among_the_others(
            passes in proptest::collection::vec(a_pass(), 2..40),
            extra in proptest::collection::vec(a_pass(), 1..40),
            order_seed in any::<u64>(),
            screening_km in 0.5f64..30.0,
        ) {
            let subset = objects(&passes);
            let mut superset = subset.clone();
            superset.extend(extra.iter().enumerate().map(|(i, p)| object(200_000 + i as u32, p)));
            // A deterministic shuffle.
            let mut state = order_seed | 1;
            for i in (1..superset.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                superset.swap(i, (state % (i as u64 + 1)) as usize);
            }
            let small: Vec<&ObjectState> = subset.iter().collect();
            let large: Vec<&ObjectState> = superset.iter().collect();
            let mut screener = Screener::new();
            let alone: Vec<_> =
                screener.screen(&small, START_MS, 60_000, screening_km, Shard::WHOLE).iter().map(|c| by_ids(&small, c)).collect();
            let among: Vec<_> = screener
                .screen(&large, START_MS, 60_000, screening_km, Shard::WHOLE)
                .iter()
                .map(|c| by_ids(&large, c))
                .filter(|c| c.0 < 200_000 && c.1 < 200_000)
                .collect();
            prop_assert_eq!(among, alone);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        /// Against brute force on crowds with every kind of object (fast, hyperbolic, nearly
        /// radial, carried for hours), long windows included: no pair missed, none extra, the
        /// miss distance within a metre. Pairs within a metre of the threshold may go either way.
        #[test]
        fn agrees_with_brute_force_on_random_crowds(
            passes in proptest::collection::vec(a_pass(), 2..14),
            screening_km in 1.0f64..20.0,
            length_s in 5.0f64..150.0,
        ) {
            let objects = objects(&passes);
            let length_ms = (length_s * 1000.0) as i64;
            let found = screen(&objects, START_MS, length_ms, screening_km);
            for i in 0..objects.len() {
                for k in i + 1..objects.len() {
                    let brute = brute_min(&objects[i], &objects[k], START_MS, length_ms);
                    let c = found.iter().find(|c| (c.primary.min(c.secondary), c.primary.max(c.secondary)) == (i.min(k), i.max(k)));
                    match c {
                        Some(c) => prop_assert!((c.miss_distance_km - brute).abs() < 1e-3 && brute < screening_km + 1e-3, "{:?} vs brute \
                            force {}", c, brute),
                        None => prop_assert!(brute >= screening_km - 1e-3, "missed {}-{} at {} km", i, k, brute),
                    }
                }
            }
        }
    }

    #[test]
    fn a_box_reaching_to_infinity_meets_the_boxes_beside_it_when_a_widest_box_sizes_the_cells() {
        // The widest box fell in the open last bucket of the extents' histogram, whose top is
        // infinite: infinitely wide cells made the unbounded box's cell coordinate NaN, and it
        // was skipped. Cells are now no wider than the widest box.
        let boxes = [
            SweptBox { lo: [-7756.0, -38.8, -591.7], hi: [7756.0, 38.8, 591.7] },
            SweptBox { lo: [-38.8, -38.8, -38.8], hi: [f64::INFINITY, 38.8, 38.8] },
            SweptBox { lo: [-532_796.0, -38.8, -38.8], hi: [532_796.0, 38.8, 38.8] },
        ];
        let mut found = Vec::new();
        CellGrid::default().overlapping_pairs(&boxes, |i, k| found.push((i.min(k), i.max(k))));
        found.sort_unstable();
        assert_eq!(found, [(0, 1), (0, 2), (1, 2)]);
    }

    #[test]
    fn a_slot_stays_within_the_memory_the_screener_promises() {
        assert!(std::mem::size_of::<Slot>() <= 120, "{} bytes", std::mem::size_of::<Slot>());
        assert_eq!(std::mem::size_of::<SweptBox>(), 48);
    }

    #[test]
    fn a_shard_screens_only_its_share_of_the_objects() {
        // Shells split the radial axis: a low and a high object are each screened by one shard.
        let low = circular(1, 7000.0, 0.0, 0.0);
        let high = circular(2, 42164.0, 0.0, 0.0);
        let refs = [&low, &high];
        let mut screener = Screener::new();
        for index in 0..2 {
            screener.screen(&refs, START_MS, 60_000, 5.0, Shard { index, count: 2 });
            assert_eq!(screener.slots.len(), 1, "shard {index}");
        }
        screener.screen(&refs, START_MS, 60_000, 5.0, Shard::WHOLE);
        assert_eq!(screener.slots.len(), 2);
    }

    #[test]
    fn shells_split_the_estimated_work_so_a_crowded_shell_holds_fewer_objects() {
        let mut work = WorkByRadius::default();
        // Nothing crowded: the work follows the count.
        let spread: Vec<f64> = (0..1000).map(|i| 7000.0 + f64::from(i) * 10.0).collect();
        assert_eq!(work.estimate(&spread).rank_at_share(0.5), 500);
        // 700,000 objects within 10 km of radius (70,000 per km: each weighs 11) and as many thinly
        // spread above: the cut falls inside the crowd (half the work, 8.4M, is reached at about the 382,000th of its
        // 700,000), not between the two groups as counts would put it.
        let mut lower_bounds: Vec<f64> = (0..700_000).map(|i| 7000.0 + f64::from(i % 1000) / 100.0).collect();
        lower_bounds.extend((0..700_000).map(|i| 8000.0 + f64::from(i) / 10.0));
        let half = work.estimate(&lower_bounds).rank_at_share(0.5);
        assert!((381_000..383_000).contains(&half), "{half}");
        // The same objects in another order make the same cuts; more shards, higher cuts.
        lower_bounds.reverse();
        let ranks: Vec<usize> = [0.25, 0.5, 0.75, 1.0].into_iter().map(|share| work.estimate(&lower_bounds).rank_at_share(share)).collect();
        assert_eq!(ranks[1], half);
        assert!(ranks[0] < ranks[1] && ranks[1] < ranks[2] && ranks[3] == lower_bounds.len(), "{ranks:?}");
        // Lower bounds out of the bins' range (and NaN) are counted in the end bins.
        let odd = [f64::NAN, -5.0, 1e9, f64::INFINITY];
        assert_eq!(work.estimate(&odd).rank_at_share(0.5), 2);
    }

    #[test]
    fn shapes_given_screen_as_shapes_worked_out() {
        let objects = crate::synthetic::catalogue(3000, 20.0 * 60_000.0);
        let refs: Vec<&ObjectState> = objects.iter().collect();
        let shapes: Vec<Shape> = objects.iter().map(shape_of).collect();
        let start = crate::synthetic::SYNTHETIC_WINDOW_START_MS;
        let mut screener = Screener::new();
        for shard in [Shard::WHOLE, Shard { index: 0, count: 2 }, Shard { index: 1, count: 2 }, Shard { index: 2, count: 3 }] {
            let worked_out = screener.screen(&refs, start, 60_000, 20.0, shard);
            let given = screener.screen_with_shapes(&refs, Some(&shapes), start, 60_000, 20.0, shard);
            assert!(!worked_out.is_empty() || shard.index == 2, "{shard:?}: the outer shell of three may have none");
            assert_eq!(given, worked_out, "{shard:?}");
        }
    }

    #[test]
    #[should_panic(expected = "shard 2 of 2 does not exist")]
    fn a_shard_past_the_count_is_refused() {
        let a = circular(1, 7000.0, 0.0, 0.0);
        Screener::new().screen(&[&a, &a], 0, 60_000, 5.0, Shard { index: 2, count: 2 });
    }
}
