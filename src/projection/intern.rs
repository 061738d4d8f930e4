//! Repeated strings (owners, business units, workflows, regarding rows,
//! dependency tokens) stored once; rows hold a four-byte symbol.
//!
//! Every name lives once, in one buffer, one after another; the lookup
//! table holds each symbol with its name's place in the buffer and the 32
//! bits of its hash that place it (16 bytes a slot), and compares through
//! the buffer. Most names are regarding rows, one or two jobs each, so a
//! name costs its bytes, its end offset and two to four table slots (the
//! table is at most half full), with no allocation of its own.
//!
//! The table is open addressing with linear probing: a name is found by
//! reading its slot and its bytes, two places in memory where a table with
//! a separate array of control bytes (hashbrown's, used before) reads
//! three. In a large state those are cache misses, and interning was a
//! fifth of a replay's applying thread; the slot a name will need can also
//! be fetched ahead ([`Interner::prefetch_slot`]), while the events
//! before it are applied. The table grows by moving its slots by the hash
//! bits they keep, without reading a name.

use std::hash::BuildHasher;

use rustc_hash::FxBuildHasher;

use crate::domain::JobColumns;
use serde::de::{DeserializeSeed, SeqAccess, Visitor};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A string's symbol; 0 means "none".
pub(crate) type Sym = u32;
pub(crate) const NONE: Sym = 0;

#[derive(Debug, Clone, Default)]
pub(crate) struct Interner {
    /// Every name, one after another.
    text: String,
    /// Where each name ends in `text`: symbol `s` is
    /// `text[ends[s - 2]..ends[s - 1]]` (from 0 for the first).
    ends: Vec<usize>,
    /// Symbols with where their names are, found by the name's hash: a
    /// lookup compares the name in `text` without reading `ends`.
    table: Table,
}

/// A slot of [`Table`]: a symbol (`NONE`: the slot is empty), the 32 bits
/// of its name's hash that choose its place (in tables of up to 2^32
/// slots; a larger one would still find every name, by longer probes, but
/// 2^32 slots hold 2^31 names), and where the name is in `text`.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    sym: Sym,
    hash: u32,
    /// The name's start in `text` (40 bits) and its length (24 bits).
    place: u64,
}

/// Names of 2^`LEN_BITS` bytes (16 MiB) or more, or starting
/// `START_LIMIT` bytes or more into `text` (1 TiB), are kept by symbol
/// only, out of the table: no lookup finds them, and interning such a
/// name again gives it a new symbol. None is ever written (a name is at
/// most 256 characters, `domain/limits.rs`); a hostile checkpoint could
/// hold one.
const LEN_BITS: u32 = 24;
const START_LIMIT: usize = 1 << (64 - LEN_BITS);

impl Slot {
    /// `sym`'s slot, its name at `start..end` with hash `h`; `None` for a
    /// name out of the table's reach.
    fn new(start: usize, end: usize, hash: u32, sym: Sym) -> Option<Slot> {
        let len = end - start;
        (len < 1 << LEN_BITS && start < START_LIMIT).then_some(Slot {
            sym,
            hash,
            place: (start as u64) << LEN_BITS | len as u64,
        })
    }

    fn name(self, text: &str) -> &str {
        let start = (self.place >> LEN_BITS) as usize;
        &text[start..start + (self.place & ((1 << LEN_BITS) - 1)) as usize]
    }
}

/// The lookup table: a power-of-two number of slots (or none), at most
/// half of them full.
#[derive(Debug, Clone, Default)]
struct Table {
    slots: Vec<Slot>,
    full: usize,
}

impl Table {
    /// The slot of the name `name` (hash `h`), or the empty slot where it
    /// would go; `None` when the table has no slot at all.
    fn probe(&self, h: u32, name: &str, text: &str) -> Option<(usize, Slot)> {
        self.probe_by(h, text, |n| n == name)
    }

    /// [`Table::probe`] of the name that `is` recognises.
    #[inline(always)]
    fn probe_by(&self, h: u32, text: &str, is: impl Fn(&str) -> bool) -> Option<(usize, Slot)> {
        let mask = self.slots.len().checked_sub(1)?;
        let mut i = h as usize & mask;
        loop {
            let slot = self.slots[i];
            if slot.sym == NONE || (slot.hash == h && is(slot.name(text))) {
                return Some((i, slot));
            }
            i = (i + 1) & mask;
        }
    }

    /// Puts `slot`, a name not in the table (`at`: where [`Table::probe`]
    /// found room for it), growing the table first if it would be more
    /// than half full.
    fn put(&mut self, at: Option<usize>, slot: Slot) {
        let i = match at {
            Some(i) if (self.full + 1) * 2 <= self.slots.len() => i,
            _ => {
                self.grow_to(self.full + 1);
                self.empty_slot(slot.hash)
            }
        };
        self.slots[i] = slot;
        self.full += 1;
    }

    /// The first empty slot of `h`'s probe (the table has room).
    fn empty_slot(&self, h: u32) -> usize {
        let mask = self.slots.len() - 1;
        let mut i = h as usize & mask;
        while self.slots[i].sym != NONE {
            i = (i + 1) & mask;
        }
        i
    }

    /// Makes room for `n` names at most half full: the slots moved into a
    /// table of twice the size (or more), by the hash bits they keep.
    fn grow_to(&mut self, n: usize) {
        let size = (n * 2).next_power_of_two().max(16);
        if size <= self.slots.len() {
            return;
        }
        let old = std::mem::replace(&mut self.slots, crate::sys::filled(size, Slot::default(), false));
        for slot in old.into_iter().filter(|s| s.sym != NONE) {
            let i = self.empty_slot(slot.hash);
            self.slots[i] = slot;
        }
    }

    /// Rebuilds the table from every name (`text`, `ends`: a checkpoint's
    /// names); a name held twice is found under its first symbol.
    fn rebuild(&mut self, text: &str, ends: &[usize]) {
        *self = Table::default();
        self.grow_to(ends.len());
        for sym in 1..=ends.len() as Sym {
            let (start, end) = span(ends, sym);
            let name = &text[start..end];
            let h = hash(name.as_bytes());
            let Some(slot) = Slot::new(start, end, h, sym) else { continue };
            if let Some((i, found)) = self.probe(h, name, text) {
                if found.sym == NONE {
                    self.slots[i] = slot;
                    self.full += 1;
                }
            }
        }
    }
}

/// The 32 bits of a name's hash that place it (its bytes hashed, so that
/// a name made of parts is hashed without being made, [`joined_hash`]).
fn hash(s: &[u8]) -> u32 {
    FxBuildHasher.hash_one(s) as u32
}

/// The hash of the name `a`, `sep`, `b` ([`Interner::intern_joined`]),
/// made without allocating when it is at most 128 bytes long.
pub(crate) fn joined_hash(a: &str, sep: char, b: &str) -> u32 {
    let (mid, len) = (a.len() + sep.len_utf8(), a.len() + sep.len_utf8() + b.len());
    let mut buf = [0u8; 128];
    let Some(joined) = buf.get_mut(..len) else { return hash(format!("{a}{sep}{b}").as_bytes()) };
    joined[..a.len()].copy_from_slice(a.as_bytes());
    sep.encode_utf8(&mut joined[a.len()..mid]);
    joined[mid..].copy_from_slice(b.as_bytes());
    hash(joined)
}

/// The hash of the name `s` ([`Interner::intern_hashed`]).
pub(crate) fn name_hash(s: &str) -> u32 {
    hash(s.as_bytes())
}

/// The hashes of the names a job's creation interns: its owner, business
/// unit, workflow, regarding row (`table:id`, [`joined_hash`]) and
/// dependency token. A replay's reading thread makes them, so that its
/// applying thread neither hashes the names nor waits for their slots: it
/// fetches those a few events ahead ([`NameHashes::prefetch_slots`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct NameHashes {
    pub owner: u32,
    pub unit: u32,
    pub workflow: Option<u32>,
    pub regarding: Option<u32>,
    pub token: Option<u32>,
}

impl NameHashes {
    /// The hashes of the names of the job with these columns.
    pub(crate) fn of(job: &JobColumns<&str>) -> Self {
        NameHashes {
            owner: name_hash(job.owner),
            unit: name_hash(job.owningbusinessunit),
            workflow: job.workflow.map(name_hash),
            regarding: job.regarding.map(|(table, id)| joined_hash(table, ':', id)),
            token: job.dependencytoken.map(name_hash),
        }
    }

    fn each(&self) -> impl Iterator<Item = u32> {
        [Some(self.owner), Some(self.unit), self.workflow, self.regarding, self.token].into_iter().flatten()
    }

    /// [`Interner::prefetch_slot`] of each name.
    pub(crate) fn prefetch_slots(&self, strings: &Interner) {
        self.each().for_each(|h| strings.prefetch_slot(h));
    }

    /// [`Interner::prefetch_name`] of each name.
    pub(crate) fn prefetch_names(&self, strings: &Interner) {
        self.each().for_each(|h| strings.prefetch_name(h));
    }
}

impl Interner {
    /// The symbol of `s`: the one it has, or a new one. A name already
    /// held (most are: owners, business units, workflows) is found
    /// without being copied first.
    pub(crate) fn intern(&mut self, s: &str) -> Sym {
        self.intern_hashed(s, name_hash(s))
    }

    /// [`Interner::intern`] of a name whose hash is known ([`name_hash`]).
    pub(crate) fn intern_hashed(&mut self, s: &str, h: u32) -> Sym {
        debug_assert_eq!(h, name_hash(s), "the hash is the name's");
        self.intern_by(h, |n| n == s, |text| text.push_str(s))
    }

    pub(crate) fn intern_opt(&mut self, s: Option<&str>) -> Sym {
        s.map_or(NONE, |s| self.intern(s))
    }

    /// [`Interner::intern_opt`] with the name's hash, if it is known.
    pub(crate) fn intern_opt_hashed(&mut self, s: Option<&str>, h: Option<u32>) -> Sym {
        match (s, h) {
            (Some(s), Some(h)) => self.intern_hashed(s, h),
            (s, _) => self.intern_opt(s),
        }
    }

    /// Interns `a`, `sep` and `b` one after the other as one name (a
    /// regarding row's `table:id`), without making that name elsewhere
    /// first.
    pub(crate) fn intern_joined(&mut self, a: &str, sep: char, b: &str) -> Sym {
        self.intern_joined_hashed(a, sep, b, joined_hash(a, sep, b))
    }

    /// [`Interner::intern_joined`] of a name whose hash is known
    /// ([`joined_hash`]: a replay's reading thread computes it). A name
    /// already held is found by its parts, without being written.
    pub(crate) fn intern_joined_hashed(&mut self, a: &str, sep: char, b: &str, h: u32) -> Sym {
        debug_assert_eq!(h, joined_hash(a, sep, b), "the hash is the name's");
        let len = a.len() + sep.len_utf8() + b.len();
        let is = |n: &str| n.len() == len && n.starts_with(a) && n.ends_with(b) && n[a.len()..].starts_with(sep);
        self.intern_by(h, is, |text| {
            text.push_str(a);
            text.push(sep);
            text.push_str(b);
        })
    }

    /// The symbol of the name of hash `h` that `is` recognises: the one
    /// it has, or a new one whose name `write` appends to the names
    /// (nothing is written for a name already held).
    #[inline(always)]
    fn intern_by(&mut self, h: u32, is: impl Fn(&str) -> bool, write: impl FnOnce(&mut String)) -> Sym {
        let at = match self.table.probe_by(h, &self.text, is) {
            Some((_, slot)) if slot.sym != NONE => return slot.sym,
            found => found.map(|(i, _)| i),
        };
        let start = self.text.len();
        write(&mut self.text);
        let Self { text, ends, table } = self;
        ends.push(text.len());
        let sym = ends.len() as Sym;
        if let Some(slot) = Slot::new(start, text.len(), h, sym) {
            table.put(at, slot);
        }
        sym
    }

    /// Fetches into the cache the slot that interning the name of hash `h`
    /// ([`joined_hash`]) will read first: called a few events ahead, the
    /// wait for memory overlaps the work in between.
    pub(crate) fn prefetch_slot(&self, h: u32) {
        if let Some(slot) = self.first_slot(h) {
            crate::sys::prefetch(slot);
        }
    }

    /// The second step of [`Interner::prefetch_slot`], called nearer to
    /// the name's interning, once its slot is in the cache: reads the
    /// slot and, if it holds a name of the same hash (the name is known,
    /// as most are), fetches that name's bytes, which the interning
    /// compares.
    pub(crate) fn prefetch_name(&self, h: u32) {
        let Some(slot) = self.first_slot(h) else { return };
        if slot.sym != NONE && slot.hash == h {
            if let Some(byte) = self.text.as_bytes().get((slot.place >> LEN_BITS) as usize) {
                crate::sys::prefetch(byte);
            }
        }
    }

    /// The first slot a name of hash `h` is looked for in; `None` for a
    /// table without slots.
    fn first_slot(&self, h: u32) -> Option<&Slot> {
        let mask = self.table.slots.len().checked_sub(1)?;
        Some(&self.table.slots[h as usize & mask])
    }

    /// Appends `s` to the names (not to the lookup table); its symbol.
    fn push(&mut self, s: &str) -> Sym {
        self.text.push_str(s);
        self.ends.push(self.text.len());
        self.ends.len() as Sym
    }

    /// The symbol of `s`, if it was ever interned.
    pub(crate) fn get(&self, s: &str) -> Option<Sym> {
        let (_, slot) = self.table.probe(hash(s.as_bytes()), s, &self.text)?;
        (slot.sym != NONE).then_some(slot.sym)
    }

    pub(crate) fn name(&self, sym: Sym) -> Option<&str> {
        (sym != NONE).then(|| name_in(&self.text, &self.ends, sym))
    }

    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// The names, in symbol order.
    fn names(&self) -> impl Iterator<Item = &str> + '_ {
        (1..=self.len() as Sym).map(|s| name_in(&self.text, &self.ends, s))
    }

    /// Rebuilds the lookup table after loading a snapshot (a name held
    /// twice is found under its first symbol).
    pub(crate) fn rebuild(&mut self) {
        let Self { text, ends, table } = self;
        table.rebuild(text, ends);
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.text.capacity()
            + self.ends.capacity() * std::mem::size_of::<usize>()
            + self.table.slots.capacity() * std::mem::size_of::<Slot>()
    }
}

/// Symbol `sym`'s name (not [`NONE`]).
fn name_in<'a>(text: &'a str, ends: &[usize], sym: Sym) -> &'a str {
    let (start, end) = span(ends, sym);
    &text[start..end]
}

/// Where symbol `sym`'s name is in the buffer (not [`NONE`]).
fn span(ends: &[usize], sym: Sym) -> (usize, usize) {
    let i = sym as usize - 1;
    (if i == 0 { 0 } else { ends[i - 1] }, ends[i])
}

// On disk (a checkpoint's `strings`), an interner is the struct it always
// was: one field, the names in symbol order as a sequence of strings
// (docs/format.md, "Checkpoints").
impl Serialize for Interner {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Names<'a>(&'a Interner);
        impl Serialize for Names<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_seq(self.0.names())
            }
        }
        let mut s = serializer.serialize_struct("Interner", 1)?;
        s.serialize_field("names", &Names(self))?;
        s.end()
    }
}

impl<'de> Deserialize<'de> for Interner {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// The struct: its one field.
        struct Whole;
        /// The field: a sequence of names, appended as they are read.
        struct Names;
        /// One name, appended to the interner.
        struct Name<'a>(&'a mut Interner);

        impl<'de> Visitor<'de> for Whole {
            type Value = Interner;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an interner (its names)")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Interner, A::Error> {
                seq.next_element_seed(Names)?.ok_or_else(|| serde::de::Error::invalid_length(0, &self))
            }
        }
        impl<'de> DeserializeSeed<'de> for Names {
            type Value = Interner;
            fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Interner, D::Error> {
                d.deserialize_seq(self)
            }
        }
        impl<'de> Visitor<'de> for Names {
            type Value = Interner;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a sequence of names")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Interner, A::Error> {
                let mut interner = Interner::default();
                // Reserved from the hint only up to a bound: a hostile
                // count must not allocate before the names are there.
                interner.ends.reserve(seq.size_hint().unwrap_or(0).min(1 << 20));
                while seq.next_element_seed(Name(&mut interner))?.is_some() {}
                Ok(interner)
            }
        }
        impl<'de> DeserializeSeed<'de> for Name<'_> {
            type Value = ();
            fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
                d.deserialize_str(self)
            }
        }
        impl<'de> Visitor<'de> for Name<'_> {
            type Value = ();
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a name")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<(), E> {
                self.0.push(s);
                Ok(())
            }
        }
        deserializer.deserialize_struct("Interner", &["names"], Whole)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_kept_once_found_again_and_read_back_as_written() {
        let mut i = Interner::default();
        let (a, b) = (i.intern("owner-1"), i.intern("account:7"));
        assert_eq!((a, b), (1, 2));
        assert_eq!(i.intern("owner-1"), a);
        assert_eq!(i.intern(""), 3, "the empty name is a name");
        assert_eq!(i.get("account:7"), Some(b));
        assert_eq!(i.get("account:8"), None);
        assert_eq!(i.name(b), Some("account:7"));
        assert_eq!(i.name(NONE), None);

        // The bytes of the struct it replaced: { names: Vec<Box<str>> }.
        #[derive(Serialize, Deserialize)]
        struct Before {
            names: Vec<Box<str>>,
        }
        let before = Before { names: vec!["owner-1".into(), "account:7".into(), "".into()] };
        let bytes = crate::codec::encode(&i).unwrap();
        assert_eq!(bytes, crate::codec::encode(&before).unwrap());
        let mut back: Interner = crate::codec::decode(&bytes).unwrap();
        back.rebuild();
        assert_eq!(back.names().collect::<Vec<_>>(), ["owner-1", "account:7", ""]);
        assert_eq!((back.get("owner-1"), back.get("account:7"), back.get("")), (Some(1), Some(2), Some(3)));
        assert_eq!(back.intern("new"), 4);
    }

    /// A name joined from parts is the whole name: found, nothing kept
    /// twice, and found again whole.
    #[test]
    fn a_joined_name_is_the_whole_name() {
        let mut i = Interner::default();
        let (a, b) = (i.intern("owner-1"), i.intern("account:7"));
        let text = i.text.len();
        assert_eq!(i.intern_joined("account", ':', "7"), b);
        assert_eq!(i.intern("owner-1"), a);
        assert_eq!(i.text.len(), text, "nothing kept twice");
        assert_eq!(i.intern_joined("account", ':', "8"), 3);
        assert_eq!((i.get("account:8"), i.name(3)), (Some(3), Some("account:8")));
        assert_eq!(i.intern("account:8"), 3);
        assert_eq!(i.text, "owner-1account:7account:8");

        // Parts that differ but join into a name held, and names that share
        // a start or an end with one held but are not it.
        assert_eq!(i.intern_joined("account:", ':', ""), 4);
        assert_eq!(i.intern_joined("account", ':', ":"), 4);
        assert_eq!(i.intern_joined("accoun", 't', ":7"), b);
        assert_eq!(i.intern_joined("account", ':', "78"), 5);
        assert_eq!(i.intern_joined("account", '-', "7"), 6);
        // A name longer than the hash's buffer, hashed whole.
        let (table, id) = ("t".repeat(100), "i".repeat(100));
        let long = i.intern_joined(&table, ':', &id);
        assert_eq!(joined_hash(&table, ':', &id), hash(format!("{table}:{id}").as_bytes()));
        assert_eq!((i.get(&format!("{table}:{id}")), i.intern_joined(&table, ':', &id)), (Some(long), long));
    }

    /// Many names through the table's growths: each found under its
    /// symbol, and a checkpoint's names held twice found under the first.
    #[test]
    fn names_are_found_through_growth_and_a_rebuild() {
        let mut i = Interner::default();
        let names: Vec<String> = (0..50_000).map(|n| format!("contact:{n}")).collect();
        for (k, n) in names.iter().enumerate() {
            assert_eq!(i.intern(n), k as Sym + 1);
            let h = joined_hash("contact", ':', &k.to_string());
            assert_eq!(h, hash(n.as_bytes()), "a name's hash is the same made of parts");
            i.prefetch_slot(h);
            i.prefetch_name(h);
        }
        for (k, n) in names.iter().enumerate().rev() {
            assert_eq!(i.get(n), Some(k as Sym + 1));
            assert_eq!(i.intern_joined("contact", ':', &k.to_string()), k as Sym + 1);
        }
        assert_eq!(i.len(), names.len());
        assert_eq!(i.get("contact:50000"), None);
        assert_eq!(i.table.full, names.len());
        assert!(i.table.slots.len() >= 2 * i.table.full, "at most half full");

        // A checkpoint's names, some twice, then enough new ones to grow
        // the rebuilt table (which holds fewer names than there are
        // symbols) several times over.
        let mut twice = Interner::default();
        let old: Vec<String> = (0..40).map(|n| format!("n{}", n % 25)).collect();
        for n in &old {
            twice.push(n);
        }
        twice.rebuild();
        assert_eq!(twice.table.full, 25);
        for k in 0..200 {
            assert_eq!(twice.intern(&format!("new{k}")), 41 + k);
        }
        for (k, n) in old.iter().enumerate() {
            assert_eq!(twice.get(n), Some(k as Sym % 25 + 1), "{n} under its first symbol");
            assert_eq!(twice.intern(n), k as Sym % 25 + 1);
        }
        assert!(twice.table.slots.len() >= 2 * twice.table.full);
    }

    /// A name too long for the table is kept by symbol alone: never found,
    /// interned anew each time, and the names around it are unaffected.
    #[test]
    fn a_name_out_of_the_tables_reach_is_kept_by_symbol() {
        let mut i = Interner::default();
        let long = "x".repeat(1 << LEN_BITS);
        assert_eq!(i.intern("a"), 1);
        assert_eq!(i.intern(&long), 2);
        assert_eq!(i.get(&long), None);
        assert_eq!(i.intern(&long), 3);
        assert_eq!(i.name(2), Some(long.as_str()));
        assert_eq!((i.intern("a"), i.intern("b")), (1, 4));
        i.rebuild();
        assert_eq!((i.get("a"), i.get("b"), i.get(&long)), (Some(1), Some(4), None));
    }
}
