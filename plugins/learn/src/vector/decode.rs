//! Decoding a stored vector slot by slot as the slots are read, into its [`Target`]: for the
//! global model, the dense block of the model being replaced, so that a restore needs that block
//! and the snapshot's bytes and builds nothing in proportion to the slots besides.

use std::fmt;

use serde::de::{DeserializeSeed, EnumAccess, Error as _, SeqAccess, VariantAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::{Slot, Vector};

/// The most slots of a dense vector (`hash_bits` 24): a longer stored one is not a state this plugin wrote.
const MAX_DENSE_LEN: u64 = 1 << 24;

/// Where a stored vector is decoded to.
pub enum Target<T> {
    /// A dense vector: into this dense block of its length, whose slots are all overwritten.
    /// Anything else is refused.
    Block(Vector<T>),
    /// A sparse vector; a dense one is refused.
    Sparse,
    /// Either; a dense one into a new block.
    Any,
}

/// Decodes a stored vector into its [`Target`], slot by slot as the slots are read.
pub struct VectorSeed<T> {
    pub target: Target<T>,
}

impl<'de, T: Slot> Deserialize<'de> for Vector<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        VectorSeed { target: Target::Any }.deserialize(deserializer)
    }
}

impl<'de, T: Slot> DeserializeSeed<'de> for VectorSeed<T> {
    type Value = Vector<T>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Vector<T>, D::Error> {
        deserializer.deserialize_enum("Vector", &["Dense", "Sparse", "Full"], self)
    }
}

/// The variants of the stored form, by index.
#[derive(Deserialize)]
#[serde(variant_identifier)]
enum StoredKind {
    Dense,
    Sparse,
    Full,
}

impl<'de, T: Slot> Visitor<'de> for VectorSeed<T> {
    type Value = Vector<T>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a weight vector")
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Vector<T>, A::Error> {
        match data.variant()? {
            (StoredKind::Dense, variant) => variant.struct_variant(&["len", "entries"], DenseVisitor { target: self.target, whole: false }),
            (StoredKind::Sparse, variant) => variant.struct_variant(&["entries"], SparseVisitor { target: self.target }),
            (StoredKind::Full, variant) => variant.struct_variant(&["len", "slots"], DenseVisitor { target: self.target, whole: true }),
        }
    }
}

/// A dense vector: its length, then its slots with their indices, or all of them (`whole`).
struct DenseVisitor<T> {
    target: Target<T>,
    whole: bool,
}

impl<'de, T: Slot> Visitor<'de> for DenseVisitor<T> {
    type Value = Vector<T>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a dense weight vector")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut sequence: A) -> Result<Vector<T>, A::Error> {
        let len: u64 = sequence.next_element()?.ok_or_else(|| A::Error::invalid_length(0, &self))?;
        let mut vector = match self.target {
            Target::Block(block) if block.dense_len().map(|block_len| block_len as u64) == Some(len) => block.cleared(),
            Target::Any if len <= MAX_DENSE_LEN => Vector::dense(len as usize),
            _ => return Err(A::Error::custom(format!("a dense weight vector of {len} slots where none of that length belongs"))),
        };
        let read = if self.whole {
            sequence.next_element_seed(SlotsSeed(&mut vector))?
        } else {
            sequence.next_element_seed(EntriesSeed(&mut vector))?
        };
        read.ok_or_else(|| A::Error::invalid_length(1, &"its slots"))?;
        Ok(vector)
    }
}

struct SparseVisitor<T> {
    target: Target<T>,
}

impl<'de, T: Slot> Visitor<'de> for SparseVisitor<T> {
    type Value = Vector<T>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a sparse weight vector")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut sequence: A) -> Result<Vector<T>, A::Error> {
        if matches!(self.target, Target::Block(_)) {
            return Err(A::Error::custom("a sparse weight vector where the dense one belongs"));
        }
        let mut vector = Vector::sparse();
        sequence.next_element_seed(EntriesSeed(&mut vector))?.ok_or_else(|| A::Error::invalid_length(0, &self))?;
        Ok(vector)
    }
}

/// Writes each stored `(index, slot)` into the vector as it is read.
struct EntriesSeed<'a, T>(&'a mut Vector<T>);

impl<'de, T: Slot> DeserializeSeed<'de> for EntriesSeed<'_, T> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, T: Slot> Visitor<'de> for EntriesSeed<'_, T> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a sequence of (index, slot)")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut sequence: A) -> Result<(), A::Error> {
        while let Some((index, slot)) = sequence.next_element::<(u32, T)>()? {
            if self.0.dense_len().is_some_and(|len| index as usize >= len) {
                return Err(A::Error::custom(format!("weight index {index} lies outside its vector")));
            }
            self.0.update(index, |stored| *stored = slot);
        }
        Ok(())
    }
}

/// Writes each slot of a dense vector stored whole into the vector as it is read.
struct SlotsSeed<'a, T>(&'a mut Vector<T>);

impl<'de, T: Slot> DeserializeSeed<'de> for SlotsSeed<'_, T> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, T: Slot> Visitor<'de> for SlotsSeed<'_, T> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("every slot of a dense vector")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut sequence: A) -> Result<(), A::Error> {
        let len = self.0.dense_len().unwrap_or(0);
        let mut index = 0;
        while let Some(slot) = sequence.next_element::<T>()? {
            if index >= len {
                return Err(A::Error::invalid_length(index + 1, &self));
            }
            self.0.update(index as u32, |stored| *stored = slot);
            index += 1;
        }
        if index == len { Ok(()) } else { Err(A::Error::invalid_length(index, &self)) }
    }
}
