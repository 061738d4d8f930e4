//! Repeated strings (owners, business units, workflows, regarding rows,
//! dependency tokens) stored once; rows hold a four-byte symbol.

use rustc_hash::FxHashMap as HashMap;

use serde::{Deserialize, Serialize};

/// A string's symbol; 0 means "none".
pub(crate) type Sym = u32;
pub(crate) const NONE: Sym = 0;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Interner {
    names: Vec<Box<str>>,
    #[serde(skip)]
    ids: HashMap<Box<str>, Sym>,
}

impl Interner {
    pub(crate) fn intern(&mut self, s: &str) -> Sym {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        self.names.push(s.into());
        let id = self.names.len() as Sym;
        self.ids.insert(s.into(), id);
        id
    }

    pub(crate) fn intern_opt(&mut self, s: Option<&str>) -> Sym {
        s.map_or(NONE, |s| self.intern(s))
    }

    /// The symbol of `s`, if it was ever interned.
    pub(crate) fn get(&self, s: &str) -> Option<Sym> {
        self.ids.get(s).copied()
    }

    pub(crate) fn name(&self, sym: Sym) -> Option<&str> {
        (sym != NONE).then(|| &*self.names[sym as usize - 1])
    }

    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }

    /// Rebuilds the lookup table after loading a snapshot.
    pub(crate) fn rebuild(&mut self) {
        self.ids = self.names.iter().enumerate().map(|(i, n)| (n.clone(), i as Sym + 1)).collect();
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.names.iter().map(|n| 2 * n.len() + 16 + 24).sum::<usize>() + self.names.capacity() * 16
    }
}
