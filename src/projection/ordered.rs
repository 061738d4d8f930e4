//! A compact ordered set of row numbers: sorted chunks of `u32`, ordered by
//! a key that the caller computes from the row (so an index entry costs four
//! bytes, not a copy of its key). Appends at the newest end, the common
//! case, touch only the last chunk.
//!
//! Each chunk also has a bound: no key in it is above its bound, and every
//! key in it is above the previous chunk's bound. Finding a key's chunk
//! reads the bounds only (one small array), not a row of each chunk looked
//! at: in a large set those rows are far apart in memory. A bound is a key
//! that was in the chunk; removing rows leaves it in place, still a bound.
//!
//! A set whose inserts land anywhere (the jobs by regarding row: a new job
//! regards any row) keeps the leading part of each key beside its row (a
//! [`Tagged`] entry, eight bytes): a search inside a chunk compares those
//! and reads a row only among entries of the same regarding row, instead
//! of one row, far away in memory, per step of the binary search.

/// Chunks split when they reach twice this size, and merge with a
/// neighbour when they fall below a quarter of it.
const CHUNK: usize = 512;

/// What a set holds for each row.
pub(crate) trait Entry: Copy + PartialEq {
    /// Whether entries carry a tag (else [`Entry::tag`] means nothing).
    const TAGGED: bool;
    /// Row `row`'s entry, its key's tag being `tag`.
    fn new(tag: u32, row: u32) -> Self;
    /// The row.
    fn row(self) -> u32;
    /// The leading part of the row's key ([`Key::tag`]), when `TAGGED`.
    fn tag(self) -> u32;
}

impl Entry for u32 {
    const TAGGED: bool = false;
    fn new(_: u32, row: u32) -> Self {
        row
    }
    fn row(self) -> u32 {
        self
    }
    fn tag(self) -> u32 {
        0
    }
}

/// A row with its key's leading part: the tag in the high half.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tagged(u64);

impl Entry for Tagged {
    const TAGGED: bool = true;
    fn new(tag: u32, row: u32) -> Self {
        Tagged(u64::from(tag) << 32 | u64::from(row))
    }
    fn row(self) -> u32 {
        self.0 as u32
    }
    fn tag(self) -> u32 {
        (self.0 >> 32) as u32
    }
}

/// A set's key. Keys of a set of [`Tagged`] entries start with the tag:
/// `a < b` implies `a.tag() <= b.tag()`.
pub(crate) trait Key: Ord + Copy {
    /// The key's leading part (only sets of [`Tagged`] entries read it).
    fn tag(&self) -> u32;
}

impl Key for (i64, uuid::Uuid) {
    fn tag(&self) -> u32 {
        0
    }
}

impl<T: Ord + Copy> Key for (u32, T) {
    fn tag(&self) -> u32 {
        self.0
    }
}

/// An [`OrderedRows`] being built from entries pushed in key order
/// (distinct keys): filled chunk by chunk in place, no list of them made
/// first and copied.
#[derive(Debug)]
pub(crate) struct SortedRows<E = u32> {
    chunks: Vec<Vec<E>>,
    len: usize,
}

impl<E> Default for SortedRows<E> {
    fn default() -> Self {
        Self { chunks: Vec::new(), len: 0 }
    }
}

impl<E: Entry> SortedRows<E> {
    /// Adds `e`, whose key is above every key pushed before.
    #[inline]
    pub(crate) fn push(&mut self, e: E) {
        match self.chunks.last_mut() {
            Some(c) if c.len() < CHUNK => c.push(e),
            // The first chunk grows as a vector does (most sets are small),
            // the next ones are made whole.
            last => {
                let mut c = Vec::with_capacity(if last.is_some() { CHUNK } else { 0 });
                c.push(e);
                self.chunks.push(c);
            }
        }
        self.len += 1;
    }

    /// `len` entries, each `e`, in the chunks [`SortedRows::push`] would
    /// have filled: a set whose entries are then put in place by position
    /// ([`SortedRows::set`]), as a counting sort places them, with no list
    /// of them made first and copied.
    pub(crate) fn filled(len: usize, e: E) -> Self {
        let chunks = (0..len).step_by(CHUNK).map(|start| vec![e; CHUNK.min(len - start)]).collect();
        Self { chunks, len }
    }

    /// Puts `e` at position `pos` (below the set's length).
    #[inline]
    pub(crate) fn set(&mut self, pos: usize, e: E) {
        self.chunks[pos / CHUNK][pos % CHUNK] = e;
    }

    /// The set: chunks of `CHUNK` entries (the last may be shorter), or one
    /// chunk when there are fewer than `2 * CHUNK` in all.
    pub(crate) fn build<K: Key>(mut self, key: impl Fn(u32) -> K) -> OrderedRows<K, E> {
        if self.len < 2 * CHUNK && self.chunks.len() == 2 {
            let second = self.chunks.pop().expect("two chunks");
            self.chunks[0].extend(second);
        }
        let bounds = self.chunks.iter().map(|c| key(c.last().expect("chunks are never empty").row())).collect();
        OrderedRows { chunks: self.chunks, bounds, len: self.len }
    }
}

/// `K`: the key; most sets are ordered by (`createdon`, id). `E`: what
/// each chunk holds per row.
#[derive(Debug, Clone)]
pub(crate) struct OrderedRows<K = (i64, uuid::Uuid), E = u32> {
    chunks: Vec<Vec<E>>,
    /// Each chunk's bound, in step with `chunks`.
    bounds: Vec<K>,
    len: usize,
}

impl<K, E> Default for OrderedRows<K, E> {
    fn default() -> Self {
        Self { chunks: Vec::new(), bounds: Vec::new(), len: 0 }
    }
}

impl<K: Key, E: Entry> OrderedRows<K, E> {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The chunk that holds (or would hold) key `k` (the number of chunks
    /// when `k` is above every bound).
    fn chunk_for(&self, k: &K) -> usize {
        self.bounds.partition_point(|b| b < k)
    }

    /// Where `k` is (or would be) in chunk `c`.
    fn place_in(c: &[E], k: &K, key: &impl Fn(u32) -> K) -> usize {
        if !E::TAGGED {
            return c.partition_point(|&e| key(e.row()) < *k);
        }
        // The entries of `k`'s tag, found by their tags alone. Among them
        // keys mostly come in order (a new job is the newest regarding its
        // row, about 20 at 10M jobs in the benchmark's workload): the last
        // is tried first, one row read instead of a search's.
        let tag = k.tag();
        let lo = c.partition_point(|&e| e.tag() < tag);
        let hi = lo + c[lo..].partition_point(|&e| e.tag() == tag);
        if hi == lo || key(c[hi - 1].row()) < *k {
            return hi;
        }
        lo + c[lo..hi - 1].partition_point(|&e| key(e.row()) < *k)
    }

    /// The set of `rows`, already in key order (distinct keys), built
    /// whole: chunks of `CHUNK` rows. Tagged entries come with their tags
    /// (their keys' tags).
    pub(crate) fn from_sorted(rows: impl IntoIterator<Item = E>, key: impl Fn(u32) -> K) -> Self {
        let mut sorted = SortedRows::default();
        rows.into_iter().for_each(|e| sorted.push(e));
        sorted.build(key)
    }

    /// Inserts `row`. Keys must be distinct and must not change while the
    /// row is in the set.
    pub(crate) fn insert(&mut self, row: u32, key: impl Fn(u32) -> K) {
        let k = key(row);
        let e = E::new(k.tag(), row);
        self.len += 1;
        // The common case: a key above every other (new jobs are the newest).
        let ci = match self.bounds.last() {
            None => {
                self.chunks.push(vec![e]);
                self.bounds.push(k);
                return;
            }
            Some(last) if *last < k => {
                let ci = self.chunks.len() - 1;
                self.chunks[ci].push(e);
                self.bounds[ci] = k;
                ci
            }
            Some(_) => {
                let ci = self.chunk_for(&k);
                let chunk = &mut self.chunks[ci];
                let pos = Self::place_in(chunk, &k, &key);
                debug_assert!(chunk.get(pos).is_none_or(|&r| key(r.row()) != k), "duplicate key");
                chunk.insert(pos, e);
                ci
            }
        };
        let chunk = &mut self.chunks[ci];
        if chunk.len() >= 2 * CHUNK {
            let tail = chunk.split_off(CHUNK);
            let head_bound = key(chunk.last().expect("CHUNK rows").row());
            self.chunks.insert(ci + 1, tail);
            self.bounds.insert(ci, head_bound);
        }
    }

    /// Removes `row` (found by its key); false if it was not there.
    pub(crate) fn remove(&mut self, row: u32, key: impl Fn(u32) -> K) -> bool {
        let k = key(row);
        let e = E::new(k.tag(), row);
        let ci = self.chunk_for(&k);
        let Some(chunk) = self.chunks.get_mut(ci) else { return false };
        let pos = Self::place_in(chunk, &k, &key);
        if chunk.get(pos) != Some(&e) {
            return false;
        }
        chunk.remove(pos);
        self.len -= 1;
        if chunk.is_empty() {
            self.chunks.remove(ci);
            self.bounds.remove(ci);
        } else if chunk.len() < CHUNK / 4 && ci + 1 < self.chunks.len() && self.chunks[ci + 1].len() < CHUNK {
            let next = self.chunks.remove(ci + 1);
            self.chunks[ci].extend(next);
            self.bounds.remove(ci);
        }
        true
    }

    /// Rows from the greatest key down, starting below `below` if given.
    pub(crate) fn iter_desc<'a>(
        &'a self,
        below: Option<K>,
        key: impl Fn(u32) -> K + 'a,
    ) -> impl Iterator<Item = u32> + 'a {
        let (ci, pos) = match &below {
            None => (self.chunks.len(), 0),
            Some(b) => {
                let ci = self.chunk_for(b);
                match self.chunks.get(ci) {
                    Some(c) => (ci, Self::place_in(c, b, &key)),
                    None => (self.chunks.len(), 0),
                }
            }
        };
        // Everything before (ci, pos), backwards.
        let head = self.chunks.get(ci).map_or(&[][..], |c| &c[..pos]);
        head.iter().rev().chain(self.chunks[..ci].iter().rev().flat_map(|c| c.iter().rev())).map(|e| e.row())
    }

    /// How many rows have a key below `bound`.
    pub(crate) fn count_below(&self, bound: &K, key: impl Fn(u32) -> K) -> usize {
        let ci = self.chunk_for(bound);
        let whole: usize = self.chunks[..ci].iter().map(Vec::len).sum();
        whole + self.chunks.get(ci).map_or(0, |c| Self::place_in(c, bound, &key))
    }

    /// Rows from the smallest key up.
    pub(crate) fn iter_asc(&self) -> impl Iterator<Item = u32> + '_ {
        self.chunks.iter().flatten().map(|e| e.row())
    }

    /// Keeps only the rows `keep` accepts, in one pass and in place
    /// (bulk deletion); neighbouring chunks that fit in one are merged
    /// (under the later one's bound). Reads no key.
    pub(crate) fn retain(&mut self, keep: impl Fn(u32) -> bool) {
        let mut chunks: Vec<Vec<E>> = Vec::with_capacity(self.chunks.len());
        let mut bounds: Vec<K> = Vec::with_capacity(self.chunks.len());
        for (mut c, bound) in std::mem::take(&mut self.chunks).into_iter().zip(std::mem::take(&mut self.bounds)) {
            c.retain(|&e| keep(e.row()));
            match (chunks.last_mut(), bounds.last_mut()) {
                _ if c.is_empty() => {}
                (Some(last), Some(last_bound)) if last.len() + c.len() <= CHUNK => {
                    last.extend(c);
                    *last_bound = bound;
                }
                _ => {
                    chunks.push(c);
                    bounds.push(bound);
                }
            }
        }
        self.len = chunks.iter().map(Vec::len).sum();
        (self.chunks, self.bounds) = (chunks, bounds);
    }

    /// Heap bytes held (for the memory figures).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.chunks.capacity() * std::mem::size_of::<Vec<E>>()
            + self.bounds.capacity() * std::mem::size_of::<K>()
            + self.chunks.iter().map(|c| c.capacity() * std::mem::size_of::<E>()).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// Against a BTreeSet: a set built whole from sorted rows (none, or up
    /// to a few chunks), random inserts and removes with a bulk deletion
    /// between them, then every descending iteration from every cursor.
    /// The key of a row is (a scrambled copy of it modulo `spread`, the
    /// row), so order differs from row order; `entry` makes a row's entry
    /// from its key's leading part and the row.
    fn behaves_like_a_sorted_set<E: Entry + std::fmt::Debug>(
        entry: fn(u32, u32) -> E,
        spread: u32,
        start: BTreeSet<u32>,
        ops: Vec<(bool, u32)>,
        gone: u32,
    ) -> Result<(), TestCaseError> {
        let key = |r: u32| (r.wrapping_mul(2_654_435_761) % spread, r);
        let of = |r: u32| entry(key(r).0, r);
        let mut model: BTreeSet<(u32, u32)> = start.iter().map(|&r| key(r)).collect();
        let mut set = OrderedRows::from_sorted(model.iter().map(|k| of(k.1)), key);
        prop_assert_eq!(set.len(), model.len());
        // Half the operations, a deletion of every row whose number
        // `gone` divides (no key read), then the other half.
        let half = ops.len() / 2;
        for (n, (insert, row)) in ops.into_iter().enumerate() {
            if n == half {
                set.retain(|r| r % gone != 0);
                model.retain(|k| k.1 % gone != 0);
            }
            if insert {
                if model.insert(key(row)) {
                    set.insert(row, key);
                }
            } else {
                prop_assert_eq!(set.remove(row, key), model.remove(&key(row)));
            }
            prop_assert_eq!(set.len(), model.len());
        }
        let all: Vec<u32> = set.iter_desc(None, key).collect();
        let want: Vec<u32> = model.iter().rev().map(|k| k.1).collect();
        prop_assert_eq!(&all, &want);
        prop_assert_eq!(set.iter_asc().collect::<Vec<_>>(), want.iter().rev().copied().collect::<Vec<_>>());
        for (i, &r) in want.iter().enumerate().step_by(97) {
            let from: Vec<u32> = set.iter_desc(Some(key(r)), key).collect();
            prop_assert_eq!(&from[..], &want[i + 1..]);
        }
        // Cursors at every leading part, mostly no key of the set.
        for lead in (0..=spread).step_by((spread as usize / 20).max(1)) {
            for cursor in [(lead, 0), (lead, u32::MAX)] {
                let from: Vec<u32> = set.iter_desc(Some(cursor), key).collect();
                let below: Vec<u32> = model.range(..cursor).rev().map(|k| k.1).collect();
                prop_assert_eq!(from, below);
            }
        }
        for bound in [(0, 0), (spread / 2, 0), (spread, 0), key(7)] {
            prop_assert_eq!(set.count_below(&bound, key), model.range(..bound).count());
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn a_set_of_rows_behaves_like_a_sorted_set(
            start in proptest::collection::btree_set(0u32..3000, 0..1500),
            ops in proptest::collection::vec((any::<bool>(), 0u32..3000), 0..4000),
            gone in 1u32..5,
        ) {
            behaves_like_a_sorted_set(|_, r| r, 10_007, start, ops, gone)?;
        }

        /// Few distinct tags: most searches end among entries of one tag.
        #[test]
        fn a_set_of_tagged_rows_behaves_like_a_sorted_set(
            start in proptest::collection::btree_set(0u32..3000, 0..1500),
            ops in proptest::collection::vec((any::<bool>(), 0u32..3000), 0..4000),
            gone in 1u32..5,
            spread in 1u32..40,
        ) {
            behaves_like_a_sorted_set(Tagged::new, spread, start, ops, gone)?;
        }
    }
}
