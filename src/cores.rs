//! Independent pieces of work spread over the machine's cores: the
//! segments a compaction rewrites (`log/compact.rs`), the cold runs it
//! copies (`projection/tier.rs`).

/// `f` of every item, each on one of at most `most` scoped threads, and
/// no more than the machine has cores (item *i* on thread *i* mod
/// threads), in the order of `items`. A panic in `f` is a bug: it is
/// passed on.
pub(crate) fn map<T: Sync, R: Send>(items: &[T], most: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = count().min(most).min(items.len()).max(1);
    let f = &f;
    let mut out: Vec<Option<R>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| scope.spawn(move || items.iter().skip(t).step_by(threads).map(f).collect::<Vec<R>>()))
            .collect();
        let mut out: Vec<Option<R>> = (0..items.len()).map(|_| None).collect();
        for (t, w) in workers.into_iter().enumerate() {
            let done = w.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
            for (i, r) in (t..).step_by(threads).zip(done) {
                out[i] = Some(r);
            }
        }
        out
    });
    out.iter_mut().map(|r| r.take().expect("every item has its result")).collect()
}

/// The cores this process may run on (one if unknown).
pub(crate) fn count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_item_once_in_order() {
        for n in [0usize, 1, 2, 3, 7, 100] {
            let items: Vec<usize> = (0..n).collect();
            for most in [1, 2, 8] {
                assert_eq!(super::map(&items, most, |&i| i * 2), items.iter().map(|i| i * 2).collect::<Vec<_>>());
            }
        }
    }
}
