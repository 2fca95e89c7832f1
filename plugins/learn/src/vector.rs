//! The weights of a model over the hashed feature space: dense (one slot per index, for the
//! global model) or sparse (only the indices seen, for per-key models). A snapshot stores the
//! slots that are not zero with their indices, so a mostly empty 2^20 space costs little to
//! checkpoint; a dense vector most of whose slots are used is stored whole instead, without
//! indices, when that is shorter (at most 8 bytes a slot with SGD, 24 with FTRL).
//!
//! Neither direction builds anything proportional to the slots beside them: a snapshot is
//! encoded straight from the slots, and a restore decodes each stored slot straight into the
//! dense block of the model being replaced ([`VectorSeed`] with [`Target::Block`]), so that it
//! needs that block and the snapshot's bytes, and no second block (Wasm memory never shrinks).

mod decode;

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::ser::SerializeSeq;
use serde::{Serialize, Serializer};

pub use self::decode::{Target, VectorSeed};
use crate::optimizer::FtrlCoordinate;

/// What one index of the space holds: a weight (SGD) or a weight with its accumulators (FTRL).
pub trait Slot: Copy + Default + PartialEq + Serialize + DeserializeOwned {
    /// The bytes of one slot in a snapshot (postcard writes an `f64` as 8 bytes).
    const STORED_BYTES: usize;

    fn weight(&self) -> f64;
}

impl Slot for f64 {
    const STORED_BYTES: usize = 8;

    fn weight(&self) -> f64 {
        *self
    }
}

impl Slot for FtrlCoordinate {
    const STORED_BYTES: usize = 24;

    fn weight(&self) -> f64 {
        self.weight
    }
}

/// Slots indexed by hashed feature index; an absent sparse slot is the default (zero).
#[derive(Debug, Clone, PartialEq)]
pub struct Vector<T> {
    storage: Storage<T>,
    /// Slots that are not the default: what a snapshot stores.
    stored: usize,
    /// Slots whose weight is not 0.
    nonzero_weights: usize,
}

#[derive(Debug, Clone, PartialEq)]
enum Storage<T> {
    Dense(Vec<T>),
    Sparse(BTreeMap<u32, T>),
}

impl<T: Slot> Vector<T> {
    /// `dimensions` slots, all zero, in one block.
    pub fn dense(dimensions: usize) -> Self {
        Vector { storage: Storage::Dense(vec![T::default(); dimensions]), stored: 0, nonzero_weights: 0 }
    }

    /// No slots yet; each index learnt takes an entry.
    pub fn sparse() -> Self {
        Vector { storage: Storage::Sparse(BTreeMap::new()), stored: 0, nonzero_weights: 0 }
    }

    pub fn get(&self, index: u32) -> T {
        match &self.storage {
            Storage::Dense(slots) => slots.get(index as usize).copied().unwrap_or_default(),
            Storage::Sparse(slots) => slots.get(&index).copied().unwrap_or_default(),
        }
    }

    /// Changes the slot at `index` (ignored beyond a dense vector's end, which the hash mask rules out).
    pub fn update(&mut self, index: u32, change: impl FnOnce(&mut T)) {
        let (before, after) = match &mut self.storage {
            Storage::Dense(slots) => {
                let Some(slot) = slots.get_mut(index as usize) else { return };
                let before = *slot;
                change(slot);
                (before, *slot)
            }
            Storage::Sparse(slots) => {
                let before = slots.get(&index).copied().unwrap_or_default();
                let mut after = before;
                change(&mut after);
                if after == T::default() {
                    slots.remove(&index);
                } else {
                    slots.insert(index, after);
                }
                (before, after)
            }
        };
        self.stored = adjust(self.stored, before != T::default(), after != T::default());
        self.nonzero_weights = adjust(self.nonzero_weights, before.weight() != 0.0, after.weight() != 0.0);
    }

    /// [`Vector::update`], except that a sparse vector holding `limit` slots takes no new one:
    /// a change that would add a slot is dropped, and then `false` is returned.
    pub fn update_within(&mut self, index: u32, limit: usize, change: impl FnOnce(&mut T)) -> bool {
        if let Storage::Sparse(slots) = &self.storage
            && slots.len() >= limit
            && !slots.contains_key(&index)
        {
            let mut slot = T::default();
            change(&mut slot);
            return slot == T::default();
        }
        self.update(index, change);
        true
    }

    /// How many weights are not 0.
    pub fn nonzero_weights(&self) -> usize {
        self.nonzero_weights
    }

    /// How many slots are not the default (a sparse vector's entries).
    pub fn stored(&self) -> usize {
        self.stored
    }

    /// The number of slots of a dense vector; `None` for a sparse one.
    pub fn dense_len(&self) -> Option<usize> {
        match &self.storage {
            Storage::Dense(slots) => Some(slots.len()),
            Storage::Sparse(_) => None,
        }
    }

    /// The largest index stored, to check a restored vector against the space.
    pub fn largest_index(&self) -> Option<u32> {
        match &self.storage {
            Storage::Dense(_) => self.entries().map(|(index, _)| index).last(),
            Storage::Sparse(slots) => slots.keys().next_back().copied(),
        }
    }

    /// Keeps the `limit` slots of a sparse vector whose weights are largest in magnitude (the
    /// smaller index first among equals), dropping the others; a dense vector is kept whole.
    pub fn keep_largest(&mut self, limit: usize) {
        let Storage::Sparse(slots) = &mut self.storage else { return };
        if slots.len() <= limit {
            return;
        }
        let mut kept: Vec<(u32, T)> = std::mem::take(slots).into_iter().collect();
        kept.sort_by(|(a_index, a), (b_index, b)| b.weight().abs().total_cmp(&a.weight().abs()).then(a_index.cmp(b_index)));
        kept.truncate(limit);
        *slots = kept.into_iter().collect();
        self.stored = slots.len();
        self.nonzero_weights = slots.values().filter(|slot| slot.weight() != 0.0).count();
    }

    /// Where a dense vector's block lies (to show that a restore reuses it).
    #[cfg(test)]
    pub fn block_address(&self) -> Option<usize> {
        match &self.storage {
            Storage::Dense(slots) => Some(slots.as_ptr() as usize),
            Storage::Sparse(_) => None,
        }
    }

    /// The non-zero weights, by index.
    #[cfg(test)]
    pub fn weights(&self) -> Vec<(u32, f64)> {
        self.entries().map(|(index, slot)| (index, slot.weight())).filter(|(_, weight)| *weight != 0.0).collect()
    }

    /// This vector with every slot back to the default (a dense block keeps its memory).
    fn cleared(mut self) -> Self {
        if self.stored > 0 {
            match &mut self.storage {
                Storage::Dense(slots) => slots.fill(T::default()),
                Storage::Sparse(slots) => slots.clear(),
            }
        }
        Vector { stored: 0, nonzero_weights: 0, ..self }
    }

    /// The slots that are not the default, by index.
    fn entries(&self) -> Box<dyn Iterator<Item = (u32, T)> + '_> {
        match &self.storage {
            Storage::Dense(slots) => {
                Box::new(slots.iter().enumerate().filter(|(_, slot)| **slot != T::default()).map(|(index, slot)| (index as u32, *slot)))
            }
            Storage::Sparse(slots) => Box::new(slots.iter().map(|(index, slot)| (*index, *slot))),
        }
    }
}

fn adjust(count: usize, before: bool, after: bool) -> usize {
    match (before, after) {
        (false, true) => count + 1,
        (true, false) => count.saturating_sub(1),
        _ => count,
    }
}

/// The stored form: the non-default slots, and a dense vector's length.
#[derive(Serialize)]
#[serde(rename = "Vector")]
enum StoredRef<'a, T: Slot> {
    Dense {
        len: u64,
        entries: Entries<'a, T>,
    },
    Sparse {
        entries: Entries<'a, T>,
    },
    /// A dense vector's every slot, in index order (added in state version 2).
    Full {
        len: u64,
        slots: &'a [T],
    },
}

/// The slots of a vector, encoded one by one as `(index, slot)` straight from the vector.
struct Entries<'a, T>(&'a Vector<T>);

impl<T: Slot> Serialize for Entries<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut sequence = serializer.serialize_seq(Some(self.0.stored))?;
        for entry in self.0.entries() {
            sequence.serialize_element(&entry)?;
        }
        sequence.end()
    }
}

impl<T: Slot> Serialize for Vector<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.storage {
            Storage::Dense(slots) if stored_whole_is_shorter::<T>(slots.len(), self.stored) => {
                StoredRef::Full { len: slots.len() as u64, slots }.serialize(serializer)
            }
            Storage::Dense(slots) => StoredRef::Dense { len: slots.len() as u64, entries: Entries(self) }.serialize(serializer),
            Storage::Sparse(_) => StoredRef::Sparse { entries: Entries(self) }.serialize(serializer),
        }
    }
}

/// Whether `len` slots without indices take fewer bytes than `stored` slots with theirs (an
/// index takes 1 to 4 bytes; the largest is counted for all).
fn stored_whole_is_shorter<T: Slot>(len: usize, stored: usize) -> bool {
    let index_bytes = match len.saturating_sub(1) {
        0..0x80 => 1,
        0x80..0x4000 => 2,
        0x4000..0x20_0000 => 3,
        _ => 4,
    };
    len * T::STORED_BYTES < stored.saturating_mul(T::STORED_BYTES + index_bytes)
}

#[cfg(test)]
mod tests {
    use serde::de::DeserializeSeed;

    use super::*;

    /// The stored form, built by hand (for corrupt states).
    #[derive(Serialize)]
    #[serde(rename = "Vector")]
    enum Stored<T> {
        Dense { len: u64, entries: Vec<(u32, T)> },
        Sparse { entries: Vec<(u32, T)> },
    }

    /// The stored form of a vector stored whole, built by hand.
    #[derive(Serialize)]
    #[serde(rename = "Vector")]
    enum StoredFullForm<T> {
        _Dense,
        _Sparse,
        Full { len: u64, slots: Vec<T> },
    }

    fn decode_into<T: Slot>(bytes: &[u8], target: Target<T>) -> postcard::Result<Vector<T>> {
        VectorSeed { target }.deserialize(&mut postcard::Deserializer::from_bytes(bytes))
    }

    #[test]
    fn counts_follow_updates_and_survive_encoding() {
        for mut vector in [Vector::<f64>::dense(16), Vector::sparse()] {
            vector.update(3, |w| *w = 1.5);
            vector.update(9, |w| *w = -2.0);
            vector.update(9, |w| *w = 0.0);
            vector.update(12, |w| *w += 0.25);
            assert_eq!((vector.get(3), vector.get(9), vector.get(12), vector.nonzero_weights()), (1.5, 0.0, 0.25, 2));
            let bytes = postcard::to_allocvec(&vector).expect("encodes");
            let decoded: Vector<f64> = postcard::from_bytes(&bytes).expect("decodes");
            assert_eq!(decoded.largest_index(), Some(12));
            assert_eq!(decoded, vector);
        }
    }

    #[test]
    fn an_ftrl_slot_with_accumulators_but_no_weight_is_stored_but_not_counted() {
        let mut vector = Vector::<FtrlCoordinate>::sparse();
        vector.update(1, |slot| *slot = FtrlCoordinate { weight: 0.0, z: 0.5, n: 1.0 });
        assert_eq!((vector.nonzero_weights(), vector.stored()), (0, 1));
    }

    #[test]
    fn a_dense_vector_decodes_into_the_block_it_is_given() {
        let mut vector = Vector::<f64>::dense(64);
        vector.update(5, |w| *w = 1.0);
        vector.update(60, |w| *w = -3.0);
        let bytes = postcard::to_allocvec(&vector).expect("encodes");
        let mut used = Vector::<f64>::dense(64);
        used.update(7, |w| *w = 9.0);
        let block_address = used.block_address();
        let decoded = decode_into(&bytes, Target::Block(used)).expect("decodes");
        assert_eq!(decoded, vector, "the block's own slots are overwritten");
        assert_eq!(decoded.block_address(), block_address, "the same block");
        assert!(decode_into(&bytes, Target::Block(Vector::<f64>::dense(32))).is_err(), "a block of another length");
        assert!(decode_into::<f64>(&bytes, Target::Sparse).is_err(), "a dense vector where a sparse one belongs");
        let sparse = postcard::to_allocvec(&Vector::<f64>::sparse()).expect("encodes");
        assert!(decode_into(&sparse, Target::Block(Vector::<f64>::dense(64))).is_err(), "a sparse vector where the block belongs");
    }

    #[test]
    fn a_dense_snapshot_holds_only_the_nonzero_slots() {
        let mut vector = Vector::<f64>::dense(1 << 20);
        vector.update(5, |w| *w = 1.0);
        let bytes = postcard::to_allocvec(&vector).expect("encodes");
        assert!(bytes.len() < 32, "{} bytes", bytes.len());
        let corrupt = postcard::to_allocvec(&Stored::Dense { len: 4, entries: vec![(7u32, 1.0f64)] }).expect("encodes");
        assert!(postcard::from_bytes::<Vector<f64>>(&corrupt).is_err());
        let huge = postcard::to_allocvec(&Stored::<f64>::Dense { len: 1 << 30, entries: vec![] }).expect("encodes");
        assert!(postcard::from_bytes::<Vector<f64>>(&huge).is_err(), "no block larger than any hash_bits allows");
        let duplicated = postcard::to_allocvec(&Stored::Sparse { entries: vec![(3u32, 1.0f64), (3, 2.0)] }).expect("encodes");
        let decoded = postcard::from_bytes::<Vector<f64>>(&duplicated).expect("decodes");
        assert_eq!((decoded.get(3), decoded.stored(), decoded.nonzero_weights()), (2.0, 1, 1));
    }

    #[test]
    fn a_mostly_used_dense_vector_is_stored_whole_when_that_is_shorter() {
        let mut vector = Vector::<f64>::dense(256);
        for index in 0..150 {
            vector.update(index * 3 % 256, |w| *w = index as f64 + 0.5);
        }
        let with_indices = postcard::to_allocvec(&vector).expect("encodes");
        assert!(!stored_whole_is_shorter::<f64>(256, vector.stored()) && with_indices.len() < 256 * 8, "{} bytes", with_indices.len());
        for index in 0..256 {
            vector.update(index, |w| *w += 1.0);
        }
        vector.update(7, |w| *w = 0.0);
        let whole = postcard::to_allocvec(&vector).expect("encodes");
        assert_eq!(whole.len(), 1 + 2 + 2 + 256 * 8, "variant, len, slot count, slots");
        let decoded = decode_into(&whole, Target::Block(Vector::dense(256))).expect("decodes");
        assert_eq!((decoded.stored(), decoded.nonzero_weights()), (255, 255));
        assert_eq!(decoded, vector);
        let short = postcard::to_allocvec(&StoredFullForm::Full { len: 256, slots: vec![1.0f64; 255] }).expect("encodes");
        assert!(decode_into(&short, Target::Block(Vector::<f64>::dense(256))).is_err(), "a slot missing");
        let long = postcard::to_allocvec(&StoredFullForm::Full { len: 256, slots: vec![1.0f64; 257] }).expect("encodes");
        assert!(decode_into(&long, Target::Block(Vector::<f64>::dense(256))).is_err(), "a slot too many");
    }

    #[test]
    fn a_full_sparse_vector_takes_no_new_slot_and_pruning_keeps_the_largest() {
        let mut vector = Vector::<f64>::sparse();
        assert!(vector.update_within(1, 2, |w| *w = 0.5) && vector.update_within(2, 2, |w| *w = -3.0));
        assert!(!vector.update_within(3, 2, |w| *w = 1.0), "full: a new index is not kept");
        assert!(vector.update_within(3, 2, |w| *w += 0.0), "a change to nothing needs no room");
        assert!(vector.update_within(1, 2, |w| *w = 4.0), "an index it holds still learns");
        assert_eq!((vector.get(1), vector.get(3), vector.stored()), (4.0, 0.0, 2));
        let mut dense = Vector::<f64>::dense(8);
        assert!(dense.update_within(3, 0, |w| *w = 1.0), "a dense vector has a slot for every index");
        vector.update(5, |w| *w = -4.0);
        vector.keep_largest(2);
        assert_eq!((vector.get(1), vector.get(2), vector.get(5), vector.stored(), vector.nonzero_weights()), (4.0, 0.0, -4.0, 2, 2));
    }
}
