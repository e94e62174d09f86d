//! The set type: Redis 7.0's two encodings, `intset` and `hashtable`.
//!
//! A set starts as an [`Intset`] when its first member is an integer (as Redis's
//! `setTypeCreate`), else as a hash table. The one idea to hold: conversion goes one
//! way only, intset to table, and happens exactly where Redis 7.0 does it: when a
//! member that is not a canonical 64-bit integer (`string2ll`: no '+', no leading zero,
//! no spaces) is added, or when an insert takes the intset past
//! `set-max-intset-entries`. Removing members never converts back, so OBJECT ENCODING
//! depends on a set's history, as in Redis. (Redis 7.2's listpack sets do not exist in
//! 7.0: small sets of strings are hash tables.)
//!
//! The table is the shard's [`Dict`] keyed by [`CompactBytes`] with no values, so SSCAN
//! gets Redis's reverse-binary cursor and random picks sample buckets like Redis's.

use super::intset::Intset;
use super::{CompactBytes, Dict};
use crate::protocol::parse::parse_i64;
use rand::Rng;

/// Redis caps `set-max-intset-entries` at 2^30 "due to intset internals".
const INTSET_ENTRIES_CAP: usize = 1 << 30;

/// 16 bytes (asserted), so a key's entry holds it without a box: a small set's
/// intset is one exact-size allocation, as in Redis.
pub enum Set {
    Intset(Intset),
    /// Boxed: the dict header is 88 bytes, an intset 16, and most sets are small.
    Table(Box<Dict<CompactBytes, ()>>),
}

const _: () = assert!(std::mem::size_of::<Set>() == 16);

/// One member as stored: intsets hold integers, tables byte strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Member<'a> {
    Int(i64),
    Str(&'a [u8]),
}

impl Member<'_> {
    /// The member's bytes as a client sees them (an integer in decimal).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out);
        out
    }
    pub fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            Member::Int(i) => out.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes()),
            Member::Str(s) => out.extend_from_slice(s),
        }
    }
}

impl Default for Set {
    /// An empty intset (Redis's `createIntsetObject`): the start of SINTERSTORE's,
    /// SUNIONSTORE's and SDIFFSTORE's results, which so end up intsets when every
    /// member is an integer.
    fn default() -> Self {
        Set::Intset(Intset::new())
    }
}

impl Set {
    /// An empty set that can hold `first` without converting (`setTypeCreate`).
    pub fn for_member(first: &[u8]) -> Set {
        match parse_i64(first) {
            Some(_) => Set::default(),
            None => Set::Table(Box::default()),
        }
    }

    /// The name OBJECT ENCODING reports.
    pub fn encoding(&self) -> &'static str {
        match self {
            Set::Intset(_) => "intset",
            Set::Table(_) => "hashtable",
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Set::Intset(s) => s.len(),
            Set::Table(d) => d.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Approximate heap bytes owned (for INFO memory and MEMORY USAGE): the table's
    /// buckets and nodes (key inline, next pointer), plus long members, sampled.
    /// Bytes MEMORY USAGE reports: a table's members are sampled (`samples` of them,
    /// 0: all) and extrapolated, as Redis does.
    pub fn memory_usage(&self, samples: usize) -> usize {
        // (The `Set` itself lives in the key's entry.)
        match self {
            Set::Intset(s) => super::alloc_size(s.heap_size()),
            Set::Table(d) => {
                let node = super::alloc_size(std::mem::size_of::<(CompactBytes, usize)>());
                let per = super::sampled_mean(d.iter(), samples, |(k, _)| {
                    node + super::alloc_size(k.heap_size())
                });
                super::alloc_size(std::mem::size_of::<Dict<CompactBytes, ()>>())
                    + d.buckets() * 8
                    + per * d.len()
            }
        }
    }

    pub fn heap_size(&self) -> usize {
        match self {
            Set::Intset(s) => s.heap_size(),
            Set::Table(d) => {
                const SAMPLE: usize = 16;
                let (n, long) = d
                    .iter()
                    .take(SAMPLE)
                    .fold((0, 0), |(n, b), (k, _)| (n + 1, b + k.heap_size()));
                let per_member = 32 + long.checked_div(n).unwrap_or(0);
                d.buckets() * 8 + d.len() * per_member
            }
        }
    }

    /// Add `m`; false if it was already a member. Converts to a table when `m` is not
    /// an integer or the intset would exceed `max_intset` entries (`setTypeAdd`).
    pub fn add(&mut self, m: &[u8], max_intset: usize) -> bool {
        match self {
            Set::Table(d) => {
                if d.contains_key(m) {
                    return false;
                }
                d.insert(CompactBytes::new(m), ());
                true
            }
            Set::Intset(s) => match parse_i64(m) {
                Some(v) => {
                    if !s.insert(v) {
                        return false;
                    }
                    if s.len() > max_intset.min(INTSET_ENTRIES_CAP) {
                        self.convert_to_table();
                    }
                    true
                }
                None => {
                    self.convert_to_table();
                    if let Set::Table(d) = self {
                        d.insert(CompactBytes::new(m), ());
                    }
                    true
                }
            },
        }
    }

    /// Turn an intset into a table holding the same members (`setTypeConvert`).
    pub fn convert_to_table(&mut self) {
        if let Set::Intset(s) = self {
            let mut d = Dict::new();
            let mut buf = itoa::Buffer::new();
            for v in s.iter() {
                d.insert(CompactBytes::new(buf.format(v).as_bytes()), ());
            }
            *self = Set::Table(Box::new(d));
        }
    }

    /// Remove `m`; false if it was not a member. A table shrinks when mostly empty.
    pub fn remove(&mut self, m: &[u8]) -> bool {
        match self {
            Set::Table(d) => {
                let removed = d.remove(m).is_some();
                if removed {
                    d.shrink_if_needed();
                }
                removed
            }
            Set::Intset(s) => parse_i64(m).is_some_and(|v| s.remove(v)),
        }
    }

    pub fn contains(&self, m: &[u8]) -> bool {
        match self {
            Set::Table(d) => d.contains_key(m),
            Set::Intset(s) => parse_i64(m).is_some_and(|v| s.contains(v)),
        }
    }

    /// The members: ascending for an intset, in table order for a table.
    pub fn iter(&self) -> Box<dyn Iterator<Item = Member<'_>> + '_> {
        match self {
            Set::Intset(s) => Box::new(s.iter().map(Member::Int)),
            Set::Table(d) => Box::new(d.iter().map(|(k, _)| Member::Str(k.as_slice()))),
        }
    }

    /// A random member (Redis's `setTypeRandomElement`), `None` if empty.
    pub fn random<R: Rng>(&mut self, rng: &mut R) -> Option<Member<'_>> {
        match self {
            Set::Intset(s) => s.random(rng).map(Member::Int),
            Set::Table(d) => d.random_entry(rng).map(|(k, _)| Member::Str(k.as_slice())),
        }
    }

    /// Remove and return a random member.
    pub fn pop<R: Rng>(&mut self, rng: &mut R) -> Option<Vec<u8>> {
        let m = self.random(rng)?.to_vec();
        self.remove(&m);
        Some(m)
    }

    /// One SSCAN step: calls `f` for the members at `cursor` and returns the next
    /// cursor (0 when done). An intset is returned whole, with cursor 0, as Redis does.
    pub fn scan(&self, cursor: u64, mut f: impl FnMut(Member<'_>)) -> u64 {
        match self {
            Set::Intset(s) => {
                s.iter().for_each(|v| f(Member::Int(v)));
                0
            }
            Set::Table(d) => d.scan(cursor, |k, _| f(Member::Str(k.as_slice()))),
        }
    }
}

impl Clone for Set {
    fn clone(&self) -> Self {
        match self {
            Set::Intset(s) => Set::Intset(s.clone()),
            Set::Table(d) => {
                let mut copy = Dict::new();
                for (k, _) in d.iter() {
                    copy.insert(k.clone(), ());
                }
                Set::Table(Box::new(copy))
            }
        }
    }
}

impl PartialEq for Set {
    /// Same encoding and same members.
    fn eq(&self, o: &Self) -> bool {
        match (self, o) {
            (Set::Intset(a), Set::Intset(b)) => a == b,
            (Set::Table(a), Set::Table(b)) => {
                a.len() == b.len() && a.iter().all(|(k, _)| b.contains_key(k.as_slice()))
            }
            _ => false,
        }
    }
}

impl std::fmt::Debug for Set {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Set::Intset(s) => write!(f, "{s:?}"),
            Set::Table(d) => {
                write!(f, "Table")?;
                f.debug_set().entries(d.iter().map(|(k, _)| k)).finish()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use std::collections::BTreeSet;

    fn members(s: &Set) -> BTreeSet<Vec<u8>> {
        s.iter().map(|m| m.to_vec()).collect()
    }

    #[test]
    fn encodings_follow_redis_7_0() {
        let mut s = Set::for_member(b"1");
        assert_eq!(s.encoding(), "intset");
        assert!(s.add(b"1", 512));
        assert!(!s.add(b"1", 512));
        // Not canonical integers: convert.
        for m in ["+1", "01", " 1", "-0", "1.0", "9223372036854775808"] {
            let mut t = Set::for_member(b"5");
            t.add(b"5", 512);
            assert!(t.add(m.as_bytes(), 512));
            assert_eq!(t.encoding(), "hashtable", "{m}");
            assert!(t.contains(b"5") && t.contains(m.as_bytes()));
        }
        assert_eq!(Set::for_member(b"a").encoding(), "hashtable");
        // Past the limit: the 4th insert with a limit of 3 converts.
        let mut s = Set::default();
        for i in 0..3 {
            s.add(i.to_string().as_bytes(), 3);
        }
        assert_eq!(s.encoding(), "intset");
        s.add(b"3", 3);
        assert_eq!(s.encoding(), "hashtable");
        // And never back.
        for i in 0..4 {
            assert!(s.remove(i.to_string().as_bytes()));
        }
        assert!(s.is_empty());
        assert_eq!(s.encoding(), "hashtable");
    }

    #[test]
    fn random_pop_scan_and_clone() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        for first in ["1", "a"] {
            let mut s = Set::for_member(first.as_bytes());
            let want: BTreeSet<Vec<u8>> = (0..50).map(|i| format!("{i}").into_bytes()).collect();
            for m in &want {
                s.add(m, 512);
            }
            if first == "a" {
                assert_eq!(s.encoding(), "hashtable");
            }
            let copy = s.clone();
            assert_eq!(copy, s);
            let r = s.random(&mut rng).unwrap().to_vec();
            assert!(want.contains(&r));
            let mut seen = BTreeSet::new();
            let mut c = 0;
            loop {
                c = s.scan(c, |m| {
                    seen.insert(m.to_vec());
                });
                if c == 0 {
                    break;
                }
            }
            assert_eq!(seen, want);
            let mut popped = BTreeSet::new();
            while let Some(m) = s.pop(&mut rng) {
                assert!(popped.insert(m));
            }
            assert_eq!(popped, want);
            assert_ne!(copy, s);
        }
        assert_ne!(Set::default(), Set::for_member(b"a"));
    }

    #[derive(Clone, Debug)]
    enum Op {
        Add(Vec<u8>),
        Remove(Vec<u8>),
    }

    fn member() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            4 => (-20i64..20).prop_map(|i| i.to_string().into_bytes()),
            1 => any::<i64>().prop_map(|i| i.to_string().into_bytes()),
            1 => prop::sample::select(vec!["a", "b", "+1", "01", "", "-0", " 2"])
                .prop_map(|s| s.as_bytes().to_vec()),
            1 => prop::collection::vec(any::<u8>(), 0..30),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![3 => member().prop_map(Op::Add), 1 => member().prop_map(Op::Remove)]
    }

    proptest! {
        #[test]
        fn behaves_like_a_btreeset(
            first in member(),
            ops in prop::collection::vec(op(), 0..200),
            max in 0usize..20,
        ) {
            let mut s = Set::for_member(&first);
            let mut model: BTreeSet<Vec<u8>> = BTreeSet::new();
            // The encoding the model predicts: intset while every member ever added
            // was an integer and the count never went past `max`.
            let mut table = parse_i64(&first).is_none();
            for op in ops {
                match op {
                    Op::Add(m) => {
                        prop_assert_eq!(s.add(&m, max), model.insert(m.clone()));
                        table |= parse_i64(&m).is_none() || model.len() > max;
                    }
                    Op::Remove(m) => prop_assert_eq!(s.remove(&m), model.remove(&m)),
                }
                prop_assert_eq!(s.len(), model.len());
                prop_assert_eq!(s.encoding(), if table { "hashtable" } else { "intset" });
            }
            prop_assert_eq!(members(&s), model.clone());
            for m in model.iter() {
                prop_assert!(s.contains(m));
            }
            prop_assert_eq!(s.clone(), s);
        }
    }
}
