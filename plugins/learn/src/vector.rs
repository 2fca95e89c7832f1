//! The weights of a model over the hashed feature space: dense (one slot per index, for the
//! global model) or sparse (only the indices seen, for per-key models). Either is stored in a
//! snapshot as its non-zero slots only, so a mostly empty 2^20 space costs little to checkpoint.
//!
//! A dense vector is decoded sparsely, then moved into the dense block of the fresh model it
//! replaces ([`Vector::into_dense`]): allocating a second block beside the first would need
//! twice the memory, and Wasm memory never shrinks.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::optimizer::FtrlCoordinate;

/// What one index of the space holds: a weight (SGD) or a weight with its accumulators (FTRL).
pub trait Slot: Copy + Default + PartialEq + Serialize + DeserializeOwned {
    fn weight(&self) -> f64;
}

impl Slot for f64 {
    fn weight(&self) -> f64 {
        *self
    }
}

impl Slot for FtrlCoordinate {
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
    /// A dense vector of `len` slots as decoded, until it moves into a dense block.
    Restored {
        len: usize,
        slots: BTreeMap<u32, T>,
    },
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
            Storage::Sparse(slots) | Storage::Restored { slots, .. } => slots.get(&index).copied().unwrap_or_default(),
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
            Storage::Sparse(slots) | Storage::Restored { slots, .. } => {
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

    /// How many weights are not 0.
    pub fn nonzero_weights(&self) -> usize {
        self.nonzero_weights
    }

    /// The number of slots of a dense vector (or of a restored one); `None` for a sparse one.
    pub fn dense_len(&self) -> Option<usize> {
        match &self.storage {
            Storage::Dense(slots) => Some(slots.len()),
            Storage::Restored { len, .. } => Some(*len),
            Storage::Sparse(_) => None,
        }
    }

    /// A restored dense vector moved into `block`, a dense vector of its length (whose slots are
    /// all overwritten); any other vector is returned as it is.
    pub fn into_dense(self, mut block: Vector<T>) -> Vector<T> {
        let Storage::Restored { len, slots } = self.storage else { return self };
        if block.dense_len() != Some(len) || matches!(block.storage, Storage::Restored { .. }) {
            return Vector { storage: Storage::Restored { len, slots }, ..self };
        }
        if let Storage::Dense(block_slots) = &mut block.storage
            && block.stored > 0
        {
            block_slots.fill(T::default());
        }
        block.stored = 0;
        block.nonzero_weights = 0;
        for (index, slot) in slots {
            block.update(index, |stored| *stored = slot);
        }
        block
    }

    /// The largest index stored, to check a restored vector against the space.
    pub fn largest_index(&self) -> Option<u32> {
        self.entries().map(|(index, _)| index).last()
    }

    /// The slots that are not the default, by index.
    fn entries(&self) -> Box<dyn Iterator<Item = (u32, T)> + '_> {
        match &self.storage {
            Storage::Dense(slots) => {
                Box::new(slots.iter().enumerate().filter(|(_, slot)| **slot != T::default()).map(|(index, slot)| (index as u32, *slot)))
            }
            Storage::Sparse(slots) | Storage::Restored { slots, .. } => Box::new(slots.iter().map(|(index, slot)| (*index, *slot))),
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
    Dense { len: u64, entries: Entries<'a, T> },
    Sparse { entries: Entries<'a, T> },
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
#[serde(rename = "Vector")]
enum Stored<T> {
    Dense { len: u64, entries: Vec<(u32, T)> },
    Sparse { entries: Vec<(u32, T)> },
}

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
        match self.dense_len() {
            Some(len) => StoredRef::Dense { len: len as u64, entries: Entries(self) }.serialize(serializer),
            None => StoredRef::Sparse { entries: Entries(self) }.serialize(serializer),
        }
    }
}

impl<'de, T: Slot> Deserialize<'de> for Vector<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (mut vector, entries) = match Stored::<T>::deserialize(deserializer)? {
            Stored::Dense { len, entries } => {
                // The space is at most 2^24 slots; a larger length is not a state this plugin wrote.
                if len > 1 << 24 {
                    return Err(serde::de::Error::custom(format!(
                        "a dense weight vector of {len} slots is larger than any hash_bits allows"
                    )));
                }
                (
                    Vector { storage: Storage::Restored { len: len as usize, slots: BTreeMap::new() }, stored: 0, nonzero_weights: 0 },
                    entries,
                )
            }
            Stored::Sparse { entries } => (Vector::sparse(), entries),
        };
        for (index, slot) in entries {
            if vector.dense_len().is_some_and(|len| index as usize >= len) {
                return Err(serde::de::Error::custom(format!("weight index {index} lies outside its vector")));
            }
            vector.update(index, |stored| *stored = slot);
        }
        Ok(vector)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            assert_eq!(decoded.into_dense(Vector::dense(16)), vector, "a sparse vector stays sparse");
        }
    }

    #[test]
    fn an_ftrl_slot_with_accumulators_but_no_weight_is_stored_but_not_counted() {
        let mut vector = Vector::<FtrlCoordinate>::sparse();
        vector.update(1, |slot| *slot = FtrlCoordinate { weight: 0.0, z: 0.5, n: 1.0 });
        assert_eq!((vector.nonzero_weights(), vector.stored), (0, 1));
    }

    #[test]
    fn a_decoded_dense_vector_moves_into_a_dense_block() {
        let mut vector = Vector::<f64>::dense(64);
        vector.update(5, |w| *w = 1.0);
        vector.update(60, |w| *w = -3.0);
        let decoded: Vector<f64> = postcard::from_bytes(&postcard::to_allocvec(&vector).expect("encodes")).expect("decodes");
        assert_eq!((decoded.get(60), decoded.dense_len(), decoded.nonzero_weights()), (-3.0, Some(64), 2), "usable before the move");
        let mut used = Vector::<f64>::dense(64);
        used.update(7, |w| *w = 9.0);
        assert_eq!(decoded.clone().into_dense(used), vector);
        assert!(matches!(decoded.clone().into_dense(Vector::dense(32)).storage, Storage::Restored { .. }), "a block of another length");
    }

    #[test]
    fn a_dense_snapshot_holds_only_the_nonzero_slots() {
        let mut vector = Vector::<f64>::dense(1 << 20);
        vector.update(5, |w| *w = 1.0);
        let bytes = postcard::to_allocvec(&vector).expect("encodes");
        assert!(bytes.len() < 32, "{} bytes", bytes.len());
        let corrupt = postcard::to_allocvec(&Stored::Dense { len: 4, entries: vec![(7u32, 1.0f64)] }).expect("encodes");
        assert!(postcard::from_bytes::<Vector<f64>>(&corrupt).is_err());
    }
}
