//! The hot jobs' rows found by id: a hash table of row numbers alone (four
//! bytes an entry, where a map of id to row took twenty), the id read from
//! the row itself, as the interner keeps symbols and reads their names
//! from its buffer (`intern.rs`).
//!
//! Every entry's row holds the id it was inserted under, for as long as
//! the entry is there: an entry is removed before its row is reused
//! (`Projection::put_row` takes only freed rows), and the table reads
//! those ids again whenever it grows.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;
use uuid::Uuid;

use super::Row;

#[derive(Debug, Clone, Default)]
pub(crate) struct IdIndex {
    table: HashTable<u32>,
}

fn hash(id: &Uuid) -> u64 {
    FxBuildHasher.hash_one(id)
}

impl IdIndex {
    /// The index of every row of `rows` not deleted; the first id found
    /// twice, if one is.
    pub(crate) fn build(rows: &[Row]) -> Result<Self, Uuid> {
        let mut ids = IdIndex { table: HashTable::with_capacity(rows.len()) };
        for (i, r) in (0u32..).zip(rows).filter(|(_, r)| !r.deleted) {
            if !ids.insert(r.id, i, rows) {
                return Err(r.id);
            }
        }
        Ok(ids)
    }

    /// The row of `id`, if it has one.
    pub(crate) fn get(&self, id: Uuid, rows: &[Row]) -> Option<u32> {
        self.table.find(hash(&id), |&i| rows[i as usize].id == id).copied()
    }

    /// Records that row `row`, which holds `id`, is `id`'s; false (and
    /// nothing changed) if `id` has a row already.
    pub(crate) fn insert(&mut self, id: Uuid, row: u32, rows: &[Row]) -> bool {
        debug_assert_eq!(rows[row as usize].id, id, "the row holds the id it is indexed under");
        let h = hash(&id);
        if self.table.find(h, |&i| rows[i as usize].id == id).is_some() {
            return false;
        }
        self.table.insert_unique(h, row, |&i| hash(&rows[i as usize].id));
        true
    }

    /// Forgets `id`'s row (still holding `id`); its row number, if it had one.
    pub(crate) fn remove(&mut self, id: Uuid, rows: &[Row]) -> Option<u32> {
        self.table.find_entry(hash(&id), |&i| rows[i as usize].id == id).ok().map(|e| e.remove().0)
    }

    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.table.capacity() * (std::mem::size_of::<u32>() + 1)
    }
}
