//! A compact ordered set of row numbers: sorted chunks of `u32`, ordered by
//! a key that the caller computes from the row (so an index entry costs four
//! bytes, not a copy of its key). Appends at the newest end, the common
//! case, touch only the last chunk.

/// Chunks split when they reach twice this size, and merge with a
/// neighbour when they fall below a quarter of it.
const CHUNK: usize = 512;

#[derive(Debug, Clone, Default)]
pub(crate) struct OrderedRows {
    chunks: Vec<Vec<u32>>,
    len: usize,
}

impl OrderedRows {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The chunk that holds (or would hold) key `k`.
    fn chunk_for<K: Ord>(&self, k: &K, key: &impl Fn(u32) -> K) -> usize {
        self.chunks.partition_point(|c| key(*c.last().expect("chunks are never empty")) < *k)
    }

    /// The set of `rows`, already in key order (distinct keys), built
    /// whole: chunks of `CHUNK` rows.
    pub(crate) fn from_sorted(rows: Vec<u32>) -> Self {
        let len = rows.len();
        let chunks = if len < 2 * CHUNK {
            if rows.is_empty() {
                vec![]
            } else {
                vec![rows]
            }
        } else {
            rows.chunks(CHUNK).map(<[u32]>::to_vec).collect()
        };
        OrderedRows { chunks, len }
    }

    /// Inserts `row`. Keys must be distinct and must not change while the
    /// row is in the set.
    pub(crate) fn insert<K: Ord>(&mut self, row: u32, key: impl Fn(u32) -> K) {
        let k = key(row);
        if self.chunks.is_empty() {
            self.chunks.push(vec![row]);
            self.len = 1;
            return;
        }
        // The common case: a key above every other (new jobs are the newest).
        let last = self.chunks.last_mut().expect("not empty");
        if key(*last.last().expect("chunks are never empty")) < k {
            last.push(row);
            if last.len() >= 2 * CHUNK {
                let tail = last.split_off(CHUNK);
                self.chunks.push(tail);
            }
            self.len += 1;
            return;
        }
        let ci = self.chunk_for(&k, &key).min(self.chunks.len() - 1);
        let chunk = &mut self.chunks[ci];
        let pos = chunk.partition_point(|&r| key(r) < k);
        debug_assert!(chunk.get(pos).is_none_or(|&r| key(r) != k), "duplicate key");
        chunk.insert(pos, row);
        if chunk.len() >= 2 * CHUNK {
            let tail = chunk.split_off(CHUNK);
            self.chunks.insert(ci + 1, tail);
        }
        self.len += 1;
    }

    /// Removes `row` (found by its key); false if it was not there.
    pub(crate) fn remove<K: Ord>(&mut self, row: u32, key: impl Fn(u32) -> K) -> bool {
        let k = key(row);
        let ci = self.chunk_for(&k, &key);
        let Some(chunk) = self.chunks.get_mut(ci) else { return false };
        let pos = chunk.partition_point(|&r| key(r) < k);
        if chunk.get(pos) != Some(&row) {
            return false;
        }
        chunk.remove(pos);
        self.len -= 1;
        if chunk.is_empty() {
            self.chunks.remove(ci);
        } else if chunk.len() < CHUNK / 4 && ci + 1 < self.chunks.len() && self.chunks[ci + 1].len() < CHUNK {
            let next = self.chunks.remove(ci + 1);
            self.chunks[ci].extend(next);
        }
        true
    }

    /// Rows from the greatest key down, starting below `below` if given.
    pub(crate) fn iter_desc<'a, K: Ord + 'a>(
        &'a self,
        below: Option<K>,
        key: impl Fn(u32) -> K + 'a,
    ) -> impl Iterator<Item = u32> + 'a {
        let (ci, pos) = match &below {
            None => (self.chunks.len(), 0),
            Some(b) => {
                let ci = self.chunk_for(b, &key);
                match self.chunks.get(ci) {
                    Some(c) => (ci, c.partition_point(|&r| key(r) < *b)),
                    None => (self.chunks.len(), 0),
                }
            }
        };
        // Everything before (ci, pos), backwards.
        let head = self.chunks.get(ci).map_or(&[][..], |c| &c[..pos]);
        head.iter().rev().chain(self.chunks[..ci].iter().rev().flat_map(|c| c.iter().rev())).copied()
    }

    /// How many rows have a key below `bound`.
    pub(crate) fn count_below<K: Ord>(&self, bound: &K, key: impl Fn(u32) -> K) -> usize {
        let ci = self.chunk_for(bound, &key);
        let whole: usize = self.chunks[..ci].iter().map(Vec::len).sum();
        whole + self.chunks.get(ci).map_or(0, |c| c.partition_point(|&r| key(r) < *bound))
    }

    /// Rows from the smallest key up.
    pub(crate) fn iter_asc(&self) -> impl Iterator<Item = u32> + '_ {
        self.chunks.iter().flatten().copied()
    }

    /// Keeps only the rows `keep` accepts, in one pass and in place
    /// (bulk deletion); neighbouring chunks that fit in one are merged.
    pub(crate) fn retain(&mut self, keep: impl Fn(u32) -> bool) {
        for c in &mut self.chunks {
            c.retain(|&r| keep(r));
        }
        self.chunks.retain(|c| !c.is_empty());
        if self.chunks.len() > 1 {
            let mut merged: Vec<Vec<u32>> = Vec::with_capacity(self.chunks.len());
            for c in std::mem::take(&mut self.chunks) {
                match merged.last_mut() {
                    Some(last) if last.len() + c.len() <= CHUNK => last.extend(c),
                    _ => merged.push(c),
                }
            }
            self.chunks = merged;
        }
        self.len = self.chunks.iter().map(Vec::len).sum();
    }

    /// Heap bytes held (for the memory figures).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.chunks.capacity() * std::mem::size_of::<Vec<u32>>()
            + self.chunks.iter().map(|c| c.capacity() * 4).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    proptest! {
        /// Against a BTreeSet: a set built whole from sorted rows (none,
        /// or up to a few chunks), random inserts and removes, then every
        /// descending iteration from every cursor.
        #[test]
        fn behaves_like_a_sorted_set(
            start in proptest::collection::btree_set(0u32..3000, 0..1500),
            ops in proptest::collection::vec((any::<bool>(), 0u32..3000), 0..4000),
        ) {
            // The key of a row is a scrambled copy of it, so order differs from row order.
            let key = |r: u32| (r.wrapping_mul(2_654_435_761) % 10_007, r);
            let mut model: BTreeSet<(u32, u32)> = start.iter().map(|&r| key(r)).collect();
            let mut set = OrderedRows::from_sorted(model.iter().map(|k| k.1).collect());
            prop_assert_eq!(set.len(), model.len());
            for (insert, row) in ops {
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
            for bound in [(0, 0), (5_000, 0), (10_007, 0), key(7)] {
                prop_assert_eq!(set.count_below(&bound, key), model.range(..bound).count());
            }
        }
    }
}
