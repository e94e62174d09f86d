//! Quicklist: Redis 7.0's list encoding, a deque of listpack nodes.
//!
//! Owns: the nodes of one list and the rules that decide how elements are spread over
//! them. The one idea to hold: the *fill* (`list-max-listpack-size`, captured when the
//! list is created, as Redis's `quicklistSetOptions`) bounds every node, and the rules
//! that apply it are Redis's own (`_quicklistNodeAllowInsert`, `_quicklistNodeAllowMerge`,
//! `_quicklistInsert`'s split, `_quicklistMergeNodes`), so the nodes (and with them the
//! RDB bytes and memory use) come out as redis-server's do:
//! - a negative fill -1..-5 caps a node's listpack at 4, 8, 16, 32 or 64 KiB;
//! - a positive fill caps a node's entry count, and a node also stays within the 8 KiB
//!   safety limit, so a few big elements never make one huge listpack;
//! - size estimates use the element's raw length plus 8 bytes of entry overhead
//!   (`SIZE_ESTIMATE_OVERHEAD`), as Redis estimates before it encodes.
//!
//! As in Redis, only an insert that splits a full node tries to merge the neighbours
//! around it; pops, LREM and trims just drop nodes that become empty.
//!
//! Not done (and not observable through replies): LZF compression of inner nodes
//! (`list-compress-depth`), and "plain" nodes for elements of 1 GiB or more (such an
//! element gets a listpack node of its own).
//!
//! Nodes live in a `VecDeque` rather than a linked list: a node is 32 bytes, so moving
//! a few when one is inserted in the middle is cheaper than chasing pointers, and
//! seeking an index walks node counts from the nearer end, as Redis does.

use super::listpack::{Listpack, LpEntry, Where};
use std::collections::VecDeque;

/// Node size caps for fills -1..-5 (`optimization_level`).
const SIZE_LEVELS: [usize; 5] = [4096, 8192, 16384, 32768, 65536];
/// Size cap of a node when the fill counts entries (`SIZE_SAFETY_LIMIT`).
const SIZE_SAFETY_LIMIT: usize = 8192;
/// Estimated per-entry overhead when checking whether an element fits
/// (`SIZE_ESTIMATE_OVERHEAD`).
const SIZE_ESTIMATE_OVERHEAD: usize = 8;
/// Largest fill (`FILL_MAX`: the 16-bit signed fill field).
const FILL_MAX: i64 = (1 << 15) - 1;

/// One node: a listpack and its entry count (cached, as `quicklistNode.count`).
#[derive(Clone, Debug, PartialEq)]
struct Node {
    lp: Listpack,
    count: usize,
}

impl Node {
    fn with(v: &[u8]) -> Node {
        let mut lp = Listpack::new();
        lp.push_back(v);
        Node { lp, count: 1 }
    }
    fn from_listpack(lp: Listpack) -> Node {
        let count = lp.len();
        Node { lp, count }
    }
    /// `node->sz`: the listpack's total bytes.
    fn size(&self) -> usize {
        self.lp.bytes()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Quicklist {
    nodes: VecDeque<Node>,
    /// Total entries over all nodes.
    len: usize,
    /// Clamped to -5..=32767, as `quicklistSetFill`.
    fill: i32,
}

/// True if a node of `size` bytes meets a negative (size) fill.
fn meets_size_level(size: usize, fill: i32) -> bool {
    fill < 0 && size <= SIZE_LEVELS[(-fill - 1) as usize]
}

impl Quicklist {
    /// An empty quicklist with `fill` (`list-max-listpack-size`), clamped as Redis does.
    pub fn new(fill: i64) -> Quicklist {
        Quicklist {
            nodes: VecDeque::new(),
            len: 0,
            fill: fill.clamp(-5, FILL_MAX) as i32,
        }
    }

    pub fn fill(&self) -> i32 {
        self.fill
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Number of listpack nodes.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }
    /// The nodes' listpacks from head to tail (what an RDB file stores).
    pub fn listpacks(&self) -> impl DoubleEndedIterator<Item = &Listpack> + '_ {
        self.nodes.iter().map(|n| &n.lp)
    }
    /// Append a whole listpack as a new tail node (RDB loading, as
    /// `quicklistAppendListpack`); an empty one is dropped.
    pub fn append_listpack(&mut self, lp: Listpack) {
        let node = Node::from_listpack(lp);
        if node.count > 0 {
            self.len += node.count;
            self.first_node_room();
            self.nodes.push_back(node);
        }
    }

    /// Most lists have one node: the first gets room for itself only (a VecDeque
    /// would reserve four, 96 bytes more per small list).
    fn first_node_room(&mut self) {
        if self.nodes.capacity() == 0 {
            self.nodes.reserve_exact(1);
        }
    }

    /// Approximate heap bytes owned.
    pub fn heap_size(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<Node>()
            + self.nodes.iter().map(|n| n.lp.heap_size()).sum::<usize>()
    }

    /// [`Quicklist::heap_size`] from the first `samples` nodes' listpacks (0: all),
    /// extrapolated to every node, as Redis's MEMORY USAGE samples a quicklist.
    pub fn sampled_heap_size(&self, samples: usize) -> usize {
        let n = if samples == 0 {
            self.nodes.len()
        } else {
            samples.min(self.nodes.len())
        };
        let sampled: usize = self
            .nodes
            .iter()
            .take(n)
            .map(|n| super::alloc_size(n.lp.heap_size()))
            .sum();
        self.nodes.capacity() * std::mem::size_of::<Node>()
            + sampled.checked_div(n).unwrap_or(0) * self.nodes.len()
    }

    /// `_quicklistNodeAllowInsert`: may an element of `sz` bytes join `node`?
    fn allows_insert(&self, node: Option<&Node>, sz: usize) -> bool {
        let Some(node) = node else {
            return false;
        };
        let new_size = node
            .size()
            .saturating_add(sz)
            .saturating_add(SIZE_ESTIMATE_OVERHEAD);
        if meets_size_level(new_size, self.fill) {
            true
        } else if new_size > SIZE_SAFETY_LIMIT {
            false
        } else {
            (node.count as i64) < self.fill as i64
        }
    }

    /// `_quicklistNodeAllowMerge` for the nodes at `a` and `b`.
    fn allows_merge(&self, a: usize, b: usize) -> bool {
        let (Some(a), Some(b)) = (self.nodes.get(a), self.nodes.get(b)) else {
            return false;
        };
        // Approximate merged size: one header/terminator fewer (Redis subtracts 11).
        let merged = (a.size() + b.size()).saturating_sub(11);
        if meets_size_level(merged, self.fill) {
            true
        } else if merged > SIZE_SAFETY_LIMIT {
            false
        } else {
            ((a.count + b.count) as i64) <= self.fill as i64
        }
    }

    /// Merge node `a + 1` into node `a` (`_quicklistListpackMerge`: a's entries, then
    /// b's, in whichever listpack is bigger).
    fn merge_with_next(&mut self, a: usize) {
        let Some(b) = self.nodes.remove(a + 1) else {
            return;
        };
        let first = &mut self.nodes[a];
        if first.size() >= b.size() {
            for e in b.lp.iter() {
                push_entry(&mut first.lp, e);
            }
        } else {
            let mut lp = Listpack::new();
            for e in first.lp.iter().chain(b.lp.iter()) {
                push_entry(&mut lp, e);
            }
            first.lp = lp;
        }
        first.count += b.count;
    }

    /// `_quicklistMergeNodes`: try to merge the two nodes on each side of `center`,
    /// then `center` with its neighbours.
    fn merge_around(&mut self, mut center: usize) {
        if center >= 2 && self.allows_merge(center - 1, center - 2) {
            self.merge_with_next(center - 2);
            center -= 1;
        }
        if self.allows_merge(center + 1, center + 2) {
            self.merge_with_next(center + 1);
        }
        let target = if center >= 1 && self.allows_merge(center, center - 1) {
            self.merge_with_next(center - 1);
            center - 1
        } else {
            center
        };
        if self.allows_merge(target, target + 1) {
            self.merge_with_next(target);
        }
    }

    pub fn push_front(&mut self, v: &[u8]) {
        let fits = self.allows_insert(self.nodes.front(), v.len());
        match self.nodes.front_mut() {
            Some(head) if fits => {
                head.lp.push_front(v);
                head.count += 1;
            }
            _ => {
                self.first_node_room();
                self.nodes.push_front(Node::with(v));
            }
        }
        self.len += 1;
    }

    pub fn push_back(&mut self, v: &[u8]) {
        if self.allows_insert(self.nodes.back(), v.len()) {
            let tail = self
                .nodes
                .back_mut()
                .expect("allows_insert saw a tail node");
            tail.lp.push_back(v);
            tail.count += 1;
        } else {
            self.first_node_room();
            self.nodes.push_back(Node::with(v));
        }
        self.len += 1;
    }

    pub fn pop_front(&mut self) -> Option<Vec<u8>> {
        let node = self.nodes.front_mut()?;
        let p = node.lp.first()?;
        let v = node.lp.get(p).to_vec();
        node.lp.delete(p);
        self.removed_from(0, 1);
        Some(v)
    }

    pub fn pop_back(&mut self) -> Option<Vec<u8>> {
        let last = self.nodes.len().checked_sub(1)?;
        let node = &mut self.nodes[last];
        let p = node.lp.last()?;
        let v = node.lp.get(p).to_vec();
        node.lp.delete(p);
        self.removed_from(last, 1);
        Some(v)
    }

    /// Account for `n` entries deleted from node `ni`, dropping it if now empty.
    fn removed_from(&mut self, ni: usize, n: usize) {
        self.len -= n;
        let node = &mut self.nodes[ni];
        node.count -= n;
        if node.count == 0 {
            self.nodes.remove(ni);
        }
    }

    /// Node and offset inside it of the element at `index` (from the head), seeking
    /// from the nearer end as `quicklistGetIteratorAtIdx`.
    fn locate(&self, index: usize) -> Option<(usize, usize)> {
        if index >= self.len {
            return None;
        }
        if index <= (self.len - 1) / 2 {
            let mut acc = 0;
            for (ni, n) in self.nodes.iter().enumerate() {
                if acc + n.count > index {
                    return Some((ni, index - acc));
                }
                acc += n.count;
            }
        } else {
            let mut acc = self.len;
            for (ni, n) in self.nodes.iter().enumerate().rev() {
                acc -= n.count;
                if acc <= index {
                    return Some((ni, index - acc));
                }
            }
        }
        None
    }

    /// The element at `index` from the head.
    pub fn get(&self, index: usize) -> Option<LpEntry<'_>> {
        let (ni, off) = self.locate(index)?;
        let lp = &self.nodes[ni].lp;
        lp.seek(off as i64).map(|p| lp.get(p))
    }

    /// Replace the element at `index`; false if out of range. As Redis 7.0, the node
    /// is edited in place even if the new element makes it exceed the fill.
    pub fn set(&mut self, index: usize, v: &[u8]) -> bool {
        let Some((ni, off)) = self.locate(index) else {
            return false;
        };
        let lp = &mut self.nodes[ni].lp;
        match lp.seek(off as i64) {
            Some(p) => {
                lp.replace(p, v);
                true
            }
            None => false,
        }
    }

    /// All elements from head to tail.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = LpEntry<'_>> + '_ {
        self.nodes.iter().flat_map(|n| n.lp.iter())
    }

    /// Elements from `index` towards the tail.
    pub fn iter_from(&self, index: usize) -> impl Iterator<Item = LpEntry<'_>> + '_ {
        let (ni, off) = self.locate(index).unwrap_or((self.nodes.len(), 0));
        self.nodes
            .range(ni..)
            .enumerate()
            .flat_map(move |(i, n)| n.lp.iter().skip(if i == 0 { off } else { 0 }))
    }

    /// Elements from `index` towards the head.
    pub fn iter_back_from(&self, index: usize) -> impl Iterator<Item = LpEntry<'_>> + '_ {
        let (ni, skip) = match self.locate(index) {
            Some((ni, off)) => (ni + 1, self.nodes[ni].count - off - 1),
            None => (0, 0),
        };
        self.nodes
            .range(..ni)
            .rev()
            .enumerate()
            .flat_map(move |(i, n)| n.lp.iter().rev().skip(if i == 0 { skip } else { 0 }))
    }

    /// Index of the first element equal to `v`, searching from the head.
    pub fn find(&self, v: &[u8]) -> Option<usize> {
        self.iter().position(|e| e.eq_bytes(v))
    }

    /// Insert `v` before or after the element at `index` (`_quicklistInsert`): into
    /// its node if that has room, else into the neighbour when at the node's edge,
    /// else into a new node, splitting the full node if the place is inside it and
    /// then merging the neighbours around it. False if `index` is out of range.
    pub fn insert(&mut self, index: usize, v: &[u8], place: Where) -> bool {
        let Some((ni, off)) = self.locate(index) else {
            return false;
        };
        let after = place == Where::After;
        let count = self.nodes[ni].count;
        let full = !self.allows_insert(self.nodes.get(ni), v.len());
        let at_tail = after && off == count - 1;
        let at_head = !after && off == 0;
        let avail_next = at_tail && self.allows_insert(self.nodes.get(ni + 1), v.len());
        let avail_prev = at_head && ni > 0 && self.allows_insert(self.nodes.get(ni - 1), v.len());
        self.len += 1;
        if !full {
            let node = &mut self.nodes[ni];
            if let Some(p) = node.lp.seek(off as i64) {
                node.lp.insert(p, v, place);
            }
            node.count += 1;
        } else if at_tail && avail_next {
            let next = &mut self.nodes[ni + 1];
            next.lp.push_front(v);
            next.count += 1;
        } else if at_head && avail_prev {
            let prev = &mut self.nodes[ni - 1];
            prev.lp.push_back(v);
            prev.count += 1;
        } else if at_tail || at_head {
            self.nodes
                .insert(if after { ni + 1 } else { ni }, Node::with(v));
        } else {
            // Split: with `after` the node keeps [0, off] and the new node takes the
            // rest after the new element; before, the new node takes [0, off) and the
            // new element, and the node keeps [off, end).
            let node = &mut self.nodes[ni];
            let mut other = node.lp.clone();
            if after {
                node.lp.delete_range(off + 1, count);
                other.delete_range(0, off + 1);
                other.push_front(v);
            } else {
                node.lp.delete_range(0, off);
                other.delete_range(off, count);
                other.push_back(v);
            }
            node.count = node.lp.len();
            let other = Node::from_listpack(other);
            let center = if after {
                self.nodes.insert(ni + 1, other);
                ni
            } else {
                self.nodes.insert(ni, other);
                ni + 1
            };
            self.merge_around(center);
        }
        true
    }

    /// Delete up to `count` elements starting at `start` (`quicklistDelRange`);
    /// returns how many were deleted.
    pub fn delete_range(&mut self, start: usize, count: usize) -> usize {
        let Some((mut ni, mut off)) = self.locate(start) else {
            return 0;
        };
        let total = count.min(self.len - start);
        let mut extent = total;
        while extent > 0 {
            let node_count = self.nodes[ni].count;
            if off == 0 && extent >= node_count {
                self.nodes.remove(ni);
                self.len -= node_count;
                extent -= node_count;
            } else {
                let del = (node_count - off).min(extent);
                self.nodes[ni].lp.delete_range(off, del);
                self.removed_from(ni, del);
                extent -= del;
                ni += 1;
            }
            off = 0;
        }
        total
    }

    /// Delete elements equal to `v`, at most `limit` of them (0: all), walking from
    /// the head or from the tail (LREM); returns how many were deleted.
    pub fn remove_matching(&mut self, v: &[u8], limit: usize, from_tail: bool) -> usize {
        let mut removed = 0;
        let n = self.nodes.len();
        let mut emptied = Vec::new();
        for k in 0..n {
            if limit != 0 && removed == limit {
                break;
            }
            let ni = if from_tail { n - 1 - k } else { k };
            let node = &mut self.nodes[ni];
            let mut p = if from_tail {
                node.lp.last()
            } else {
                node.lp.first()
            };
            while let Some(at) = p {
                if limit != 0 && removed == limit {
                    break;
                }
                if node.lp.get(at).eq_bytes(v) {
                    removed += 1;
                    node.count -= 1;
                    let next = node.lp.delete(at);
                    // Walking back, the entry before the deleted one has not moved.
                    p = if from_tail { node.lp.prev(at) } else { next };
                } else {
                    p = if from_tail {
                        node.lp.prev(at)
                    } else {
                        node.lp.next(at)
                    };
                }
            }
            if node.count == 0 {
                emptied.push(ni);
            }
        }
        emptied.sort_unstable();
        for ni in emptied.into_iter().rev() {
            self.nodes.remove(ni);
        }
        self.len -= removed;
        removed
    }
}

/// Append an entry read from another listpack, keeping its integer form.
fn push_entry(lp: &mut Listpack, e: LpEntry<'_>) {
    match e {
        LpEntry::Int(i) => lp.push_back_int(i),
        LpEntry::Str(s) => lp.push_back(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn contents(q: &Quicklist) -> Vec<Vec<u8>> {
        q.iter().map(|e| e.to_vec()).collect()
    }

    /// The invariants every operation keeps: no empty node, cached counts right,
    /// total right.
    fn check(q: &Quicklist) {
        let mut total = 0;
        for n in &q.nodes {
            assert!(n.count > 0, "empty node");
            assert_eq!(n.count, n.lp.len());
            total += n.count;
        }
        assert_eq!(total, q.len);
    }

    #[test]
    fn count_fill_splits_nodes() {
        let mut q = Quicklist::new(3);
        for i in 0..10 {
            q.push_back(format!("{i}").as_bytes());
        }
        assert_eq!(q.node_count(), 4);
        assert_eq!(q.len(), 10);
        assert_eq!(q.get(9).unwrap(), LpEntry::Int(9));
        check(&q);
    }

    #[test]
    fn size_fill_caps_node_bytes() {
        let mut q = Quicklist::new(-1);
        let v = vec![b'x'; 100];
        for _ in 0..100 {
            q.push_back(&v);
        }
        for lp in q.listpacks() {
            assert!(lp.bytes() <= 4096);
        }
        // 4096 bytes of ~102-byte entries: 39 or 40 per node.
        assert_eq!(q.node_count(), 3);
        check(&q);
    }

    /// Total listpack bytes (DEBUG OBJECT's `ql_uncompressed_size`).
    fn total_bytes(q: &Quicklist) -> usize {
        q.listpacks().map(|lp| lp.bytes()).sum()
    }

    #[test]
    fn nodes_as_redis_makes_them() {
        // Figures from DEBUG OBJECT on redis-server 7.0.15 after the same commands.
        let mut q = Quicklist::new(-2);
        for _ in 0..1000 {
            q.push_back(&[b'x'; 100]);
        }
        assert_eq!((q.node_count(), total_bytes(&q)), (13, 103091));
        let mut q = Quicklist::new(-2);
        for i in 1..=1000 {
            q.push_back(format!("{i}").as_bytes());
        }
        assert_eq!((q.node_count(), total_bytes(&q)), (1, 2880));
        let mut q = Quicklist::new(4);
        for i in 0..8 {
            q.push_back(format!("{i}").as_bytes());
        }
        q.insert(1, b"x", Where::After);
        assert_eq!((q.node_count(), total_bytes(&q)), (3, 40));
        q.insert(0, b"y", Where::Before);
        assert_eq!((q.node_count(), total_bytes(&q)), (3, 43));
    }

    #[test]
    fn safety_limit_applies_to_count_fills() {
        let mut q = Quicklist::new(1000);
        let v = vec![b'x'; 3000];
        for _ in 0..4 {
            q.push_back(&v);
        }
        // Two 3000-byte entries fit in 8 KiB, three do not.
        assert_eq!(q.node_count(), 2);
    }

    #[test]
    fn fill_is_clamped() {
        assert_eq!(Quicklist::new(-100).fill(), -5);
        assert_eq!(Quicklist::new(1 << 40).fill(), 32767);
        // Fill 0: every element in its own node.
        let mut q = Quicklist::new(0);
        q.push_back(b"a");
        q.push_back(b"b");
        assert_eq!(q.node_count(), 2);
    }

    #[test]
    fn insert_splits_and_merges() {
        let mut q = Quicklist::new(4);
        for i in 0..8 {
            q.push_back(format!("{i}").as_bytes());
        }
        assert_eq!(q.node_count(), 2);
        // Inside a full node: split.
        assert!(q.insert(1, b"x", Where::After));
        assert_eq!(
            contents(&q),
            ["0", "1", "x", "2", "3", "4", "5", "6", "7"].map(|s| s.as_bytes().to_vec())
        );
        check(&q);
        // At the edge of a full node with a full neighbour: a new node.
        assert!(q.insert(0, b"y", Where::Before));
        assert_eq!(q.get(0).unwrap(), LpEntry::Str(b"y"));
        check(&q);
    }

    #[test]
    fn iter_from_both_ways() {
        let mut q = Quicklist::new(2);
        for i in 0..7 {
            q.push_back(format!("{i}").as_bytes());
        }
        let fwd: Vec<_> = q.iter_from(3).map(|e| e.to_vec()).collect();
        assert_eq!(fwd, ["3", "4", "5", "6"].map(|s| s.as_bytes().to_vec()));
        let back: Vec<_> = q.iter_back_from(3).map(|e| e.to_vec()).collect();
        assert_eq!(back, ["3", "2", "1", "0"].map(|s| s.as_bytes().to_vec()));
        assert_eq!(q.iter_from(7).count(), 0);
    }

    #[derive(Clone, Debug)]
    enum Op {
        PushFront(Vec<u8>),
        PushBack(Vec<u8>),
        PopFront,
        PopBack,
        Set(usize, Vec<u8>),
        Insert(usize, Vec<u8>, bool),
        DeleteRange(usize, usize),
        Remove(Vec<u8>, usize, bool),
        Get(usize),
        IterFrom(usize),
        IterBackFrom(usize),
    }

    fn value() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            // Few distinct values, so LREM and LINSERT find matches.
            prop::sample::select(vec!["a", "b", "1", "-7", "300"])
                .prop_map(|s| s.as_bytes().to_vec()),
            prop::collection::vec(any::<u8>(), 0..40),
            prop::collection::vec(Just(b'z'), 100..700),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => value().prop_map(Op::PushFront),
            3 => value().prop_map(Op::PushBack),
            1 => Just(Op::PopFront),
            1 => Just(Op::PopBack),
            1 => (0..60usize, value()).prop_map(|(i, v)| Op::Set(i, v)),
            2 => (0..60usize, value(), any::<bool>()).prop_map(|(i, v, a)| Op::Insert(i, v, a)),
            1 => (0..60usize, 0..20usize).prop_map(|(s, c)| Op::DeleteRange(s, c)),
            1 => (value(), 0..4usize, any::<bool>()).prop_map(|(v, l, t)| Op::Remove(v, l, t)),
            1 => (0..60usize).prop_map(Op::Get),
            1 => (0..60usize).prop_map(Op::IterFrom),
            1 => (0..60usize).prop_map(Op::IterBackFrom),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn matches_vecdeque(fill in prop::sample::select(vec![1i64, 2, 3, 5, -1, -2, 0]),
                            ops in prop::collection::vec(op(), 1..150)) {
            let mut q = Quicklist::new(fill);
            let mut m: VecDeque<Vec<u8>> = VecDeque::new();
            for op in ops {
                match op {
                    Op::PushFront(v) => { q.push_front(&v); m.push_front(v); }
                    Op::PushBack(v) => { q.push_back(&v); m.push_back(v); }
                    Op::PopFront => prop_assert_eq!(q.pop_front(), m.pop_front()),
                    Op::PopBack => prop_assert_eq!(q.pop_back(), m.pop_back()),
                    Op::Set(i, v) => {
                        let ok = i < m.len();
                        prop_assert_eq!(q.set(i, &v), ok);
                        if ok { m[i] = v; }
                    }
                    Op::Insert(i, v, after) => {
                        let ok = i < m.len();
                        let place = if after { Where::After } else { Where::Before };
                        prop_assert_eq!(q.insert(i, &v, place), ok);
                        if ok { m.insert(if after { i + 1 } else { i }, v); }
                    }
                    Op::DeleteRange(s, c) => {
                        let n = if s < m.len() { c.min(m.len() - s) } else { 0 };
                        prop_assert_eq!(q.delete_range(s, c), n);
                        m.drain(s.min(m.len())..(s + n).min(m.len()));
                    }
                    Op::Remove(v, limit, from_tail) => {
                        let mut removed = 0;
                        let mut idx: Vec<usize> = (0..m.len()).collect();
                        if from_tail { idx.reverse(); }
                        let mut gone = Vec::new();
                        for i in idx {
                            if limit != 0 && removed == limit { break; }
                            if m[i] == v { gone.push(i); removed += 1; }
                        }
                        gone.sort_unstable();
                        for i in gone.into_iter().rev() { m.remove(i); }
                        prop_assert_eq!(q.remove_matching(&v, limit, from_tail), removed);
                    }
                    Op::Get(i) => prop_assert_eq!(q.get(i).map(|e| e.to_vec()), m.get(i).cloned()),
                    Op::IterFrom(i) => {
                        let got: Vec<_> = q.iter_from(i).map(|e| e.to_vec()).collect();
                        let want: Vec<_> = m.iter().skip(i).cloned().collect();
                        prop_assert_eq!(got, want);
                    }
                    Op::IterBackFrom(i) => {
                        let got: Vec<_> = q.iter_back_from(i).map(|e| e.to_vec()).collect();
                        let want: Vec<_> = if i < m.len() {
                            m.iter().take(i + 1).rev().cloned().collect()
                        } else { Vec::new() };
                        prop_assert_eq!(got, want);
                    }
                }
                check(&q);
                prop_assert_eq!(q.len(), m.len());
                prop_assert_eq!(contents(&q), m.iter().cloned().collect::<Vec<_>>());
                let back: Vec<_> = q.iter().rev().map(|e| e.to_vec()).collect();
                prop_assert_eq!(back, m.iter().rev().cloned().collect::<Vec<_>>());
                // Every node keeps to the fill, except where Redis lets it grow: an
                // element alone in its node, or LSET replacing in place.
                for n in &q.nodes {
                    if fill > 0 { prop_assert!(n.count as i64 <= fill); }
                }
            }
        }
    }
}
