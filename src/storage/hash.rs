//! Hash values (the data half of Redis's `t_hash.c`): a listpack of field, value, field,
//! value ... while small, a dict of field → value once large.
//!
//! The one idea to hold: the encoding is part of the contract (OBJECT ENCODING shows it)
//! and follows redis-server 7.0 exactly. A hash starts as a listpack and becomes a
//! hashtable, never back, at the first write that leaves more than
//! `hash-max-listpack-entries` fields (converted after the write, an update included:
//! the limit may have been lowered since the inserts) or that carries a field or value
//! longer than `hash-max-listpack-value` bytes (converted before it).
//! Commands that take many arguments call [`Hash::prepare_write`] first, as Redis's
//! `hashTypeTryConversion` does: it looks at every argument, even those that will only
//! update a field. A listpack keeps insertion order (replies list fields in that order);
//! the dict's order is its own.
//!
//! The random picks (HRANDFIELD) and the SCAN step reproduce Redis's algorithms, so the
//! shape of their results (unique or not, order, how much one SCAN call returns) is
//! Redis's; only the random choices themselves differ.

use super::listpack::{Listpack, LpEntry, LpSlice, Packed};
use super::{CompactBytes, Dict};
use crate::config::EncodingLimits;
use rand::Rng;
use std::collections::HashSet;

/// A field or value as read: listpacks keep integer-looking strings as integers.
pub type Item<'a> = LpEntry<'a>;

pub enum Hash {
    /// field, value, field, value ... in insertion order, at its exact size (16 bytes
    /// here, so that a hash needs no box of its own in its `Value`).
    Listpack(Packed),
    /// Boxed: the dict header is 88 bytes, a listpack 24, and most hashes are small.
    Table(Box<Dict<CompactBytes, CompactBytes>>),
}

/// What [`Hash::set`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetOutcome {
    Inserted,
    Updated,
}

/// HRANDFIELD's `count*3 > size` rule (Redis's `HRANDFIELD_SUB_STRATEGY_MUL`).
const SUB_STRATEGY_MUL: u64 = 3;

impl Default for Hash {
    fn default() -> Self {
        Self::new()
    }
}

impl Hash {
    /// An empty hash, listpack-encoded (as `createHashObject`).
    pub fn new() -> Self {
        Hash::Listpack(Packed::from(Listpack::new()))
    }

    /// The name OBJECT ENCODING reports.
    pub fn encoding(&self) -> &'static str {
        match self {
            Hash::Listpack(_) => "listpack",
            Hash::Table(_) => "hashtable",
        }
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        match self {
            Hash::Listpack(lp) => lp.len() / 2,
            Hash::Table(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        match self {
            Hash::Listpack(lp) => lp.is_empty(),
            Hash::Table(t) => t.is_empty(),
        }
    }

    /// Approximate heap bytes owned (for INFO memory and MEMORY USAGE): a dict node is
    /// two 24-byte strings and a pointer, plus a bucket pointer, plus long strings.
    /// Bytes MEMORY USAGE reports: a table's entries are sampled (`samples` of them,
    /// 0: all) and extrapolated, as Redis does.
    pub fn memory_usage(&self, samples: usize) -> usize {
        // (The `Hash` itself lives in the key's entry.)
        match self {
            Hash::Listpack(lp) => super::alloc_size(lp.heap_size()),
            Hash::Table(t) => {
                let node =
                    super::alloc_size(std::mem::size_of::<(CompactBytes, CompactBytes, usize)>());
                let per = super::sampled_mean(t.iter(), samples, |(k, v)| {
                    node + super::alloc_size(k.heap_size()) + super::alloc_size(v.heap_size())
                });
                std::mem::size_of::<Dict<CompactBytes, CompactBytes>>()
                    + t.buckets() * 8
                    + per * t.len()
            }
        }
    }

    pub fn heap_size(&self) -> usize {
        match self {
            Hash::Listpack(lp) => lp.heap_size(),
            Hash::Table(t) => {
                let nodes: usize = t
                    .iter()
                    .map(|(k, v)| 56 + k.heap_size() + v.heap_size())
                    .sum();
                t.buckets() * 8 + nodes
            }
        }
    }

    /// Convert to a hashtable if writing `args` (fields and values) could not stay a
    /// listpack: one is longer than `hash-max-listpack-value`, or all of them together
    /// would push the listpack past its 1 GiB limit (Redis's `hashTypeTryConversion`).
    pub fn prepare_write<'a>(
        &mut self,
        args: impl IntoIterator<Item = &'a [u8]>,
        limits: &EncodingLimits,
    ) {
        let Hash::Listpack(lp) = self else { return };
        let mut sum = 0usize;
        for a in args {
            if a.len() > limits.hash_max_listpack_value {
                self.convert();
                return;
            }
            sum = sum.saturating_add(a.len());
        }
        if !lp.safe_to_add(sum) {
            self.convert();
        }
    }

    /// Turn a listpack into a hashtable (no-op if it already is one).
    fn convert(&mut self) {
        let Hash::Listpack(lp) = self else { return };
        let mut t = Dict::new();
        for (f, v) in pairs(lp) {
            t.insert(item_bytes(f), item_bytes(v));
        }
        *self = Hash::Table(Box::new(t));
    }

    /// Position of `field`'s entry in a field/value listpack.
    fn lp_find(lp: &LpSlice, field: &[u8]) -> Option<usize> {
        lp.find(lp.first()?, field, 1)
    }

    /// The value of `field`.
    pub fn get(&self, field: &[u8]) -> Option<Item<'_>> {
        match self {
            Hash::Listpack(lp) => {
                let f = Self::lp_find(lp, field)?;
                Some(lp.get(lp.next(f)?))
            }
            Hash::Table(t) => t.get(field).map(|v| LpEntry::Str(v)),
        }
    }

    pub fn contains(&self, field: &[u8]) -> bool {
        match self {
            Hash::Listpack(lp) => Self::lp_find(lp, field).is_some(),
            Hash::Table(t) => t.contains_key(field),
        }
    }

    /// Set `field` to `value` (Redis's `hashTypeSet`): a long field or value converts
    /// the listpack first; more fields than the limit convert it after the write (an
    /// update included, which matters once the limit was lowered).
    pub fn set(&mut self, field: &[u8], value: &[u8], limits: &EncodingLimits) -> SetOutcome {
        if matches!(self, Hash::Listpack(_))
            && (field.len() > limits.hash_max_listpack_value
                || value.len() > limits.hash_max_listpack_value)
        {
            self.convert();
        }
        match self {
            Hash::Listpack(lp) => {
                let outcome = match Self::lp_find(lp, field).and_then(|f| lp.next(f)) {
                    Some(v) => {
                        lp.edit(|lp| lp.replace(v, value));
                        SetOutcome::Updated
                    }
                    None => {
                        lp.edit(|lp| {
                            lp.push_back(field);
                            lp.push_back(value);
                        });
                        SetOutcome::Inserted
                    }
                };
                // Checked after updates too: a lowered limit (CONFIG SET) converts at
                // the next write.
                if lp.len() / 2 > limits.hash_max_listpack_entries {
                    self.convert();
                }
                outcome
            }
            Hash::Table(t) => match t.get_mut(field) {
                Some(v) => {
                    *v = CompactBytes::new(value);
                    SetOutcome::Updated
                }
                None => {
                    t.insert(CompactBytes::new(field), CompactBytes::new(value));
                    SetOutcome::Inserted
                }
            },
        }
    }

    /// Remove `field`; true if it was there. A mostly empty dict starts shrinking.
    pub fn delete(&mut self, field: &[u8]) -> bool {
        match self {
            Hash::Listpack(lp) => {
                let Some(f) = Self::lp_find(lp, field) else {
                    return false;
                };
                lp.edit(|lp| {
                    if let Some(v) = lp.delete(f) {
                        lp.delete(v);
                    }
                });
                true
            }
            Hash::Table(t) => {
                let found = t.remove(field).is_some();
                if found {
                    t.shrink_if_needed();
                }
                found
            }
        }
    }

    /// Every (field, value): a listpack's in insertion order, a dict's in its own.
    pub fn iter(&self) -> impl Iterator<Item = (Item<'_>, Item<'_>)> + '_ {
        let (lp, table) = match self {
            Hash::Listpack(lp) => (Some(lp), None),
            Hash::Table(t) => (None, Some(t)),
        };
        let from_lp = lp.into_iter().flat_map(|lp| pairs(lp));
        let from_table = table
            .into_iter()
            .flat_map(|t| t.iter().map(|(k, v)| (LpEntry::Str(k), LpEntry::Str(v))));
        from_lp.chain(from_table)
    }

    /// One uniformly chosen (field, value) (Redis's `hashTypeRandomElement`).
    pub fn random_pair<R: Rng>(&mut self, rng: &mut R) -> Option<(Item<'_>, Item<'_>)> {
        match self {
            Hash::Listpack(lp) => {
                let n = lp.len() / 2;
                if n == 0 {
                    return None;
                }
                let f = lp.seek(2 * rng.gen_range(0..n) as i64)?;
                Some((lp.get(f), lp.get(lp.next(f)?)))
            }
            Hash::Table(t) => t
                .random_entry(rng)
                .map(|(k, v)| (LpEntry::Str(k), LpEntry::Str(v))),
        }
    }

    /// HRANDFIELD's picks for a count, as Redis 7.0's `hrandfieldWithCountCommand`
    /// makes them, handed to `emit` one at a time (so a caller can stream-build its
    /// reply). `unique` false: exactly `count` independent uniform picks, in random
    /// order. `unique` true: `min(count, len)` distinct fields: the whole hash when
    /// `count >= len`; a listpack's in listpack order (`lpRandomPairsUnique`'s
    /// selection sampling); a dict's by removing random fields from a copy when
    /// `count * 3 > len`, else by drawing random fields until enough distinct ones.
    pub fn random_pairs<R: Rng>(
        &mut self,
        rng: &mut R,
        count: u64,
        unique: bool,
        mut emit: impl FnMut(Item<'_>, Item<'_>),
    ) {
        let size = self.len() as u64;
        if count == 0 || size == 0 {
            return;
        }
        if !unique || count == 1 {
            match self {
                // lpRandomPairs: independent uniform picks (what sorting and reordering
                // them in Redis amounts to).
                Hash::Listpack(lp) => {
                    let all: Vec<_> = pairs(lp).collect();
                    for _ in 0..count {
                        let (f, v) = all[rng.gen_range(0..all.len())];
                        emit(f, v);
                    }
                }
                Hash::Table(t) => {
                    for _ in 0..count {
                        if let Some((k, v)) = t.random_entry(rng) {
                            emit(LpEntry::Str(k), LpEntry::Str(v));
                        }
                    }
                }
            }
            return;
        }
        if count >= size {
            self.iter().for_each(|(f, v)| emit(f, v));
            return;
        }
        match self {
            Hash::Listpack(lp) => {
                // lpRandomPairsUnique: visit each pair once, taking it with probability
                // (still wanted) / (still unvisited).
                let mut remaining = count;
                for (index, (f, v)) in pairs(lp).enumerate() {
                    if remaining == 0 {
                        break;
                    }
                    let threshold = remaining as f64 / (size - index as u64) as f64;
                    if rng.gen::<f64>() <= threshold {
                        emit(f, v);
                        remaining -= 1;
                    }
                }
            }
            Hash::Table(t) if count * SUB_STRATEGY_MUL > size => {
                let mut all: Vec<_> = t.iter().collect();
                while all.len() as u64 > count {
                    all.swap_remove(rng.gen_range(0..all.len()));
                }
                for (k, v) in all {
                    emit(LpEntry::Str(k), LpEntry::Str(v));
                }
            }
            Hash::Table(t) => {
                // count < size / 3 here, so the set stays small.
                let mut seen: HashSet<CompactBytes> = HashSet::new();
                while (seen.len() as u64) < count {
                    let Some((k, v)) = t.random_entry(rng) else {
                        return;
                    };
                    if seen.insert(k.clone()) {
                        emit(LpEntry::Str(k), LpEntry::Str(v));
                    }
                }
            }
        }
    }

    /// One HSCAN step from `cursor` (Redis's `scanGenericCommand`): a listpack gives
    /// everything at once and cursor 0; a dict visits buckets until it has handed out
    /// `count` fields (counting a field and its value as two of `2 * count` entries,
    /// as Redis does), the iteration ends, or `20 * count` further buckets were visited.
    /// Returns the next cursor.
    pub fn scan(&self, cursor: u64, count: usize, mut emit: impl FnMut(Item<'_>, Item<'_>)) -> u64 {
        match self {
            Hash::Listpack(_) => {
                self.iter().for_each(|(f, v)| emit(f, v));
                0
            }
            Hash::Table(t) => {
                let want = count.saturating_mul(2);
                let mut budget = want.saturating_mul(10);
                let mut got = 0usize;
                let mut cursor = cursor;
                loop {
                    cursor = t.scan(cursor, |k, v| {
                        got += 2;
                        emit(LpEntry::Str(k), LpEntry::Str(v));
                    });
                    if cursor == 0 || budget == 0 || got >= want {
                        return cursor;
                    }
                    budget -= 1;
                }
            }
        }
    }
}

/// A listpack's entries two by two.
fn pairs(lp: &LpSlice) -> impl Iterator<Item = (Item<'_>, Item<'_>)> + '_ {
    let mut it = lp.iter();
    std::iter::from_fn(move || Some((it.next()?, it.next()?)))
}

fn item_bytes(e: Item<'_>) -> CompactBytes {
    match e {
        LpEntry::Str(s) => CompactBytes::new(s),
        LpEntry::Int(i) => CompactBytes::new(itoa::Buffer::new().format(i).as_bytes()),
    }
}

impl Clone for Hash {
    fn clone(&self) -> Self {
        match self {
            Hash::Listpack(lp) => Hash::Listpack(lp.clone()),
            Hash::Table(t) => {
                let mut c = Dict::new();
                for (k, v) in t.iter() {
                    c.insert(k.clone(), v.clone());
                }
                Hash::Table(Box::new(c))
            }
        }
    }
}

impl PartialEq for Hash {
    /// Same encoding and same contents (a listpack's order included).
    fn eq(&self, o: &Self) -> bool {
        match (self, o) {
            (Hash::Listpack(a), Hash::Listpack(b)) => a == b,
            (Hash::Table(a), Hash::Table(b)) => {
                a.len() == b.len() && a.iter().all(|(k, v)| b.get(&k[..]) == Some(v))
            }
            _ => false,
        }
    }
}

impl std::fmt::Debug for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |e: Item<'_>| String::from_utf8_lossy(&e.to_vec()).into_owned();
        f.debug_map()
            .entries(self.iter().map(|(k, v)| (show(k), show(v))))
            .finish()?;
        write!(f, " ({})", self.encoding())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;
    use std::collections::{BTreeMap, HashMap};

    fn limits(entries: usize, value: usize) -> EncodingLimits {
        EncodingLimits {
            hash_max_listpack_entries: entries,
            hash_max_listpack_value: value,
            ..EncodingLimits::default()
        }
    }

    fn contents(h: &Hash) -> BTreeMap<Vec<u8>, Vec<u8>> {
        h.iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect()
    }

    #[test]
    fn thresholds_as_redis() {
        let l = limits(4, 8);
        let mut h = Hash::new();
        for i in 0..4 {
            assert_eq!(
                h.set(format!("f{i}").as_bytes(), b"v", &l),
                SetOutcome::Inserted
            );
        }
        assert_eq!(h.encoding(), "listpack");
        // Updates never convert on count; a value of exactly the limit stays.
        assert_eq!(h.set(b"f0", b"12345678", &l), SetOutcome::Updated);
        assert_eq!(h.encoding(), "listpack");
        // The fifth field converts (after the insert).
        h.set(b"f4", b"v", &l);
        assert_eq!(h.encoding(), "hashtable");
        assert_eq!(h.len(), 5);
        // A lowered limit converts at the next write, even an update.
        let mut g = Hash::new();
        for i in 0..4 {
            g.set(format!("f{i}").as_bytes(), b"v", &l);
        }
        g.delete(b"f9");
        assert_eq!(g.encoding(), "listpack");
        assert_eq!(g.set(b"f0", b"w", &limits(3, 8)), SetOutcome::Updated);
        assert_eq!(g.encoding(), "hashtable");
        // Never back.
        h.delete(b"f4");
        h.delete(b"f3");
        assert_eq!(h.encoding(), "hashtable");

        // A long value converts before the insert, even as an update.
        let mut h = Hash::new();
        h.set(b"a", b"1", &l);
        assert_eq!(h.set(b"a", b"123456789", &l), SetOutcome::Updated);
        assert_eq!(h.encoding(), "hashtable");
        assert_eq!(h.get(b"a").map(|v| v.to_vec()), Some(b"123456789".to_vec()));

        // prepare_write looks at every argument.
        let mut h = Hash::new();
        h.prepare_write([&b"a"[..], b"123456789"], &l);
        assert_eq!(h.encoding(), "hashtable");
        let mut h = Hash::new();
        h.prepare_write([&b"a"[..], b"12345678"], &l);
        assert_eq!(h.encoding(), "listpack");
    }

    #[test]
    fn integers_read_back_as_written() {
        let l = EncodingLimits::default();
        let mut h = Hash::new();
        for v in ["12", "-7", "007", "-0", "9223372036854775807", "1e3", ""] {
            h.set(v.as_bytes(), v.as_bytes(), &l);
        }
        for v in ["12", "-7", "007", "-0", "9223372036854775807", "1e3", ""] {
            assert_eq!(
                h.get(v.as_bytes()).map(|e| e.to_vec()),
                Some(v.as_bytes().to_vec())
            );
        }
        assert_eq!(h.len(), 7);
    }

    #[test]
    fn random_pairs_shapes() {
        let mut rng = SmallRng::seed_from_u64(7);
        for (entries, n) in [(512, 10usize), (4, 10), (4, 100)] {
            let l = limits(entries, 64);
            let mut h = Hash::new();
            for i in 0..n {
                h.set(format!("f{i}").as_bytes(), format!("{i}").as_bytes(), &l);
            }
            let model = contents(&h);
            for count in [1u64, 2, 5, 9, 10, 11, 30, 40, 1000] {
                for unique in [true, false] {
                    let mut got = Vec::new();
                    h.random_pairs(&mut rng, count, unique, |f, v| {
                        got.push((f.to_vec(), v.to_vec()))
                    });
                    let want = if unique { count.min(n as u64) } else { count };
                    assert_eq!(got.len() as u64, want, "count {count} unique {unique}");
                    for (f, v) in &got {
                        assert_eq!(model.get(f), Some(v));
                    }
                    if unique {
                        let distinct: HashSet<_> = got.iter().collect();
                        assert_eq!(distinct.len(), got.len());
                    }
                }
            }
        }
    }

    #[test]
    fn unique_picks_cover_every_field() {
        // Each strategy must be able to pick every field.
        let mut rng = SmallRng::seed_from_u64(1);
        for (entries, n, count) in [(512, 12usize, 5u64), (4, 12, 5), (4, 30, 3)] {
            let l = limits(entries, 64);
            let mut h = Hash::new();
            for i in 0..n {
                h.set(format!("f{i}").as_bytes(), b"v", &l);
            }
            let mut hits: HashMap<Vec<u8>, usize> = HashMap::new();
            for _ in 0..2000 {
                h.random_pairs(&mut rng, count, true, |f, _| {
                    *hits.entry(f.to_vec()).or_default() += 1
                });
            }
            assert_eq!(hits.len(), n, "{} of {n} fields picked", hits.len());
        }
    }

    #[test]
    fn scan_listpack_is_one_call() {
        let l = EncodingLimits::default();
        let mut h = Hash::new();
        for i in 0..20 {
            h.set(format!("f{i}").as_bytes(), b"v", &l);
        }
        let mut n = 0;
        assert_eq!(h.scan(0, 1, |_, _| n += 1), 0);
        assert_eq!(n, 20);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Set(u8, Vec<u8>),
        Prepare(Vec<u8>),
        Delete(u8),
        /// CONFIG SET hash-max-listpack-entries.
        Relimit(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        let value = prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..8),
            (0i64..200).prop_map(|i| i.to_string().into_bytes()),
            Just(b"-0".to_vec()),
        ];
        prop_oneof![
            4 => (0u8..12, value.clone()).prop_map(|(f, v)| Op::Set(f, v)),
            1 => value.prop_map(Op::Prepare),
            2 => (0u8..12).prop_map(Op::Delete),
            1 => (0usize..8).prop_map(Op::Relimit),
        ]
    }

    /// Field names: some integer-looking, some long (up to 7 bytes).
    fn field(f: u8) -> Vec<u8> {
        match f % 3 {
            0 => f.to_string().into_bytes(),
            1 => format!("f{f}").into_bytes(),
            _ => vec![b'x'; f as usize / 2],
        }
    }

    proptest! {
        #[test]
        fn behaves_like_btreemap(
            ops in proptest::collection::vec(op(), 0..200),
            entries in 0usize..8,
            value in 0usize..7,
        ) {
            let mut l = limits(entries, value);
            let mut h = Hash::new();
            let mut m: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
            let mut converted = false;
            for op in ops {
                match op {
                    Op::Set(f, v) => {
                        let f = field(f);
                        converted |= f.len() > value || v.len() > value;
                        let want = if m.insert(f.clone(), v.clone()).is_some() {
                            SetOutcome::Updated
                        } else {
                            SetOutcome::Inserted
                        };
                        prop_assert_eq!(h.set(&f, &v, &l), want);
                        converted |= m.len() > l.hash_max_listpack_entries;
                    }
                    Op::Prepare(v) => {
                        converted |= v.len() > value;
                        h.prepare_write([&v[..]], &l);
                    }
                    Op::Delete(f) => {
                        let f = field(f);
                        prop_assert_eq!(h.delete(&f), m.remove(&f).is_some());
                    }
                    Op::Relimit(n) => l.hash_max_listpack_entries = n,
                }
                prop_assert_eq!(h.len(), m.len());
                prop_assert_eq!(h.is_empty(), m.is_empty());
                prop_assert_eq!(h.encoding(), if converted { "hashtable" } else { "listpack" });
            }
            prop_assert_eq!(contents(&h), m.clone());
            for f in 0..12u8 {
                let f = field(f);
                prop_assert_eq!(h.get(&f).map(|v| v.to_vec()), m.get(&f).cloned());
                prop_assert_eq!(h.contains(&f), m.contains_key(&f));
            }
            // A clone is equal and independent.
            let c = h.clone();
            prop_assert_eq!(&c, &h);
            // A full scan returns each field once, with its value.
            let mut seen = Vec::new();
            let mut cursor = 0;
            loop {
                cursor = h.scan(cursor, 1, |f, v| seen.push((f.to_vec(), v.to_vec())));
                if cursor == 0 { break; }
            }
            prop_assert_eq!(seen.len(), m.len());
            prop_assert_eq!(seen.into_iter().collect::<BTreeMap<_, _>>(), m);
        }
    }
}
