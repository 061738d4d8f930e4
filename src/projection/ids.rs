//! The hot jobs' rows found by id: a hash table of row numbers, each with
//! the 32 bits of its id's hash that place it (eight bytes a slot, 16 to
//! 32 bytes an id since the table is at most half full; hashbrown's table
//! of row numbers alone, used before, took 6 to 11), the id read from the
//! row itself, as the interner keeps symbols and reads their names from
//! its buffer (`intern.rs`).
//!
//! Every entry's row holds the id it was inserted under, for as long as
//! the entry is there: an entry is removed before its row is freed
//! (`Projection::put_row` takes only freed rows), and its copy among the
//! recent ones with it.
//!
//! Open addressing with linear probing, at most half full, each slot
//! keeping the hash bits that place it: a lookup reads one slot (and the
//! row, to compare the id), or first the slot of the same hash bits among
//! the recent ones ([`IdIndex::recent`]); growing never reads a row; and
//! the slot an id will need can be fetched ahead ([`IdIndex::prefetch`])
//! while the events before it are applied. With hashbrown's table, which reads its control
//! bytes first and rehashes from the rows' ids, finding and indexing ids
//! took a seventh of a replay's applying thread. The extra bytes are
//! those of hot jobs only (a checkpoint moves the Completed ones into
//! cold runs, which have their own index).

use std::hash::BuildHasher;

use rustc_hash::FxBuildHasher;
use uuid::Uuid;

use super::Row;

#[derive(Debug, Clone, Default)]
pub(crate) struct IdIndex {
    /// A power-of-two number of slots (or none).
    slots: Vec<Slot>,
    len: usize,
    /// The row last inserted in each of [`RECENT`] buckets of its id's
    /// hash bits (made at the first insert): a job's transitions
    /// mostly come soon after its creation, and are found here, among
    /// rows still in the cache, instead of in a slot of a table that
    /// grows with the jobs (at 10M jobs, 256 MB read at random). An entry
    /// is a slot the table holds (or a free one): written by
    /// [`IdIndex::insert`], freed by [`IdIndex::remove`] of its row; a
    /// lookup reads the row, to compare the id, only when the hash bits
    /// are the same.
    recent: Vec<Slot>,
}

/// How many rows [`IdIndex`] keeps at hand (32 KiB of slots): in a log in
/// time order, a job's events span the creations of the next minute or
/// so (in the benchmark's workload, about 60 jobs).
const RECENT: usize = 4096;

/// The bucket of [`IdIndex::recent`] of hash bits `h`.
fn bucket(h: u32) -> usize {
    h as usize % RECENT
}

/// A row number with the 32 bits of its id's hash that choose its place
/// (in tables of up to 2^32 slots; a larger one, which 2^31 rows would
/// need, would still find every id, by longer probes). `row == EMPTY`: a
/// free slot.
#[derive(Debug, Clone, Copy)]
struct Slot {
    row: u32,
    hash: u32,
}

/// The row number of a free slot (no row has it: a state would need 2^32
/// rows, 448 GiB of them, for one to).
const EMPTY: u32 = u32::MAX;
const FREE: Slot = Slot { row: EMPTY, hash: 0 };

/// How many rows ahead [`IdIndex::build`] fetches the slot a row's probe
/// starts at.
const BUILD_AHEAD: usize = 16;

fn hash(id: &Uuid) -> u32 {
    FxBuildHasher.hash_one(id) as u32
}

impl IdIndex {
    /// The index of every row of `rows` not deleted; the first id found
    /// twice, if one is.
    pub(crate) fn build(rows: &[Row]) -> Result<Self, Uuid> {
        let mut ids = IdIndex::default();
        ids.grow_to(rows.iter().filter(|r| !r.deleted).count(), false);
        for (i, r) in (0u32..).zip(rows) {
            // The slot where the probe of a row [`BUILD_AHEAD`] rows on
            // starts, fetched while these are placed: the table is written
            // at random, and each slot would otherwise be waited for.
            if let Some(ahead) = rows.get(i as usize + BUILD_AHEAD) {
                ids.prefetch_home(hash(&ahead.id));
            }
            if !r.deleted && !ids.insert(r.id, i, rows) {
                return Err(r.id);
            }
        }
        Ok(ids)
    }

    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    /// The slot holding `id`'s row, or the free slot that ends its probe;
    /// `None` when there are no slots.
    fn probe(&self, id: Uuid, h: u32, rows: &[Row]) -> Option<usize> {
        let mask = self.slots.len().checked_sub(1)?;
        let mut i = h as usize & mask;
        loop {
            let s = self.slots[i];
            if s.row == EMPTY || (s.hash == h && rows[s.row as usize].id == id) {
                return Some(i);
            }
            i = (i + 1) & mask;
        }
    }

    /// The row of `id`, if it has one.
    pub(crate) fn get(&self, id: Uuid, rows: &[Row]) -> Option<u32> {
        let h = hash(&id);
        if let Some(r) = self.recent_row(id, h, rows) {
            return Some(r);
        }
        let i = self.probe(id, h, rows)?;
        Some(self.slots[i].row).filter(|&r| r != EMPTY)
    }

    /// `id`'s row, if it is among the [`IdIndex::recent`] ones.
    #[inline]
    fn recent_row(&self, id: Uuid, h: u32, rows: &[Row]) -> Option<u32> {
        let s = self.recent.get(bucket(h)).filter(|s| s.hash == h && s.row != EMPTY)?;
        rows.get(s.row as usize).filter(|row| row.id == id).map(|_| s.row)
    }

    /// Fetches into the cache the slot where a lookup of `id` starts
    /// (see [`crate::sys::prefetch`]), unless `id` is among the recent
    /// rows: called a few events ahead.
    pub(crate) fn prefetch(&self, id: Uuid, rows: &[Row]) {
        let h = hash(&id);
        if self.recent_row(id, h, rows).is_some() {
            return;
        }
        self.prefetch_home(h);
    }

    /// Fetches into the cache the slot where the probe of hash `h` starts.
    #[inline]
    fn prefetch_home(&self, h: u32) {
        if let Some(s) = self.slots.get(h as usize & self.mask()) {
            crate::sys::prefetch(s);
        }
    }

    /// The second step of [`IdIndex::prefetch`], nearer to the lookup:
    /// reads the slot (fetched by then) and, if it holds a row of `id`'s
    /// hash, fetches that row, which the lookup compares (a recent row is
    /// in the cache already).
    pub(crate) fn prefetch_row(&self, id: Uuid, rows: &[Row]) {
        let h = hash(&id);
        if self.recent_row(id, h, rows).is_some() {
            return;
        }
        if let Some(s) = self.slots.get(h as usize & self.mask()).filter(|s| s.row != EMPTY && s.hash == h) {
            if let Some(row) = rows.get(s.row as usize) {
                crate::sys::prefetch(row);
            }
        }
    }

    /// Records that row `row`, which holds `id`, is `id`'s; false (and
    /// nothing changed) if `id` has a row already.
    pub(crate) fn insert(&mut self, id: Uuid, row: u32, rows: &[Row]) -> bool {
        debug_assert_eq!(rows[row as usize].id, id, "the row holds the id it is indexed under");
        debug_assert_ne!(row, EMPTY, "no row has the number of a free slot");
        if (self.len + 1) * 2 > self.slots.len() {
            if self.get(id, rows).is_some() {
                return false;
            }
            self.grow_to(self.len + 1, false);
        }
        let h = hash(&id);
        let i = self.probe(id, h, rows).expect("a table with room has slots");
        if self.slots[i].row != EMPTY {
            return false;
        }
        self.slots[i] = Slot { row, hash: h };
        self.len += 1;
        if self.recent.is_empty() {
            self.recent = vec![FREE; RECENT];
        }
        self.recent[bucket(h)] = Slot { row, hash: h };
        true
    }

    /// Makes room for `more` ids beyond those it holds, at once, on 2 MiB
    /// pages (`sys::filled`): for a replay about to create that many jobs
    /// (`engine/open.rs`). A table that grows instead is made again and
    /// every slot moved each time its ids double; and it is read at
    /// random, where small pages cost a walk of the page tables nearly
    /// every lookup. Growth past the room is on 4 KiB pages, as any.
    pub(crate) fn reserve(&mut self, more: usize) {
        // No more than row numbers can name (`u32`).
        let n = self.len.saturating_add(more).min(EMPTY as usize);
        self.grow_to(n, true);
    }

    /// Makes room for `n` ids at most half full: the slots moved into a
    /// table of twice the size (or more), by their kept hash bits; on 2
    /// MiB pages if `huge`.
    fn grow_to(&mut self, n: usize, huge: bool) {
        let size = (n * 2).next_power_of_two().max(16);
        if size <= self.slots.len() {
            return;
        }
        let old = std::mem::replace(&mut self.slots, crate::sys::filled(size, FREE, huge));
        let mask = size - 1;
        for s in old.into_iter().filter(|s| s.row != EMPTY) {
            let mut i = s.hash as usize & mask;
            while self.slots[i].row != EMPTY {
                i = (i + 1) & mask;
            }
            self.slots[i] = s;
        }
    }

    /// Forgets `id`'s row (still holding `id`); its row number, if it had one.
    pub(crate) fn remove(&mut self, id: Uuid, rows: &[Row]) -> Option<u32> {
        let h = hash(&id);
        let mut hole = self.probe(id, h, rows)?;
        let row = self.slots[hole].row;
        if row == EMPTY {
            return None;
        }
        if let Some(s) = self.recent.get_mut(bucket(h)).filter(|s| s.row == row) {
            *s = FREE;
        }
        // Backward shift: each later slot of the run that may sit in the
        // hole (its home is not between the hole and itself) moves there,
        // so that no probe meets a free slot before its id.
        let mask = self.mask();
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let s = self.slots[j];
            if s.row == EMPTY {
                break;
            }
            let home = s.hash as usize & mask;
            if j.wrapping_sub(home) & mask >= j.wrapping_sub(hole) & mask {
                self.slots[hole] = s;
                hole = j;
            }
        }
        self.slots[hole] = FREE;
        self.len -= 1;
        Some(row)
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        (self.slots.capacity() + self.recent.capacity()) * std::mem::size_of::<Slot>()
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

    /// Room reserved ahead (a replay's, on 2 MiB pages when the table is
    /// large enough to ask) holds that many more ids without the table
    /// being made again, keeps the ids it held, and never shrinks it.
    #[test]
    fn reserved_room_holds_the_ids_without_growing() {
        let ids: Vec<Uuid> = (1..=300_000u128).map(|n| Uuid::from_u128(n * 0x9e37_79b9_7f4a_7c15)).collect();
        let mut rows: Vec<Row> = Vec::new();
        let mut index = IdIndex::default();
        for (i, &id) in (0u32..).zip(&ids[..1000]) {
            rows.push(row(id, false));
            assert!(index.insert(id, i, &rows));
        }
        index.reserve(ids.len() - 1000);
        let slots = index.slots.len();
        assert!(
            slots * std::mem::size_of::<Slot>() >= 8 << 20,
            "large enough for `sys::filled` to ask for 2 MiB pages"
        );
        for (i, &id) in (0u32..).zip(&ids[..1000]) {
            assert_eq!(index.get(id, &rows), Some(i), "the ids held before are kept");
        }
        for (i, &id) in (1000u32..).zip(&ids[1000..]) {
            rows.push(row(id, false));
            assert!(index.insert(id, i, &rows));
        }
        assert_eq!(index.slots.len(), slots, "no growth within the room reserved");
        assert_eq!(index.len(), ids.len());
        assert_eq!(index.get(ids[123_456], &rows), Some(123_456));
        index.reserve(10);
        assert_eq!(index.slots.len(), slots, "a smaller reserve changes nothing");
    }

    /// Random inserts, lookups and removals (with rows reused) agree with
    /// a map, through growths and runs of colliding slots.
    #[test]
    fn agrees_with_a_map_under_random_changes() {
        let mut rng = fastrand::Rng::with_seed(16);
        let mut rows: Vec<Row> = Vec::new();
        let mut index = IdIndex::default();
        let mut model = std::collections::HashMap::new();
        let mut free: Vec<u32> = Vec::new();
        // Few distinct ids, so that removals and repeats are common.
        let id = |rng: &mut fastrand::Rng| Uuid::from_u128(rng.u128(..3000) * 0x9e37_79b9);
        for _ in 0..200_000 {
            let x = id(&mut rng);
            match rng.u8(..3) {
                0 => {
                    let i = match free.pop() {
                        Some(i) => {
                            rows[i as usize] = row(x, false);
                            i
                        }
                        None => {
                            rows.push(row(x, false));
                            (rows.len() - 1) as u32
                        }
                    };
                    let fresh = !model.contains_key(&x);
                    assert_eq!(index.insert(x, i, &rows), fresh);
                    if fresh {
                        model.insert(x, i);
                    } else {
                        rows[i as usize].deleted = true;
                        free.push(i);
                    }
                }
                1 => {
                    let removed = index.remove(x, &rows);
                    assert_eq!(removed, model.remove(&x));
                    if let Some(i) = removed {
                        rows[i as usize].deleted = true;
                        free.push(i);
                    }
                }
                _ => assert_eq!(index.get(x, &rows), model.get(&x).copied()),
            }
            assert_eq!(index.len(), model.len());
        }
        for (&x, &i) in &model {
            assert_eq!(index.get(x, &rows), Some(i));
        }
    }
}
