//! The list type: what LPUSH, LRANGE, LREM and friends work on (Redis's `listType*`).
//!
//! Owns: the list operations in Redis's terms (ends, signed indexes counted from either
//! end, ranges clamped as LRANGE clamps them, LREM's signed count, LPOS's rank), on top
//! of the [`Quicklist`] that stores the elements. The one idea to hold: Redis 7.0 has one
//! list encoding, so a list is always a quicklist and OBJECT ENCODING always says
//! "quicklist", even for one element (the listpack encoding for small lists arrived in
//! 7.2). A list remembers the `list-max-listpack-size` it was created with, as Redis's
//! does; CONFIG SET affects lists created afterwards.

use super::listpack::{LpEntry, Where};
use super::quicklist::Quicklist;

/// An end of a list: LEFT / head, or RIGHT / tail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    Head,
    Tail,
}

#[derive(Clone, Debug, PartialEq)]
pub struct List {
    ql: Quicklist,
}

impl List {
    /// An empty list whose nodes follow `fill` (`list-max-listpack-size`).
    pub fn new(fill: i64) -> List {
        List {
            ql: Quicklist::new(fill),
        }
    }
    /// A list over an existing quicklist (RDB loading).
    pub fn from_quicklist(ql: Quicklist) -> List {
        List { ql }
    }
    /// The quicklist underneath (RDB saving, DEBUG).
    pub fn quicklist(&self) -> &Quicklist {
        &self.ql
    }

    /// The name OBJECT ENCODING reports.
    pub fn encoding(&self) -> &'static str {
        "quicklist"
    }
    pub fn len(&self) -> usize {
        self.ql.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ql.is_empty()
    }
    /// Approximate heap bytes owned (for INFO memory and MEMORY USAGE).
    pub fn heap_size(&self) -> usize {
        std::mem::size_of::<Quicklist>() + self.ql.heap_size()
    }

    /// Bytes MEMORY USAGE reports, sampling `samples` nodes (0: all).
    /// Quicklist nodes: the allocations freeing the list takes.
    pub fn nodes(&self) -> usize {
        self.ql.node_count()
    }

    pub fn memory_usage(&self, samples: usize) -> usize {
        std::mem::size_of::<List>() + self.ql.sampled_heap_size(samples)
    }

    pub fn push(&mut self, v: &[u8], end: End) {
        match end {
            End::Head => self.ql.push_front(v),
            End::Tail => self.ql.push_back(v),
        }
    }

    pub fn pop(&mut self, end: End) -> Option<Vec<u8>> {
        match end {
            End::Head => self.ql.pop_front(),
            End::Tail => self.ql.pop_back(),
        }
    }

    /// Pop up to `count` elements from `end`, in the order they are popped (LPOP /
    /// RPOP / LMPOP with COUNT). The result is sized by the list, not by `count`.
    pub fn pop_many(&mut self, end: End, count: usize) -> Vec<Vec<u8>> {
        let n = count.min(self.len());
        let (popped, start): (Vec<Vec<u8>>, usize) = match end {
            End::Head => (
                self.ql.iter_from(0).take(n).map(|e| e.to_vec()).collect(),
                0,
            ),
            End::Tail => {
                let last = self.len().saturating_sub(1);
                let v = self
                    .ql
                    .iter_back_from(last)
                    .take(n)
                    .map(|e| e.to_vec())
                    .collect();
                (v, self.len() - n)
            }
        };
        self.ql.delete_range(start, n);
        popped
    }

    /// A signed index (negative counts from the tail) as an index from the head.
    fn resolve(&self, index: i64) -> Option<usize> {
        let len = self.len() as i64;
        let i = if index < 0 { len + index } else { index };
        (0..len).contains(&i).then_some(i as usize)
    }

    /// The element at a signed index (LINDEX).
    pub fn get(&self, index: i64) -> Option<LpEntry<'_>> {
        self.ql.get(self.resolve(index)?)
    }

    /// Replace the element at a signed index (LSET); false if out of range.
    pub fn set(&mut self, index: i64, v: &[u8]) -> bool {
        match self.resolve(index) {
            Some(i) => self.ql.set(i, v),
            None => false,
        }
    }

    /// LRANGE's clamping of `start..=stop` (signed): the first index and the count.
    pub fn range_bounds(&self, start: i64, stop: i64) -> (usize, usize) {
        let len = self.len() as i64;
        let mut start = if start < 0 { len + start } else { start };
        let mut stop = if stop < 0 { len + stop } else { stop };
        start = start.max(0);
        if start > stop || start >= len {
            return (0, 0);
        }
        stop = stop.min(len - 1);
        (start as usize, (stop - start + 1) as usize)
    }

    /// The elements of `start..=stop` (signed, clamped as LRANGE), head to tail.
    pub fn range(&self, start: i64, stop: i64) -> impl Iterator<Item = LpEntry<'_>> + '_ {
        let (first, count) = self.range_bounds(start, stop);
        self.ql.iter_from(first).take(count)
    }

    /// All elements, head to tail.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = LpEntry<'_>> + '_ {
        self.ql.iter()
    }

    /// Keep only `start..=stop` (signed, clamped as LRANGE; LTRIM); returns how many
    /// elements were removed.
    pub fn trim(&mut self, start: i64, stop: i64) -> usize {
        let len = self.len();
        let (first, count) = self.range_bounds(start, stop);
        let (ltrim, rtrim) = if count == 0 {
            (len, 0)
        } else {
            (first, len - first - count)
        };
        self.ql.delete_range(0, ltrim);
        let left = self.len();
        self.ql.delete_range(left - rtrim, rtrim);
        ltrim + rtrim
    }

    /// Remove elements equal to `v` (LREM): `count` > 0 removes the first `count` from
    /// the head, < 0 the first `-count` from the tail, 0 all. Returns how many.
    pub fn remove(&mut self, v: &[u8], count: i64) -> usize {
        // `usize::try_from` saturation: i64::MIN's magnitude exceeds any list anyway.
        let limit = usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX);
        self.ql.remove_matching(v, limit, count < 0)
    }

    /// Insert `v` before or after the first element equal to `pivot` (LINSERT); false
    /// if there is none.
    pub fn insert(&mut self, pivot: &[u8], v: &[u8], place: Where) -> bool {
        match self.ql.find(pivot) {
            Some(i) => self.ql.insert(i, v, place),
            None => false,
        }
    }

    /// Indexes (from the head) of elements equal to `v`, as LPOS finds them: the
    /// search starts at the head for `rank` > 0 and at the tail for `rank` < 0, skips
    /// the first `|rank| - 1` matches, returns at most `count` (0: no limit) and looks
    /// at no more than `maxlen` elements (0: no limit). `rank` must not be 0.
    ///
    /// As Redis 7.0 (where negating LONG_MIN leaves it negative), `rank` i64::MIN
    /// searches from the tail and returns every match, whatever `count` says.
    pub fn positions(&self, v: &[u8], rank: i64, count: usize, maxlen: usize) -> Vec<usize> {
        let (skip, count) = match rank {
            i64::MIN => (0, 0),
            r => ((r.unsigned_abs() - 1) as usize, count),
        };
        let len = self.len();
        let scan = if maxlen == 0 { len } else { maxlen.min(len) };
        let mut found = Vec::new();
        let mut matches = 0usize;
        let mut visit = |i: usize, e: LpEntry<'_>| -> bool {
            if e.eq_bytes(v) {
                matches += 1;
                if matches > skip {
                    found.push(i);
                    if count != 0 && found.len() >= count {
                        return false;
                    }
                }
            }
            true
        };
        if rank > 0 {
            for (i, e) in self.ql.iter().take(scan).enumerate() {
                if !visit(i, e) {
                    break;
                }
            }
        } else {
            for (k, e) in self.ql.iter().rev().take(scan).enumerate() {
                if !visit(len - 1 - k, e) {
                    break;
                }
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    fn list_of(fill: i64, items: &[&str]) -> List {
        let mut l = List::new(fill);
        for i in items {
            l.push(i.as_bytes(), End::Tail);
        }
        l
    }
    fn contents(l: &List) -> Vec<String> {
        l.iter()
            .map(|e| String::from_utf8(e.to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn always_quicklist() {
        let l = list_of(-2, &["a"]);
        assert_eq!(l.encoding(), "quicklist");
    }

    #[test]
    fn ranges_clamp_like_lrange() {
        let l = list_of(2, &["a", "b", "c", "d", "e"]);
        let r = |s, e| -> Vec<String> {
            l.range(s, e)
                .map(|x| String::from_utf8(x.to_vec()).unwrap())
                .collect()
        };
        assert_eq!(r(0, -1), ["a", "b", "c", "d", "e"]);
        assert_eq!(r(-100, 1), ["a", "b"]);
        assert_eq!(r(3, 100), ["d", "e"]);
        assert!(r(4, 2).is_empty());
        assert!(r(5, 10).is_empty());
        assert!(r(i64::MIN, i64::MIN).is_empty());
        assert_eq!(r(-2, i64::MAX), ["d", "e"]);
    }

    #[test]
    fn trim_and_remove() {
        let mut l = list_of(3, &["a", "b", "a", "c", "a", "d"]);
        assert_eq!(l.remove(b"a", -2), 2);
        assert_eq!(contents(&l), ["a", "b", "c", "d"]);
        assert_eq!(l.trim(1, -2), 2);
        assert_eq!(contents(&l), ["b", "c"]);
        assert_eq!(l.trim(5, 1), 2);
        assert!(l.is_empty());
        let mut l = list_of(3, &["x", "x"]);
        assert_eq!(l.remove(b"x", i64::MIN), 2);
    }

    #[test]
    fn positions_like_lpos() {
        let l = list_of(2, &["a", "b", "c", "1", "2", "3", "c", "c"]);
        assert_eq!(l.positions(b"c", 1, 1, 0), [2]);
        assert_eq!(l.positions(b"c", -1, 1, 0), [7]);
        assert_eq!(l.positions(b"c", 2, 0, 0), [6, 7]);
        assert_eq!(l.positions(b"c", -2, 2, 0), [6, 2]);
        assert_eq!(l.positions(b"c", 1, 0, 3), [2]);
        assert_eq!(l.positions(b"c", i64::MIN, 1, 0), [7, 6, 2]);
        assert!(l.positions(b"c", i64::MAX, 1, 0).is_empty());
        assert_eq!(l.positions(b"1", 1, 1, 0), [3]);
    }

    #[test]
    fn pop_many_both_ends() {
        let mut l = list_of(2, &["a", "b", "c", "d", "e"]);
        assert_eq!(l.pop_many(End::Tail, 2), [b"e".to_vec(), b"d".to_vec()]);
        assert_eq!(l.pop_many(End::Head, 2), [b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(l.pop_many(End::Head, usize::MAX), [b"c".to_vec()]);
        assert!(l.is_empty());
    }

    #[derive(Clone, Debug)]
    enum Op {
        Push(Vec<u8>, bool),
        Pop(bool),
        PopMany(bool, usize),
        Set(i64, Vec<u8>),
        Trim(i64, i64),
        Remove(Vec<u8>, i64),
        Insert(Vec<u8>, Vec<u8>, bool),
        Get(i64),
        Range(i64, i64),
        Positions(Vec<u8>, i64, usize, usize),
    }

    fn value() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            prop::sample::select(vec!["a", "b", "7", "-1", "hello"])
                .prop_map(|s| s.as_bytes().to_vec()),
            prop::collection::vec(Just(b'q'), 50..300),
        ]
    }
    fn idx() -> impl Strategy<Value = i64> {
        prop_oneof![-30i64..30, Just(i64::MIN), Just(i64::MAX)]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (value(), any::<bool>()).prop_map(|(v, h)| Op::Push(v, h)),
            1 => any::<bool>().prop_map(Op::Pop),
            1 => (any::<bool>(), 0..6usize).prop_map(|(h, n)| Op::PopMany(h, n)),
            1 => (idx(), value()).prop_map(|(i, v)| Op::Set(i, v)),
            1 => (idx(), idx()).prop_map(|(a, b)| Op::Trim(a, b)),
            1 => (value(), -3i64..3).prop_map(|(v, c)| Op::Remove(v, c)),
            2 => (value(), value(), any::<bool>()).prop_map(|(p, v, a)| Op::Insert(p, v, a)),
            1 => idx().prop_map(Op::Get),
            1 => (idx(), idx()).prop_map(|(a, b)| Op::Range(a, b)),
            1 => (value(), prop_oneof![-3i64..0, 1i64..4], 0..3usize, 0..10usize)
                .prop_map(|(v, r, c, m)| Op::Positions(v, r, c, m)),
        ]
    }

    /// The model's view of a signed index.
    fn model_index(len: usize, i: i64) -> Option<usize> {
        let i = if i < 0 { len as i64 + i } else { i };
        (0..len as i64).contains(&i).then_some(i as usize)
    }
    fn model_range(len: usize, s: i64, e: i64) -> std::ops::Range<usize> {
        let len = len as i64;
        let s = if s < 0 { len + s } else { s }.max(0);
        let e = if e < 0 { len + e } else { e };
        if s > e || s >= len {
            0..0
        } else {
            s as usize..(e.min(len - 1) + 1) as usize
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn matches_vecdeque(fill in prop::sample::select(vec![1i64, 2, 4, -1, -2]),
                            ops in prop::collection::vec(op(), 1..120)) {
            let mut l = List::new(fill);
            let mut m: VecDeque<Vec<u8>> = VecDeque::new();
            for op in ops {
                match op {
                    Op::Push(v, head) => {
                        l.push(&v, if head { End::Head } else { End::Tail });
                        if head { m.push_front(v) } else { m.push_back(v) }
                    }
                    Op::Pop(head) => {
                        let want = if head { m.pop_front() } else { m.pop_back() };
                        prop_assert_eq!(l.pop(if head { End::Head } else { End::Tail }), want);
                    }
                    Op::PopMany(head, n) => {
                        let mut want = Vec::new();
                        for _ in 0..n {
                            if let Some(v) = if head { m.pop_front() } else { m.pop_back() } {
                                want.push(v);
                            }
                        }
                        prop_assert_eq!(l.pop_many(if head { End::Head } else { End::Tail }, n), want);
                    }
                    Op::Set(i, v) => {
                        let at = model_index(m.len(), i);
                        prop_assert_eq!(l.set(i, &v), at.is_some());
                        if let Some(at) = at { m[at] = v; }
                    }
                    Op::Trim(s, e) => {
                        let r = model_range(m.len(), s, e);
                        let removed = m.len() - r.len();
                        m = m.drain(r).collect();
                        prop_assert_eq!(l.trim(s, e), removed);
                    }
                    Op::Remove(v, c) => {
                        let limit = c.unsigned_abs() as usize;
                        let order: Vec<usize> = if c < 0 { (0..m.len()).rev().collect() } else { (0..m.len()).collect() };
                        let mut gone: Vec<usize> = order.into_iter().filter(|&i| m[i] == v).collect();
                        if limit != 0 { gone.truncate(limit); }
                        gone.sort_unstable();
                        for &i in gone.iter().rev() { m.remove(i); }
                        prop_assert_eq!(l.remove(&v, c), gone.len());
                    }
                    Op::Insert(p, v, after) => {
                        let at = m.iter().position(|x| *x == p);
                        let place = if after { Where::After } else { Where::Before };
                        prop_assert_eq!(l.insert(&p, &v, place), at.is_some());
                        if let Some(at) = at { m.insert(if after { at + 1 } else { at }, v); }
                    }
                    Op::Get(i) => {
                        let want = model_index(m.len(), i).map(|i| m[i].clone());
                        prop_assert_eq!(l.get(i).map(|e| e.to_vec()), want);
                    }
                    Op::Range(s, e) => {
                        let got: Vec<_> = l.range(s, e).map(|e| e.to_vec()).collect();
                        let want: Vec<_> = m.range(model_range(m.len(), s, e)).cloned().collect();
                        prop_assert_eq!(got, want);
                    }
                    Op::Positions(v, rank, count, maxlen) => {
                        let len = m.len();
                        let scan = if maxlen == 0 { len } else { maxlen.min(len) };
                        let order: Vec<usize> = if rank > 0 { (0..scan).collect() } else { (len - scan..len).rev().collect() };
                        let mut want: Vec<usize> = order.into_iter().filter(|&i| m[i] == v)
                            .skip(rank.unsigned_abs() as usize - 1).collect();
                        if count != 0 { want.truncate(count); }
                        prop_assert_eq!(l.positions(&v, rank, count, maxlen), want);
                    }
                }
                prop_assert_eq!(l.len(), m.len());
                let got: Vec<_> = l.iter().map(|e| e.to_vec()).collect();
                prop_assert_eq!(got, m.iter().cloned().collect::<Vec<_>>());
            }
        }
    }
}
