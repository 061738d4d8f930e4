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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Status;

    fn row(id: Uuid, deleted: bool) -> Row {
        Row {
            id,
            createdon: 0,
            startedon: 0,
            completedon: 0,
            modifiedon: 0,
            postponeuntil: 0,
            operationtype: 0,
            owner: 0,
            owningbusinessunit: 0,
            workflow: 0,
            regarding: 0,
            dependencytoken: 0,
            retrycount: 0,
            errorcode: 0,
            executiontimespan_ms: 0,
            last_event: 0,
            first_event: 0,
            message_event: 0,
            status: Status::READY,
            deleted,
        }
    }

    /// Inserts through many growths, removals, a row reused for another id
    /// after its entry went, and a rebuild that skips deleted rows and
    /// refuses an id twice.
    #[test]
    fn rows_are_found_by_the_ids_they_hold() {
        let ids: Vec<Uuid> = (0..10_000u128).map(|n| Uuid::from_u128(n * 0x9e37_79b9_7f4a_7c15)).collect();
        let mut rows: Vec<Row> = Vec::new();
        let mut index = IdIndex::default();
        for (i, &id) in (0u32..).zip(&ids) {
            rows.push(row(id, false));
            assert!(index.insert(id, i, &rows));
        }
        assert!(!index.insert(ids[7], 7, &rows), "an id has one row");
        assert_eq!(index.len(), ids.len());
        for (i, &id) in (0u32..).zip(&ids) {
            assert_eq!(index.get(id, &rows), Some(i));
        }
        assert_eq!(index.get(Uuid::from_u128(1), &rows), None);
        // Every other job deleted; row 0 then reused for a new job.
        for (i, &id) in (0u32..).zip(&ids).step_by(2) {
            assert_eq!(index.remove(id, &rows), Some(i));
            rows[i as usize].deleted = true;
        }
        assert_eq!(index.remove(ids[0], &rows), None);
        let new = Uuid::from_u128(u128::MAX);
        rows[0] = row(new, false);
        assert!(index.insert(new, 0, &rows));
        assert_eq!(index.get(new, &rows), Some(0));
        assert_eq!(index.get(ids[2], &rows), None);
        assert_eq!(index.get(ids[3], &rows), Some(3));

        let rebuilt = IdIndex::build(&rows).unwrap();
        assert_eq!(rebuilt.len(), index.len());
        assert_eq!(rebuilt.get(ids[3], &rows), Some(3));
        assert_eq!(rebuilt.get(ids[2], &rows), None, "deleted rows are not indexed");
        rows.push(row(ids[3], false));
        assert_eq!(IdIndex::build(&rows).unwrap_err(), ids[3]);
    }
}
