//! Catalogue mode's carried states: one flat array sorted by object id, updated by one merge per window, snapshotted as columns.
//!
//! A million carried states are the bulk of the correlator's state, and two things touch all of
//! them: every window close (expiry, then the window's fresh states replace or join the carried
//! ones) and every checkpoint (the snapshot is taken while batches wait). A `BTreeMap` made both
//! slow: a window's upkeep walked a million nodes three times over (retain, merge, extend), once in
//! every shard, which held `parallelism = 2` well below twice the speed; and postcard encoded it
//! entry by entry, field by field, at half a second for a million states in wasm. Here the states
//! are one sorted array (with each state's orbit shape beside it, which screening needs), the
//! upkeep one linear pass into a new array, and the snapshot a handful of columns of fixed-width
//! numbers written back to back after the rest of the state.

use crate::orbit::Shape;
use crate::screen::{ObjectState, shape_of};
use std::collections::BTreeMap;

/// The fixed-width columns' bytes per state: object id, epoch, position and velocity, id length.
const NUMBERS_PER_STATE_BYTES: usize = 4 + 8 + 48 + 4;

/// Every object's carried state, by increasing object id (each id once).
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    states: Vec<ObjectState>,
    /// Each state's orbit shape, which screening needs every window and a carried state keeps
    /// (worked out from the state, so not state itself: never snapshotted).
    shapes: Vec<Shape>,
    /// The observation ids' total length, for the snapshot's size.
    id_bytes: usize,
}

/// Equal states are equal catalogues (the rest is worked out from them).
impl PartialEq for Catalogue {
    fn eq(&self, other: &Self) -> bool {
        self.states == other.states
    }
}

impl Catalogue {
    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    pub fn len(&self) -> usize {
        self.states.len()
    }

    /// The carried states, by increasing object id.
    pub fn states(&self) -> &[ObjectState] {
        &self.states
    }

    /// Their orbit shapes, as [`shape_of`] gives them.
    pub fn shapes(&self) -> &[Shape] {
        &self.shapes
    }

    fn of_states(states: Vec<ObjectState>) -> Catalogue {
        let shapes = states.iter().map(shape_of).collect();
        let id_bytes = states.iter().map(|s| s.observation_id.len()).sum();
        Catalogue { states, shapes, id_bytes }
    }

    /// Closes a window starting at `start_ms`: drops every carried state whose epoch is more than
    /// `horizon_ms` before it, then puts each `fresh` state in its object's place (replacing the
    /// carried one: a fresh state is from this window, later than any carried epoch). One pass; the
    /// result is both the window's states to screen and the catalogue carried into the next.
    pub fn close_window(&mut self, start_ms: i64, horizon_ms: i64, fresh: BTreeMap<u32, ObjectState>) {
        let alive = |s: &ObjectState| i128::from(start_ms) - i128::from(s.epoch_ms) <= i128::from(horizon_ms);
        // New arrays each window rather than two kept for the next: between windows the old ones'
        // memory serves the snapshot's buffer, where two more arrays would grow the instance's memory.
        let mut states = Vec::with_capacity(self.states.len() + fresh.len());
        let mut shapes = Vec::with_capacity(self.states.len() + fresh.len());
        let mut id_bytes = 0;
        let mut push = |state: ObjectState, shape: Option<Shape>| {
            shapes.push(shape.unwrap_or_else(|| shape_of(&state)));
            id_bytes += state.observation_id.len();
            states.push(state);
        };
        let mut fresh = fresh.into_values().peekable();
        for (carried, shape) in self.states.drain(..).zip(self.shapes.drain(..)) {
            while let Some(f) = fresh.next_if(|f| f.object_id < carried.object_id) {
                push(f, None);
            }
            match fresh.next_if(|f| f.object_id == carried.object_id) {
                Some(f) => push(f, None),
                None if alive(&carried) => push(carried, Some(shape)),
                None => {}
            }
        }
        fresh.for_each(|f| push(f, None));
        self.id_bytes = id_bytes;
        (self.states, self.shapes) = (states, shapes);
    }

    /// The catalogue of a version 2 state (a map by object id).
    pub fn from_map(map: BTreeMap<u32, ObjectState>) -> Catalogue {
        Catalogue::of_states(map.into_values().collect())
    }

    /// The columns snapshots hold (see [`Catalogue::decode`]), one after the other (snapshots append
    /// them with [`Catalogue::encode_into`]; the tests read them whole).
    #[cfg(test)]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }

    /// The length of the catalogue's columns.
    pub fn encoded_len(&self) -> usize {
        4 + self.states.len() * NUMBERS_PER_STATE_BYTES + self.id_bytes
    }

    /// The catalogue's columns (see [`Catalogue::decode`]), appended to `out` (which is best given room for
    /// [`Catalogue::encoded_len`] more bytes: a million states' columns are too large to copy twice).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let n = self.states.len();
        let count = u32::try_from(n).expect("fewer than 2^32 objects: ids are u32");
        let start = out.len();
        out.reserve_exact(self.encoded_len());
        out.resize(start + 4 + n * NUMBERS_PER_STATE_BYTES, 0);
        let (head, rest) = out[start..].split_at_mut(4);
        head.copy_from_slice(&count.to_le_bytes());
        let (ids, rest) = rest.split_at_mut(4 * n);
        let (epochs, rest) = rest.split_at_mut(8 * n);
        let (motion, lengths) = rest.split_at_mut(48 * n);
        // One pass over the states, writing each column's slot: a pass per column read the states
        // (88 bytes each) five times over, and memory bandwidth was the cost.
        let slots =
            ids.chunks_exact_mut(4).zip(epochs.chunks_exact_mut(8)).zip(motion.chunks_exact_mut(48)).zip(lengths.chunks_exact_mut(4));
        for (s, (((id, epoch), motion), length)) in self.states.iter().zip(slots) {
            id.copy_from_slice(&s.object_id.to_le_bytes());
            epoch.copy_from_slice(&s.epoch_ms.to_le_bytes());
            let [px, py, pz] = s.position_km;
            let [vx, vy, vz] = s.velocity_km_s;
            for (slot, x) in motion.chunks_exact_mut(8).zip([px, py, pz, vx, vy, vz]) {
                slot.copy_from_slice(&x.to_le_bytes());
            }
            length.copy_from_slice(&u32::try_from(s.observation_id.len()).expect("an id under 4 GiB").to_le_bytes());
        }
        for s in &self.states {
            out.extend_from_slice(s.observation_id.as_bytes());
        }
    }

    /// Reads [`Catalogue::encode_into`]'s columns: the count (u32), then for every state in object id
    /// order its object id (u32), epoch (i64), position and velocity (6 f64), the length of its
    /// observation id (u32), and last the observation ids' UTF-8 bytes back to back; numbers little-endian.
    pub fn decode(bytes: &[u8]) -> Result<Catalogue, String> {
        let mut reader = Columns { bytes, at: 0 };
        let n = u32::from_le_bytes(reader.take::<4>()?) as usize;
        // A count the bytes cannot hold is refused before allocating for it.
        if n > bytes.len() / NUMBERS_PER_STATE_BYTES {
            return Err(format!("the catalogue claims {n} objects but holds {} bytes", bytes.len()));
        }
        let (ids, epochs, motion, lengths) = (reader.slice(4 * n)?, reader.slice(8 * n)?, reader.slice(48 * n)?, reader.slice(4 * n)?);
        let le_u32 = |b: &[u8]| u32::from_le_bytes(b.try_into().expect("chunks of 4"));
        let le_f64 = |b: &[u8]| f64::from_le_bytes(b.try_into().expect("chunks of 8"));
        let mut states: Vec<ObjectState> = Vec::with_capacity(n);
        let columns = ids.chunks_exact(4).zip(epochs.chunks_exact(8)).zip(motion.chunks_exact(48)).zip(lengths.chunks_exact(4));
        for (((id, epoch), motion), length) in columns {
            let object_id = le_u32(id);
            if let Some(before) = states.last().filter(|before| before.object_id >= object_id) {
                return Err(format!("the catalogue's object ids are not in increasing order ({} before {object_id})", before.object_id));
            }
            let text = reader.slice(le_u32(length) as usize)?;
            let observation_id =
                std::str::from_utf8(text).map_err(|e| format!("the observation id of object {object_id} is not UTF-8: {e}"))?.into();
            let at = |i: usize| le_f64(&motion[8 * i..8 * i + 8]);
            states.push(ObjectState {
                object_id,
                observation_id,
                epoch_ms: i64::from_le_bytes(epoch.try_into().expect("chunks of 8")),
                position_km: [at(0), at(1), at(2)],
                velocity_km_s: [at(3), at(4), at(5)],
            });
        }
        if reader.at != bytes.len() {
            return Err(format!("{} bytes follow the catalogue's last column", bytes.len() - reader.at));
        }
        Ok(Catalogue::of_states(states))
    }
}

/// A cursor over the encoded columns.
struct Columns<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Columns<'a> {
    fn slice(&mut self, len: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(len).filter(|&end| end <= self.bytes.len());
        let end = end.ok_or_else(|| {
            format!("the catalogue's columns end early: {} bytes where {} are needed", self.bytes.len(), self.at as u128 + len as u128)
        })?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], String> {
        Ok(self.slice(N)?.try_into().expect("a slice of N bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(object_id: u32, epoch_ms: i64, observation_id: &str) -> ObjectState {
        let f = f64::from(object_id);
        ObjectState {
            object_id,
            observation_id: observation_id.into(),
            epoch_ms,
            position_km: [7000.0 + f, -f, 0.5 * f],
            velocity_km_s: [0.1, 7.5 - f / 1e4, f64::from(object_id % 3)],
        }
    }

    fn map(states: &[ObjectState]) -> BTreeMap<u32, ObjectState> {
        states.iter().map(|s| (s.object_id, s.clone())).collect()
    }

    /// What a window close does, written the way the specification reads (and the map did it).
    fn by_the_rules(carried: &BTreeMap<u32, ObjectState>, start: i64, horizon: i64, fresh: &[ObjectState]) -> Vec<ObjectState> {
        let mut next: BTreeMap<u32, ObjectState> = carried
            .iter()
            .filter(|(_, s)| i128::from(start) - i128::from(s.epoch_ms) <= i128::from(horizon))
            .map(|(k, s)| (*k, s.clone()))
            .collect();
        next.extend(map(fresh));
        next.into_values().collect()
    }

    #[test]
    fn a_window_close_expires_replaces_and_adds_in_one_pass_as_the_rules_say() {
        let carried = [state(1, 0, "a"), state(3, 50_000, "b"), state(5, 10_000, "c"), state(9, 90_000, "d")];
        let fresh = [state(0, 120_000, "e"), state(3, 121_000, "f"), state(6, 122_000, "g"), state(12, 123_000, "h")];
        for horizon in [0, 30_000, 70_000, 110_000, 200_000, i64::MAX] {
            let mut catalogue = Catalogue::from_map(map(&carried));
            catalogue.close_window(120_000, horizon, map(&fresh));
            assert_eq!(catalogue.states(), by_the_rules(&map(&carried), 120_000, horizon, &fresh), "horizon {horizon}");
        }
    }

    proptest::proptest! {
        #[test]
        fn many_window_closes_keep_the_catalogue_the_rules_keep(
            windows in proptest::collection::vec(proptest::collection::btree_map(0u32..40, 0i64..60_000, 0..25), 1..12),
            horizon in 0i64..400_000,
        ) {
            let (mut catalogue, mut expected) = (Catalogue::default(), BTreeMap::new());
            for (k, fresh) in windows.iter().enumerate() {
                let start = k as i64 * 60_000;
                let fresh: Vec<ObjectState> = fresh.iter().map(|(&id, &at)| state(id, start + at, &format!("obs-{k}-{id}"))).collect();
                catalogue.close_window(start, horizon, map(&fresh));
                expected = map(&by_the_rules(&expected, start, horizon, &fresh));
                proptest::prop_assert_eq!(catalogue.states(), expected.values().cloned().collect::<Vec<_>>());
                // Carried or fresh, each state's shape is the one screening would work out.
                let shapes: Vec<Shape> = catalogue.states().iter().map(shape_of).collect();
                proptest::prop_assert_eq!(catalogue.shapes(), &shapes[..]);
                let restored = Catalogue::decode(&catalogue.encode()).unwrap();
                proptest::prop_assert_eq!(restored.states(), catalogue.states());
                proptest::prop_assert_eq!(restored.shapes(), catalogue.shapes());
            }
        }
    }

    #[test]
    fn columns_round_trip_every_field_bit_for_bit() {
        let mut states = vec![state(2, i64::MIN, ""), state(7, -5, "ünïcødé"), state(4_000_000_000, i64::MAX, &"x".repeat(300))];
        states[1].position_km = [f64::MIN_POSITIVE, -0.0, f64::MAX];
        states[1].velocity_km_s = [1e-300, f64::EPSILON, -7.25];
        let catalogue = Catalogue::from_map(map(&states));
        let bytes = catalogue.encode();
        let restored = Catalogue::decode(&bytes).unwrap();
        assert_eq!(restored, catalogue);
        assert_eq!(restored.states()[1].position_km[1].to_bits(), (-0.0f64).to_bits(), "the sign of zero is kept");
        // The count, then 64 bytes of numbers per state, then the ids.
        assert_eq!(bytes.len(), 4 + 3 * NUMBERS_PER_STATE_BYTES + "ünïcødé".len() + 300);
        assert_eq!(Catalogue::decode(&Catalogue::default().encode()).unwrap(), Catalogue::default());
    }

    #[test]
    fn broken_columns_are_refused_with_what_is_wrong() {
        let bytes = Catalogue::from_map(map(&[state(1, 0, "a"), state(2, 0, "bb")])).encode();
        let refusal = |bytes: &[u8]| Catalogue::decode(bytes).unwrap_err();
        assert!(refusal(&bytes[..bytes.len() - 1]).contains("end early"), "{}", refusal(&bytes[..bytes.len() - 1]));
        assert!(refusal(&[bytes.as_slice(), b"?"].concat()).contains("1 bytes follow"));
        assert!(refusal(&[]).contains("end early"));
        let mut huge = bytes.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(refusal(&huge).contains("claims 4294967295 objects"), "{}", refusal(&huge));
        let mut unordered = bytes.clone();
        unordered[4..8].copy_from_slice(&2u32.to_le_bytes());
        assert!(refusal(&unordered).contains("not in increasing order (2 before 2)"), "{}", refusal(&unordered));
        let mut not_utf8 = bytes.clone();
        *not_utf8.last_mut().unwrap() = 0xff;
        assert!(refusal(&not_utf8).contains("observation id of object 2 is not UTF-8"), "{}", refusal(&not_utf8));
    }
}
