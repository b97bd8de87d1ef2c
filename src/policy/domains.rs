//! The domain index: a name covers itself and its subdomains, found by walking the host's
//! label suffixes in one hash table. Built for lists of millions of names: the names live
//! in one string arena and the table holds 12-byte slots.

use std::hash::BuildHasher;

use hashbrown::HashTable;

/// Where an entry came from: a file (index into the policy's sources) and a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SourceRef {
    pub file: u32,
    pub line: u32,
}

/// One category an indexed name belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    pub category: u16,
    pub source: SourceRef,
    next: u32,
}

const NONE: u32 = u32::MAX;

#[derive(Clone, Copy)]
struct Slot {
    offset: u32,
    len: u8,
    first_hit: u32,
}

/// Names and the categories they belong to.
pub struct DomainIndex {
    arena: String,
    table: HashTable<Slot>,
    hits: Vec<Hit>,
    hasher: foldhash::fast::FixedState,
}

impl Default for DomainIndex {
    fn default() -> Self {
        DomainIndex::with_capacity(0)
    }
}

impl DomainIndex {
    pub fn with_capacity(names: usize) -> Self {
        DomainIndex {
            arena: String::with_capacity(names * 16),
            table: HashTable::with_capacity(names),
            hits: Vec::with_capacity(names),
            hasher: foldhash::fast::FixedState::with_seed(0x5169_6e70_6f73_7421),
        }
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Makes room for about `names` more names (growing a table of millions is slow).
    pub fn reserve(&mut self, names: usize) {
        let hasher = &self.hasher;
        let arena = &self.arena;
        self.table.reserve(names, |s| {
            let start = s.offset as usize;
            hasher.hash_one(&arena[start..start + s.len as usize])
        });
        self.arena.reserve(names * 16);
        self.hits.reserve(names);
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    fn key(&self, slot: &Slot) -> &str {
        let start = slot.offset as usize;
        &self.arena[start..start + slot.len as usize]
    }

    /// Adds `name` (already normalised: lower case, no trailing dot, ASCII) to `category`.
    /// A name already in that category keeps its first source. Returns false when the index
    /// is full (4 GiB of names) — far beyond any real list.
    pub fn insert(&mut self, name: &str, category: u16, source: SourceRef) -> bool {
        let hash = self.hasher.hash_one(name);
        let arena = &self.arena;
        let found = self.table.find(hash, |s| {
            let start = s.offset as usize;
            &arena[start..start + s.len as usize] == name
        });
        if let Some(slot) = found.copied() {
            let mut at = slot.first_hit;
            let mut last = at;
            while at != NONE {
                let hit = self.hits[at as usize];
                if hit.category == category {
                    return true;
                }
                last = at;
                at = hit.next;
            }
            let Ok(new) = u32::try_from(self.hits.len()) else {
                return false;
            };
            self.hits.push(Hit {
                category,
                source,
                next: NONE,
            });
            self.hits[last as usize].next = new;
            return true;
        }
        let (Ok(offset), Ok(len), Ok(hit)) = (
            u32::try_from(self.arena.len()),
            u8::try_from(name.len()),
            u32::try_from(self.hits.len()),
        ) else {
            return false;
        };
        self.arena.push_str(name);
        self.hits.push(Hit {
            category,
            source,
            next: NONE,
        });
        let slot = Slot {
            offset,
            len,
            first_hit: hit,
        };
        let hasher = &self.hasher;
        let arena = &self.arena;
        self.table.insert_unique(hash, slot, |s| {
            let start = s.offset as usize;
            hasher.hash_one(&arena[start..start + s.len as usize])
        });
        true
    }

    /// Calls `found` for every category of `host` and of each parent domain, most specific
    /// first. `host` must be normalised. `exact` limits the walk to the host itself (for IP
    /// literals, whose "suffixes" mean nothing).
    pub fn lookup(&self, host: &str, exact: bool, mut found: impl FnMut(&str, &Hit)) {
        let mut rest = host;
        loop {
            let hash = self.hasher.hash_one(rest);
            if let Some(slot) = self.table.find(hash, |s| self.key(s) == rest) {
                let mut at = slot.first_hit;
                while at != NONE {
                    let hit = &self.hits[at as usize];
                    found(rest, hit);
                    at = hit.next;
                }
            }
            if exact {
                return;
            }
            match rest.find('.') {
                Some(dot) => rest = &rest[dot + 1..],
                None => return,
            }
        }
    }

    /// Bytes held, for the load report and the memory benchmark.
    pub fn heap_bytes(&self) -> usize {
        self.arena.capacity()
            + self.table.capacity() * (std::mem::size_of::<Slot>() + 1)
            + self.hits.capacity() * std::mem::size_of::<Hit>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(line: u32) -> SourceRef {
        SourceRef { file: 0, line }
    }

    fn cats(index: &DomainIndex, host: &str) -> Vec<(String, u16)> {
        let mut v = Vec::new();
        index.lookup(host, false, |name, hit| {
            v.push((name.to_string(), hit.category))
        });
        v
    }

    #[test]
    fn a_name_covers_itself_and_subdomains_only() {
        let mut i = DomainIndex::default();
        i.insert("ning.com", 0, src(1));
        assert_eq!(cats(&i, "ning.com"), vec![("ning.com".into(), 0)]);
        assert_eq!(cats(&i, "forum.ning.com"), vec![("ning.com".into(), 0)]);
        assert!(cats(&i, "notning.com").is_empty());
        assert!(cats(&i, "com").is_empty());
        assert!(cats(&i, "ning.com.evil").is_empty());
    }

    #[test]
    fn most_specific_first_and_several_categories() {
        let mut i = DomainIndex::default();
        i.insert("facebook.com", 0, src(1));
        i.insert("evil.facebook.com", 1, src(2));
        i.insert("facebook.com", 2, src(3));
        i.insert("facebook.com", 0, src(4)); // duplicate: first source kept
        assert_eq!(
            cats(&i, "a.evil.facebook.com"),
            vec![
                ("evil.facebook.com".into(), 1),
                ("facebook.com".into(), 0),
                ("facebook.com".into(), 2)
            ]
        );
        let mut lines = Vec::new();
        i.lookup("facebook.com", false, |_, h| lines.push(h.source.line));
        assert_eq!(lines, vec![1, 3]);
    }

    #[test]
    fn exact_lookup_for_ip_literals() {
        let mut i = DomainIndex::default();
        i.insert("0.0.1", 0, src(1));
        let mut n = 0;
        i.lookup("10.0.0.1", true, |_, _| n += 1);
        assert_eq!(n, 0);
    }
}
