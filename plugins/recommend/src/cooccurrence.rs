//! The item catalogue and its co-occurrence matrix: one capped row of partner counts per item.
//!
//! Each observed pair `(a, b)` adds one to cell `C[a, b]` of row `a` and to `C[b, a]` of row
//! `b`. Each item also keeps its row's marginal (every observation involving it), and the
//! matrix its grand total, exactly: a cell forgotten by a full row does not change them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One cell of an item's row: how often `partner` was seen with the item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cell {
    pub partner: u32,
    pub count: u32,
}

/// One tracked item: its id and its row of the matrix.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct ItemRow {
    /// The item id as canonical JSON text (what the output repeats).
    id: String,
    /// Co-occurrence observations involving the item: the row's sum, forgotten cells included.
    observations: u64,
    /// Cells in the order they entered the row; that order breaks ties when a full row
    /// forgets a cell, oldest first.
    partners: Vec<Cell>,
}

impl ItemRow {
    /// Adds one to the cell of `partner`; a full row first forgets its weakest cell.
    /// Returns how many cells were forgotten.
    fn increment(&mut self, partner: u32, row_cap: usize) -> u64 {
        self.observations = self.observations.saturating_add(1);
        if let Some(cell) = self.partners.iter_mut().find(|cell| cell.partner == partner) {
            cell.count = cell.count.saturating_add(1);
            return 0;
        }
        let mut forgotten = 0;
        // A loop rather than one removal: a restored state may come from a larger cap.
        while self.partners.len() >= row_cap.max(1) {
            // `min_by_key` returns the first of equal minima: the weakest cell that entered first.
            let weakest = self.partners.iter().enumerate().min_by_key(|(_, cell)| cell.count).map(|(position, _)| position);
            let Some(position) = weakest else { break };
            self.partners.remove(position);
            forgotten += 1;
        }
        self.partners.push(Cell { partner, count: 1 });
        forgotten
    }
}

/// Every tracked item, by index, with its row; indexes are stable because items are never removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cooccurrences {
    /// Canonical item id → index into `items`.
    index: BTreeMap<String, u32>,
    items: Vec<ItemRow>,
    /// Sum of all cells ever counted: each observed pair counts twice, once per row.
    total: u64,
}

impl Cooccurrences {
    /// The index of item `id`, if tracked.
    pub fn find(&self, id: &str) -> Option<u32> {
        self.index.get(id).copied()
    }

    /// The index of item `id`, tracking it if there is room for `max_items`; `None` when the
    /// catalogue is full and the item is new.
    pub fn find_or_add(&mut self, id: &str, max_items: u32) -> Option<u32> {
        if let Some(index) = self.find(id) {
            return Some(index);
        }
        let index = u32::try_from(self.items.len()).ok().filter(|index| *index < max_items)?;
        self.index.insert(id.to_owned(), index);
        self.items.push(ItemRow { id: id.to_owned(), ..ItemRow::default() });
        Some(index)
    }

    /// Counts one co-occurrence of items `a` and `b` (distinct) in both rows. Returns how
    /// many cells full rows forgot to make room.
    pub fn add_pair(&mut self, a: u32, b: u32, row_cap: usize) -> u64 {
        if a == b {
            return 0;
        }
        let mut forgotten = 0;
        for (row, partner) in [(a, b), (b, a)] {
            if let Some(item) = self.items.get_mut(row as usize) {
                forgotten += item.increment(partner, row_cap);
            }
        }
        self.total = self.total.saturating_add(2);
        forgotten
    }

    /// The canonical id of item `item` (empty if unknown).
    pub fn id(&self, item: u32) -> &str {
        self.items.get(item as usize).map_or("", |row| row.id.as_str())
    }

    /// Co-occurrence observations involving `item`: its row's sum.
    pub fn observations(&self, item: u32) -> u64 {
        self.items.get(item as usize).map_or(0, |row| row.observations)
    }

    /// The cells of `item`'s row, in the order they entered it.
    pub fn partners(&self, item: u32) -> &[Cell] {
        self.items.get(item as usize).map_or(&[], |row| row.partners.as_slice())
    }

    /// The count in cell `C[a, b]` (0 if not kept).
    pub fn count(&self, a: u32, b: u32) -> u32 {
        self.partners(a).iter().find(|cell| cell.partner == b).map_or(0, |cell| cell.count)
    }

    /// Sum of all cells ever counted (every pair twice).
    pub fn total(&self) -> u64 {
        self.total
    }

    /// How many items are tracked.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether no item is tracked.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The number of cells of the longest row.
    pub fn longest_row(&self) -> usize {
        self.items.iter().map(|row| row.partners.len()).max().unwrap_or(0)
    }
}
