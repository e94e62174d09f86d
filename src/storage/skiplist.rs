//! The skiplist of a large sorted set: members ordered by (score, member bytes), with
//! span counts so that rank lookups and rank ranges cost O(log n).
//!
//! Same algorithm as Redis's `zskiplist` (Pugh's skiplist with repeated scores, ties
//! broken by comparing member bytes, a backward link at level 0, and per-link spans:
//! the number of level-0 steps a forward link jumps). Levels are drawn with p = 1/4 up
//! to 32, as Redis draws them.
//!
//! The one idea to hold: nodes live in arenas (`Vec<Node>`) and link to each other by
//! index, so the structure is plain safe Rust with no `Rc` and no `unsafe`. There is one
//! arena per height class (1, 2, 3 or more levels) and a [`NodeId`] carries its class
//! in its top bits: a search spends most of its steps on the upper levels, which only
//! tall nodes have, so keeping those nodes dense (as a size-class allocator keeps
//! Redis's) keeps a search's cache and TLB footprint small. The header is not a node:
//! [`HEAD`] names it, and `link`/`link_mut` read its levels from `head`. A freed slot
//! goes on its arena's free list and is reused by the next insert of that class; when
//! most slots are free the arenas are rebuilt in list order (O(n), amortised over the
//! deletes that made the holes), so memory follows the set's size.

use super::CompactBytes;
use std::cmp::Ordering;

/// Most levels a node can have (Redis's `ZSKIPLIST_MAXLEVEL`).
pub const MAX_LEVEL: usize = 32;

/// A node's index in the arena; valid until the node is removed.
pub type NodeId = u32;

/// "No node" in a link.
const NIL: u32 = u32::MAX;
/// The header, as a link source.
const HEAD: u32 = u32::MAX - 1;
/// A node id is `class << CLASS_SHIFT | index in that class's arena`; class 3 is left
/// to NIL and HEAD.
const CLASS_SHIFT: u32 = 30;
const INDEX_MASK: u32 = (1 << CLASS_SHIFT) - 1;
/// Height classes: 1 level, 2 levels, 3 or more.
const CLASSES: usize = 3;

fn class_of(level: usize) -> usize {
    level.min(CLASSES) - 1
}
fn split(id: u32) -> (usize, usize) {
    ((id >> CLASS_SHIFT) as usize, (id & INDEX_MASK) as usize)
}

#[derive(Clone, Copy, Debug, Default)]
struct Link {
    next: u32,
    /// Level-0 steps from this node to `next` (to the end of the list when `next` is
    /// NIL, as Redis keeps it).
    span: u32,
}

const NO_LINK: Link = Link { next: NIL, span: 0 };

/// A node's forward links: fifteen nodes in sixteen have one or two levels, so those
/// are kept inline (a search step to such a node reads one cache line, not two); taller
/// nodes, few enough to stay cached, keep theirs on the heap.
#[derive(Clone, Debug)]
enum Links {
    One(Link),
    Two([Link; 2]),
    Many(Box<[Link]>),
}

impl Links {
    fn new(level: usize) -> Links {
        match level {
            1 => Links::One(NO_LINK),
            2 => Links::Two([NO_LINK; 2]),
            _ => Links::Many(vec![NO_LINK; level].into_boxed_slice()),
        }
    }
    fn as_slice(&self) -> &[Link] {
        match self {
            Links::One(l) => std::slice::from_ref(l),
            Links::Two(ls) => ls,
            Links::Many(ls) => ls,
        }
    }
    fn as_mut_slice(&mut self) -> &mut [Link] {
        match self {
            Links::One(l) => std::slice::from_mut(l),
            Links::Two(ls) => ls,
            Links::Many(ls) => ls,
        }
    }
}

/// 64 bytes, aligned to 64: one node is one cache line, so a search step that reads a
/// node's score, member and (inline) links misses the cache once.
#[derive(Clone, Debug)]
#[repr(align(64))]
struct Node {
    member: CompactBytes,
    score: f64,
    /// Previous node at level 0, NIL for the first.
    prev: u32,
    links: Links,
}

const _: () = assert!(std::mem::size_of::<Node>() == 64);

#[derive(Clone)]
pub struct SkipList {
    /// One arena per height class (see the module comment).
    nodes: [Vec<Node>; CLASSES],
    /// Freed arena slots (node ids), per class, reused by inserts.
    free: [Vec<u32>; CLASSES],
    head: [Link; MAX_LEVEL],
    tail: u32,
    /// Levels in use (at least 1).
    level: usize,
    len: usize,
    /// Heap bytes of spilled links and long members, kept up to date so that
    /// `heap_size` is O(1).
    extra: usize,
    /// xorshift state for the level draw.
    rng: u64,
    /// How many times the arenas were rebuilt (node ids renumbered); see
    /// [`SkipList::generation`].
    rebuilds: u32,
}

impl Default for SkipList {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for SkipList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.iter().map(|id| (self.member(id), self.score(id))))
            .finish()
    }
}

impl PartialEq for SkipList {
    /// Same members with the same scores, in the same order (levels are random and
    /// arena slots an accident of history, so neither counts).
    fn eq(&self, o: &Self) -> bool {
        self.len == o.len
            && self.iter().zip(o.iter()).all(|(a, b)| {
                self.member(a) == o.member(b) && self.score(a).to_bits() == o.score(b).to_bits()
            })
    }
}

/// Order of (score, member) pairs in the list: by score, then by member bytes
/// (`memcmp`, a prefix first, as Redis's `sdscmp`).
pub fn cmp_entries(s1: f64, m1: &[u8], s2: f64, m2: &[u8]) -> Ordering {
    match s1.partial_cmp(&s2) {
        Some(Ordering::Equal) | None => m1.cmp(m2),
        Some(o) => o,
    }
}

impl SkipList {
    pub fn new() -> SkipList {
        SkipList {
            nodes: Default::default(),
            free: Default::default(),
            head: [NO_LINK; MAX_LEVEL],
            tail: NIL,
            level: 1,
            len: 0,
            extra: 0,
            rng: rand::random::<u64>() | 1,
            rebuilds: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Approximate heap bytes owned (arena, spilled links, long members), in O(1).
    pub fn heap_size(&self) -> usize {
        let arenas: usize = self.nodes.iter().map(Vec::capacity).sum();
        let free: usize = self.free.iter().map(Vec::capacity).sum();
        arenas * std::mem::size_of::<Node>() + free * 4 + self.extra
    }

    /// Heap bytes a node owns beyond its arena slot.
    fn node_extra(n: &Node) -> usize {
        let links = match &n.links {
            Links::One(_) | Links::Two(_) => 0,
            Links::Many(ls) => ls.len() * std::mem::size_of::<Link>(),
        };
        links + n.member.heap_size()
    }

    fn node(&self, id: u32) -> &Node {
        let (c, i) = split(id);
        &self.nodes[c][i]
    }
    fn node_mut(&mut self, id: u32) -> &mut Node {
        let (c, i) = split(id);
        &mut self.nodes[c][i]
    }
    fn link(&self, x: u32, i: usize) -> Link {
        if x == HEAD {
            self.head[i]
        } else {
            self.node(x).links.as_slice()[i]
        }
    }
    fn link_mut(&mut self, x: u32, i: usize) -> &mut Link {
        if x == HEAD {
            &mut self.head[i]
        } else {
            &mut self.node_mut(x).links.as_mut_slice()[i]
        }
    }
    fn opt(id: u32) -> Option<NodeId> {
        (id != NIL).then_some(id)
    }

    /// The member of node `id`.
    pub fn member(&self, id: NodeId) -> &[u8] {
        &self.node(id).member
    }
    /// The score of node `id`.
    pub fn score(&self, id: NodeId) -> f64 {
        self.node(id).score
    }
    pub fn first(&self) -> Option<NodeId> {
        Self::opt(self.head[0].next)
    }
    pub fn last(&self) -> Option<NodeId> {
        Self::opt(self.tail)
    }
    pub fn next(&self, id: NodeId) -> Option<NodeId> {
        Self::opt(self.node(id).links.as_slice()[0].next)
    }
    pub fn prev(&self, id: NodeId) -> Option<NodeId> {
        Self::opt(self.node(id).prev)
    }
    /// Node ids in order, first to last.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = NodeId> + '_ {
        NodeIter {
            list: self,
            front: self.head[0].next,
            back: self.tail,
            left: self.len,
        }
    }

    /// A level in 1..=32, each further level with probability 1/4 (`zslRandomLevel`).
    fn random_level(&mut self) -> usize {
        let mut level = 1;
        loop {
            // xorshift64*
            self.rng ^= self.rng >> 12;
            self.rng ^= self.rng << 25;
            self.rng ^= self.rng >> 27;
            let r = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32;
            if r & 0xFFFF >= 0x4000 || level >= MAX_LEVEL {
                return level;
            }
            level += 1;
        }
    }

    fn alloc(&mut self, node: Node) -> u32 {
        self.extra += Self::node_extra(&node);
        let class = class_of(node.links.as_slice().len());
        match self.free[class].pop() {
            Some(id) => {
                *self.node_mut(id) = node;
                id
            }
            None => Self::push_node(&mut self.nodes[class], class, node),
        }
    }

    /// Append `node` to `arena` (of height class `class`); returns its id. A full
    /// arena grows by a quarter, not by doubling: a node costs its 64 bytes plus about
    /// 12% unused on average, close to what one allocation per node costs Redis.
    fn push_node(arena: &mut Vec<Node>, class: usize, node: Node) -> u32 {
        let index = arena.len();
        assert!(index <= INDEX_MASK as usize, "skiplist arena full");
        if index == arena.capacity() {
            arena.reserve_exact((index / 4).max(4));
        }
        arena.push(node);
        (class as u32) << CLASS_SHIFT | index as u32
    }

    fn release(&mut self, id: u32) -> CompactBytes {
        self.extra -= Self::node_extra(self.node(id));
        let n = self.node_mut(id);
        n.links = Links::One(NO_LINK);
        let member = std::mem::replace(&mut n.member, CompactBytes::new(b""));
        self.free[split(id).0].push(id);
        member
    }

    /// Freed arena slots, all classes.
    fn free_slots(&self) -> usize {
        self.free.iter().map(Vec::len).sum()
    }

    /// True when link `l` leads to a node that sorts before (score, member).
    fn leads_before(&self, l: Link, score: f64, member: &[u8]) -> bool {
        if l.next == NIL {
            return false;
        }
        let n = self.node(l.next);
        n.score < score || (n.score == score && n.member.as_slice() < member)
    }

    /// Insert a member that is not in the list yet (the caller's dict says so).
    pub fn insert(&mut self, score: f64, member: &[u8]) -> NodeId {
        debug_assert!(!score.is_nan());
        let mut update = [HEAD; MAX_LEVEL];
        let mut rank = [0u32; MAX_LEVEL];
        let mut x = HEAD;
        for i in (0..self.level).rev() {
            rank[i] = if i == self.level - 1 { 0 } else { rank[i + 1] };
            loop {
                let l = self.link(x, i);
                if self.leads_before(l, score, member) {
                    rank[i] += l.span;
                    x = l.next;
                } else {
                    break;
                }
            }
            update[i] = x;
        }
        let level = self.random_level();
        if level > self.level {
            for i in self.level..level {
                rank[i] = 0;
                update[i] = HEAD;
                self.head[i].span = self.len as u32;
            }
            self.level = level;
        }
        let id = self.alloc(Node {
            member: CompactBytes::new(member),
            score,
            prev: if update[0] == HEAD { NIL } else { update[0] },
            links: Links::new(level),
        });
        for i in 0..level {
            let u = self.link(update[i], i);
            let crossed = rank[0] - rank[i];
            *self.link_mut(id, i) = Link {
                next: u.next,
                span: u.span - crossed,
            };
            *self.link_mut(update[i], i) = Link {
                next: id,
                span: crossed + 1,
            };
        }
        for (i, &u) in update.iter().enumerate().take(self.level).skip(level) {
            self.link_mut(u, i).span += 1;
        }
        match self.link(id, 0).next {
            NIL => self.tail = id,
            next => self.node_mut(next).prev = id,
        }
        self.len += 1;
        id
    }

    /// For each level, the last node before (score, member).
    fn path_to(&self, score: f64, member: &[u8]) -> [u32; MAX_LEVEL] {
        let mut update = [HEAD; MAX_LEVEL];
        let mut x = HEAD;
        for i in (0..self.level).rev() {
            loop {
                let l = self.link(x, i);
                if self.leads_before(l, score, member) {
                    x = l.next;
                } else {
                    break;
                }
            }
            update[i] = x;
        }
        update
    }

    /// For each level, the last node for which `before` holds (it must hold for a
    /// prefix of the list).
    fn path_while(&self, before: impl Fn(u32) -> bool) -> [u32; MAX_LEVEL] {
        let mut update = [HEAD; MAX_LEVEL];
        let mut x = HEAD;
        for i in (0..self.level).rev() {
            loop {
                let next = self.link(x, i).next;
                if next != NIL && before(next) {
                    x = next;
                } else {
                    break;
                }
            }
            update[i] = x;
        }
        update
    }

    /// Unlink `x`, whose predecessors per level are `update` (`zslDeleteNode`).
    fn unlink(&mut self, x: u32, update: &[u32; MAX_LEVEL]) {
        for (i, &up) in update.iter().enumerate().take(self.level) {
            let xl = if i < self.node(x).links.as_slice().len() {
                self.link(x, i)
            } else {
                NO_LINK
            };
            let u = self.link_mut(up, i);
            if u.next == x {
                u.span = u.span - 1 + xl.span;
                u.next = xl.next;
            } else {
                u.span = u.span.saturating_sub(1);
            }
        }
        let prev = self.node(x).prev;
        match self.link(x, 0).next {
            NIL => self.tail = prev,
            next => self.node_mut(next).prev = prev,
        }
        while self.level > 1 && self.head[self.level - 1].next == NIL {
            self.level -= 1;
        }
        self.len -= 1;
    }

    /// Remove (score, member); true if it was there.
    pub fn remove(&mut self, score: f64, member: &[u8]) -> bool {
        let update = self.path_to(score, member);
        let x = self.link(update[0], 0).next;
        if x != NIL && self.node(x).score == score && self.node(x).member.as_slice() == member {
            self.unlink(x, &update);
            self.release(x);
            self.maybe_compact();
            true
        } else {
            false
        }
    }

    /// Change the score of a member that is in the list with `old` (`zslUpdateScore`):
    /// in place when the order is kept, else by removing and reinserting.
    pub fn update_score(&mut self, old: f64, member: &[u8], new: f64) -> NodeId {
        let update = self.path_to(old, member);
        let x = self.link(update[0], 0).next;
        assert!(
            x != NIL && self.node(x).score == old && self.node(x).member.as_slice() == member,
            "update_score of a member not in the skiplist"
        );
        let prev = self.node(x).prev;
        let next = self.link(x, 0).next;
        if (prev == NIL || self.node(prev).score < new)
            && (next == NIL || self.node(next).score > new)
        {
            self.node_mut(x).score = new;
            return x;
        }
        self.unlink(x, &update);
        let m = self.release(x);
        self.insert(new, &m)
    }

    /// 1-based rank of (score, member), or 0 when it is not in the list (`zslGetRank`).
    pub fn rank(&self, score: f64, member: &[u8]) -> usize {
        let mut rank = 0usize;
        let mut x = HEAD;
        for i in (0..self.level).rev() {
            loop {
                let l = self.link(x, i);
                if l.next == NIL {
                    break;
                }
                let n = self.node(l.next);
                if n.score < score || (n.score == score && n.member.as_slice() <= member) {
                    rank += l.span as usize;
                    x = l.next;
                } else {
                    break;
                }
            }
            if x != HEAD && self.node(x).score == score && self.node(x).member.as_slice() == member
            {
                return rank;
            }
        }
        0
    }

    /// The node at 1-based `rank` (`zslGetElementByRank`).
    pub fn by_rank(&self, rank: usize) -> Option<NodeId> {
        let mut traversed = 0usize;
        let mut x = HEAD;
        for i in (0..self.level).rev() {
            loop {
                let l = self.link(x, i);
                if l.next != NIL && traversed + l.span as usize <= rank {
                    traversed += l.span as usize;
                    x = l.next;
                } else {
                    break;
                }
            }
            if traversed == rank {
                return (x != HEAD).then_some(x);
            }
        }
        None
    }

    /// The first node for which `before(score, member)` is false; `before` must hold
    /// for a prefix of the list (below a range's minimum).
    pub fn first_not_before(&self, before: impl Fn(f64, &[u8]) -> bool) -> Option<NodeId> {
        let update = self.path_while(|n| before(self.score(n), self.member(n)));
        Self::opt(self.link(update[0], 0).next)
    }

    /// The last node for which `within(score, member)` holds; `within` must hold for a
    /// prefix of the list (up to a range's maximum).
    pub fn last_within(&self, within: impl Fn(f64, &[u8]) -> bool) -> Option<NodeId> {
        let update = self.path_while(|n| within(self.score(n), self.member(n)));
        (update[0] != HEAD).then_some(update[0])
    }

    /// Remove the nodes from the first for which `before` is false up to the last for
    /// which `within` holds (`zslDeleteRangeByScore` / `ByLex`), calling `removed` with
    /// each one's id (now free) and member. Returns how many were removed.
    pub fn remove_range(
        &mut self,
        before: impl Fn(f64, &[u8]) -> bool,
        within: impl Fn(f64, &[u8]) -> bool,
        mut removed: impl FnMut(NodeId, &[u8]),
    ) -> usize {
        let update = self.path_while(|n| before(self.score(n), self.member(n)));
        let mut x = self.link(update[0], 0).next;
        let mut n = 0;
        while x != NIL && within(self.score(x), self.member(x)) {
            let next = self.link(x, 0).next;
            self.unlink(x, &update);
            let m = self.release(x);
            removed(x, &m);
            n += 1;
            x = next;
        }
        self.maybe_compact();
        n
    }

    /// Remove the nodes of 1-based ranks `start..=end` (`zslDeleteRangeByRank`).
    pub fn remove_rank_range(
        &mut self,
        start: usize,
        end: usize,
        mut removed: impl FnMut(NodeId, &[u8]),
    ) -> usize {
        let mut update = [HEAD; MAX_LEVEL];
        let mut traversed = 0usize;
        let mut x = HEAD;
        for i in (0..self.level).rev() {
            loop {
                let l = self.link(x, i);
                if l.next != NIL && traversed + (l.span as usize) < start {
                    traversed += l.span as usize;
                    x = l.next;
                } else {
                    break;
                }
            }
            update[i] = x;
        }
        traversed += 1;
        let mut x = self.link(x, 0).next;
        let mut n = 0;
        while x != NIL && traversed <= end {
            let next = self.link(x, 0).next;
            self.unlink(x, &update);
            let m = self.release(x);
            removed(x, &m);
            n += 1;
            traversed += 1;
            x = next;
        }
        self.maybe_compact();
        n
    }

    /// Rebuild the arena in list order once most of its slots are free.
    fn maybe_compact(&mut self) {
        let free = self.free_slots();
        if free < 64 || free < 2 * self.len {
            return;
        }
        if self.len == 0 {
            *self = SkipList {
                rng: self.rng,
                rebuilds: self.rebuilds.wrapping_add(1),
                ..SkipList::new()
            };
            return;
        }
        // New ids: each class's nodes renumbered in list order.
        let mut new_id: [Vec<u32>; CLASSES] = Default::default();
        for (c, arena) in self.nodes.iter().enumerate() {
            new_id[c] = vec![NIL; arena.len()];
        }
        let mut counts = [0u32; CLASSES];
        let order: Vec<u32> = self.iter().collect();
        for &id in &order {
            let (c, i) = split(id);
            new_id[c][i] = (c as u32) << CLASS_SHIFT | counts[c];
            counts[c] += 1;
        }
        let map = |id: u32| {
            if id == NIL {
                NIL
            } else {
                let (c, i) = split(id);
                new_id[c][i]
            }
        };
        let mut old = std::mem::take(&mut self.nodes);
        let mut nodes: [Vec<Node>; CLASSES] = Default::default();
        for (c, arena) in nodes.iter_mut().enumerate() {
            arena.reserve_exact(counts[c] as usize);
        }
        for id in order {
            let (c, i) = split(id);
            let mut n = std::mem::replace(
                &mut old[c][i],
                Node {
                    member: CompactBytes::new(b""),
                    score: 0.0,
                    prev: NIL,
                    links: Links::One(NO_LINK),
                },
            );
            n.prev = map(n.prev);
            for l in n.links.as_mut_slice() {
                l.next = map(l.next);
            }
            nodes[c].push(n);
        }
        for l in self.head.iter_mut() {
            l.next = map(l.next);
        }
        self.tail = map(self.tail);
        self.nodes = nodes;
        self.free = Default::default();
        self.rebuilds = self.rebuilds.wrapping_add(1);
    }

    /// Changes when node ids are renumbered (the arenas rebuilt after removals): an
    /// index of node ids kept beside the list is stale once it differs.
    pub fn generation(&self) -> u32 {
        self.rebuilds
    }

    /// Check every invariant (tests): order, spans, back links, length, tail.
    #[cfg(test)]
    pub fn check(&self) {
        let ids: Vec<u32> = self.iter().collect();
        assert_eq!(ids.len(), self.len);
        let mut pos = std::collections::HashMap::new();
        for (i, &id) in ids.iter().enumerate() {
            let (c, _) = split(id);
            assert_eq!(
                c,
                class_of(self.node(id).links.as_slice().len()),
                "height class"
            );
            pos.insert(id, i + 1);
            if i > 0 {
                let p = ids[i - 1];
                assert_eq!(self.node(id).prev, p);
                assert_eq!(
                    cmp_entries(
                        self.score(p),
                        self.member(p),
                        self.score(id),
                        self.member(id)
                    ),
                    Ordering::Less
                );
            } else {
                assert_eq!(self.node(id).prev, NIL);
            }
        }
        assert_eq!(self.tail, ids.last().copied().unwrap_or(NIL));
        for i in 0..self.level {
            let mut x = HEAD;
            let mut at = 0usize;
            loop {
                let l = self.link(x, i);
                if l.next == NIL {
                    break;
                }
                let to = pos[&l.next];
                assert_eq!(to - at, l.span as usize, "span at level {i}");

                at = to;
                x = l.next;
            }
        }
        assert!(self.level == 1 || self.head[self.level - 1].next != NIL);
        let extra: usize = ids.iter().map(|&id| Self::node_extra(self.node(id))).sum();
        assert_eq!(extra, self.extra);
    }
}

struct NodeIter<'a> {
    list: &'a SkipList,
    front: u32,
    back: u32,
    left: usize,
}

impl Iterator for NodeIter<'_> {
    type Item = NodeId;
    fn next(&mut self) -> Option<NodeId> {
        if self.left == 0 {
            return None;
        }
        let id = self.front;
        self.left -= 1;
        self.front = self.list.link(id, 0).next;
        Some(id)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl DoubleEndedIterator for NodeIter<'_> {
    fn next_back(&mut self) -> Option<NodeId> {
        if self.left == 0 {
            return None;
        }
        let id = self.back;
        self.left -= 1;
        self.back = self.list.node(id).prev;
        Some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// Model: a sorted set of (score as ordered bits, member).
    fn key(s: f64) -> i64 {
        // Total order of non-NaN doubles matching `<` (with -0 == 0 folded).
        let s = if s == 0.0 { 0.0 } else { s };
        let b = s.to_bits() as i64;
        if b < 0 {
            b ^ i64::MAX
        } else {
            b
        }
    }

    #[test]
    fn basic_order_rank_and_levels() {
        let mut l = SkipList::new();
        for (s, m) in [(3.0, "c"), (1.0, "a"), (2.0, "b"), (2.0, "a"), (2.0, "bb")] {
            l.insert(s, m.as_bytes());
            l.check();
        }
        let got: Vec<_> = l
            .iter()
            .map(|id| (l.score(id), l.member(id).to_vec()))
            .collect();
        assert_eq!(
            got,
            vec![
                (1.0, b"a".to_vec()),
                (2.0, b"a".to_vec()),
                (2.0, b"b".to_vec()),
                (2.0, b"bb".to_vec()),
                (3.0, b"c".to_vec())
            ]
        );
        assert_eq!(l.rank(2.0, b"b"), 3);
        assert_eq!(l.rank(2.0, b"zz"), 0);
        assert_eq!(l.member(l.by_rank(4).unwrap()), b"bb");
        assert!(l.by_rank(6).is_none());
        assert!(l.by_rank(0).is_none());
        let id = l.update_score(2.0, b"a", 10.0);
        assert_eq!(l.last(), Some(id));
        l.check();
        assert!(l.remove(10.0, b"a"));
        assert!(!l.remove(10.0, b"a"));
        l.check();
        // The level distribution: about 1 in 4 nodes has level 2 or more.
        let mut l = SkipList::new();
        let tall = (0..10_000).filter(|_| l.random_level() > 1).count();
        assert!((2000..3000).contains(&tall), "{tall}");
    }

    #[test]
    fn big_list_compacts_and_keeps_ranks() {
        let mut l = SkipList::new();
        for i in 0..5000 {
            l.insert((i % 97) as f64, format!("m{i}").as_bytes());
        }
        l.check();
        let n = l.remove_rank_range(10, 4900, |_, _| {});
        assert_eq!(n, 4891);
        l.check();
        assert!(l.nodes.iter().map(Vec::len).sum::<usize>() < 1000);
        assert_eq!(l.len(), 109);
        for (i, id) in l.iter().enumerate() {
            assert_eq!(l.rank(l.score(id), l.member(id)), i + 1);
        }
    }

    proptest! {
        #[test]
        fn behaves_like_a_sorted_set(ops in proptest::collection::vec((0u8..6, -8i32..8, 0u8..12, 0usize..40, 0usize..40), 0..400)) {
            let mut l = SkipList::new();
            let mut model: BTreeSet<(i64, Vec<u8>)> = BTreeSet::new();
            let mut scores: std::collections::HashMap<Vec<u8>, f64> = Default::default();
            for (op, s, m, a, b) in ops {
                let score = s as f64 / 2.0;
                let member = vec![b'a' + m];
                match op {
                    0 | 1 => {
                        if let Some(old) = scores.get(&member).copied() {
                            l.update_score(old, &member, score);
                            model.remove(&(key(old), member.clone()));
                        } else {
                            l.insert(score, &member);
                        }
                        model.insert((key(score), member.clone()));
                        scores.insert(member, score);
                    }
                    2 => {
                        let had = scores.remove(&member);
                        let removed = had.is_some_and(|old| l.remove(old, &member));
                        prop_assert_eq!(removed, had.is_some());
                        if let Some(old) = had { model.remove(&(key(old), member)); }
                    }
                    3 => {
                        let (start, end) = (a.min(b) + 1, a.max(b) + 1);
                        let mut gone = Vec::new();
                        let n = l.remove_rank_range(start, end, |_, m| gone.push(m.to_vec()));
                        let want: Vec<_> = model.iter().skip(start - 1).take(end + 1 - start).cloned().collect();
                        prop_assert_eq!(n, want.len());
                        for w in want { model.remove(&w); scores.remove(&w.1); }
                        prop_assert_eq!(gone.len(), n);
                    }
                    4 => {
                        let (lo, hi) = ((a as f64 - 20.0) / 4.0, (b as f64 - 20.0) / 4.0);
                        let n = l.remove_range(|s, _| s < lo, |s, _| s <= hi, |_, m| { scores.remove(m); });
                        let want: Vec<_> = model.iter().filter(|(k, _)| *k >= key(lo) && *k <= key(hi)).cloned().collect();
                        prop_assert_eq!(n, want.len());
                        for w in want { model.remove(&w); }
                    }
                    _ => {
                        let lo = (a as f64 - 20.0) / 4.0;
                        let first = l.first_not_before(|s, _| s < lo).map(|id| l.member(id).to_vec());
                        let want = model.iter().find(|(k, _)| *k >= key(lo)).map(|x| x.1.clone());
                        prop_assert_eq!(first, want);
                        let last = l.last_within(|s, _| s <= lo).map(|id| l.member(id).to_vec());
                        let want = model.iter().rev().find(|(k, _)| *k <= key(lo)).map(|x| x.1.clone());
                        prop_assert_eq!(last, want);
                    }
                }
                l.check();
                prop_assert_eq!(l.len(), model.len());
            }
            let got: Vec<_> = l.iter().map(|id| (key(l.score(id)), l.member(id).to_vec())).collect();
            let want: Vec<_> = model.iter().cloned().collect();
            prop_assert_eq!(&got, &want);
            for (i, (_, m)) in want.iter().enumerate() {
                prop_assert_eq!(l.rank(scores[m], m), i + 1);
                prop_assert_eq!(l.by_rank(i + 1).map(|id| l.member(id).to_vec()), Some(m.clone()));
            }
            let back: Vec<_> = l.iter().rev().map(|id| l.member(id).to_vec()).collect();
            let fwd: Vec<_> = want.iter().rev().map(|x| x.1.clone()).collect();
            prop_assert_eq!(back, fwd);
        }
    }
}
