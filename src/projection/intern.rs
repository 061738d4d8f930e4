//! Repeated strings (owners, business units, workflows, regarding rows,
//! dependency tokens) stored once; rows hold a four-byte symbol.
//!
//! Every name lives once, in one buffer, one after another; the lookup
//! table holds each symbol with its name's place in the buffer (16 bytes)
//! and compares through the buffer. Most names are regarding rows, one or
//! two jobs each, so a name costs its bytes, its end offset and a table
//! slot, with no allocation of its own.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;
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
    ids: HashTable<Slot>,
}

/// A symbol in the lookup table, with its name's place in `text`.
#[derive(Debug, Clone, Copy)]
struct Slot {
    start: usize,
    len: u32,
    sym: Sym,
}

impl Slot {
    /// `sym`'s slot, its name at `start..end`; `None` for a name of 4 GiB
    /// or more (none is written: an event is at most 16 MiB; one in a
    /// hostile checkpoint is kept, by symbol, out of the table).
    fn new(start: usize, end: usize, sym: Sym) -> Option<Slot> {
        Some(Slot { start, len: u32::try_from(end - start).ok()?, sym })
    }

    fn name(self, text: &str) -> &str {
        &text[self.start..self.start + self.len as usize]
    }
}

fn hash(s: &str) -> u64 {
    FxBuildHasher.hash_one(s)
}

impl Interner {
    pub(crate) fn intern(&mut self, s: &str) -> Sym {
        let start = self.text.len();
        self.text.push_str(s);
        self.intern_tail(start)
    }

    pub(crate) fn intern_opt(&mut self, s: Option<&str>) -> Sym {
        s.map_or(NONE, |s| self.intern(s))
    }

    /// Interns `a`, `sep` and `b` one after the other as one name (a
    /// regarding row's `table:id`), without making that name elsewhere
    /// first.
    pub(crate) fn intern_joined(&mut self, a: &str, sep: char, b: &str) -> Sym {
        let start = self.text.len();
        self.text.push_str(a);
        self.text.push(sep);
        self.text.push_str(b);
        self.intern_tail(start)
    }

    /// The symbol of the name just written at the end of the names, from
    /// `start`: a new one, or the one it already had (and the copy is
    /// taken back).
    fn intern_tail(&mut self, start: usize) -> Sym {
        let Self { text, ends, ids } = self;
        let name = &text[start..];
        let h = hash(name);
        if let Some(slot) = ids.find(h, |&slot| slot.name(text) == name) {
            let sym = slot.sym;
            text.truncate(start);
            return sym;
        }
        ends.push(text.len());
        let sym = ends.len() as Sym;
        if let Some(slot) = Slot::new(start, text.len(), sym) {
            ids.insert_unique(h, slot, |&other| hash(other.name(text)));
        }
        sym
    }

    /// Appends `s` to the names (not to the lookup table); its symbol.
    fn push(&mut self, s: &str) -> Sym {
        self.text.push_str(s);
        self.ends.push(self.text.len());
        self.ends.len() as Sym
    }

    /// The symbol of `s`, if it was ever interned.
    pub(crate) fn get(&self, s: &str) -> Option<Sym> {
        self.ids.find(hash(s), |&slot| slot.name(&self.text) == s).map(|slot| slot.sym)
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
        let Self { text, ends, ids } = self;
        *ids = HashTable::with_capacity(ends.len());
        for sym in 1..=ends.len() as Sym {
            let (start, end) = span(ends, sym);
            let name = &text[start..end];
            let h = hash(name);
            if ids.find(h, |&other| other.name(text) == name).is_none() {
                if let Some(slot) = Slot::new(start, end, sym) {
                    ids.insert_unique(h, slot, |&other| hash(other.name(text)));
                }
            }
        }
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.text.capacity()
            + self.ends.capacity() * std::mem::size_of::<usize>()
            + self.ids.capacity() * (std::mem::size_of::<Slot>() + 1)
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
    }
}
