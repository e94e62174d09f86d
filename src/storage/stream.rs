//! Streams: Redis's append-only log type, encoded as redis-server 7.0 encodes it.
//!
//! Owns: a stream's entries, its counters (length, last / first / max-deleted IDs,
//! entries added) and its consumer groups with their pending-entry lists; every edit
//! to them (append, delete, trim) and every walk over them. Commands live in
//! `commands::stream`; the RDB layer stores the nodes as they are.
//!
//! Plan. Entries live in *nodes*: an ordered map (a `BTreeMap`, Redis uses a radix
//! tree) from a node's *master ID* (the ID of the first entry put in it) to a listpack
//! holding up to `stream-node-max-entries` entries and `stream-node-max-bytes` bytes,
//! laid out exactly as Redis's `t_stream.c` lays it out:
//!
//! ```text
//! master entry: count | deleted | num-fields | field_1 .. field_N | 0
//! entry:        flags | ms-diff | seq-diff | num-fields | f1 | v1 .. | lp-count
//! entry with the master's fields (flag SAMEFIELDS): flags | ms-diff | seq-diff | v1 .. | lp-count
//! ```
//!
//! IDs are stored as differences from the master ID; `lp-count` is the number of
//! listpack elements of the entry before it, so a node can be walked backwards; a
//! deleted entry is only flagged (DELETED) and counted in the master entry, and a
//! node whose last live entry goes is dropped whole. Why this matches Redis's costs:
//! XADD touches only the last node (O(1) amortised: a map lookup of the last key and
//! an append to one listpack); XRANGE seeks the node holding its start in O(log N)
//! and then walks M entries; trimming with `~` drops whole nodes from the front and
//! stops at the first node it cannot drop whole; memory is Redis's (the same listpack
//! bytes, plus one map slot per node instead of a radix-tree node). Because the bytes
//! are Redis's, an RDB or DUMP payload moves nodes in and out unchanged.
//!
//! The one idea to hold: a node's bytes are trusted once built here or checked by
//! [`Stream::validate`] (RDB, RESTORE), so walking them never fails; untrusted bytes
//! never reach the walkers unchecked.
//!
//! Consumer groups are ordered maps too (Redis: radix trees), so XINFO lists groups
//! and consumers by name and PELs by ID, as Redis does.

use super::listpack::{Listpack, LpEntry, Pos};
use std::collections::{BTreeMap, BTreeSet};

/// An entry ID: milliseconds and a sequence number, ordered as a pair.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    pub const MAX: StreamId = StreamId {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    pub const fn new(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }

    /// The next ID (`streamIncrID`), `None` past the last one.
    pub fn incr(self) -> Option<StreamId> {
        if self.seq == u64::MAX {
            (self.ms != u64::MAX).then(|| StreamId::new(self.ms + 1, 0))
        } else {
            Some(StreamId::new(self.ms, self.seq + 1))
        }
    }

    /// The previous ID (`streamDecrID`), `None` before 0-0.
    pub fn decr(self) -> Option<StreamId> {
        if self.seq == 0 {
            (self.ms != 0).then(|| StreamId::new(self.ms - 1, u64::MAX))
        } else {
            Some(StreamId::new(self.ms, self.seq - 1))
        }
    }

    pub fn is_zero(self) -> bool {
        self == StreamId::MIN
    }

    /// The 128-bit big-endian form Redis keys its radix trees (and RDB PELs) with.
    pub fn to_be_bytes(self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.ms.to_be_bytes());
        b[8..].copy_from_slice(&self.seq.to_be_bytes());
        b
    }

    pub fn from_be_bytes(b: &[u8]) -> Option<StreamId> {
        let b: &[u8; 16] = b.try_into().ok()?;
        Some(StreamId::new(
            u64::from_be_bytes(b[..8].try_into().ok()?),
            u64::from_be_bytes(b[8..].try_into().ok()?),
        ))
    }

    /// `ms-seq`, as replies show it.
    pub fn to_text(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(24);
        out.extend_from_slice(itoa::Buffer::new().format(self.ms).as_bytes());
        out.push(b'-');
        out.extend_from_slice(itoa::Buffer::new().format(self.seq).as_bytes());
        out
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// Redis's `string2ull`: a canonical decimal first, else what C's `strtoull` takes
/// whole (leading blanks, a sign, leading zeros; a minus wraps), never empty.
fn string_to_u64(s: &[u8]) -> Option<u64> {
    if let Some(i) = crate::storage::listpack::string_to_int(s) {
        return u64::try_from(i).ok();
    }
    let mut i = crate::protocol::parse::c_skip_space(s, 0);
    let negative;
    (i, negative) = crate::protocol::parse::c_sign(s, i);
    let digits = &s[i..];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: u64 = 0;
    for d in digits {
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(if negative { v.wrapping_neg() } else { v })
}

/// How an ID argument is read (`streamGenericParseIDOrReply`): `strict` refuses `-`
/// and `+`; a missing sequence is `missing_seq`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct IdForm {
    pub strict: bool,
    pub missing_seq: u64,
}

impl IdForm {
    /// XDEL, XREAD, XTRIM MINID...: no `-` / `+`, a missing sequence is 0.
    pub const STRICT: IdForm = IdForm {
        strict: true,
        missing_seq: 0,
    };
    /// XRANGE's bounds: `-` and `+` allowed.
    pub const fn loose(missing_seq: u64) -> IdForm {
        IdForm {
            strict: false,
            missing_seq,
        }
    }
}

/// An ID argument, or `None` for "Invalid stream ID specified as stream command
/// argument".
pub fn parse_id(b: &[u8], form: IdForm) -> Option<StreamId> {
    parse(b, form, false).map(|(id, _)| id)
}

/// XADD's explicit ID: strict, and `ms-*` asks for a generated sequence (the bool
/// is false then).
pub fn parse_add_id(b: &[u8]) -> Option<(StreamId, bool)> {
    parse(b, IdForm::STRICT, true)
}

fn parse(b: &[u8], form: IdForm, star_seq: bool) -> Option<(StreamId, bool)> {
    if b.len() > 127 {
        return None;
    }
    // C strings end at a NUL byte.
    let b = &b[..b.iter().position(|&c| c == 0).unwrap_or(b.len())];
    if b == b"-" || b == b"+" {
        return match (form.strict, b == b"-") {
            (true, _) => None,
            (false, true) => Some((StreamId::MIN, true)),
            (false, false) => Some((StreamId::MAX, true)),
        };
    }
    let missing_seq = form.missing_seq;
    match b.iter().position(|&c| c == b'-') {
        None => Some((StreamId::new(string_to_u64(b)?, missing_seq), true)),
        Some(dash) => {
            let ms = string_to_u64(&b[..dash])?;
            let rest = &b[dash + 1..];
            if star_seq && rest == b"*" {
                return Some((StreamId::new(ms, 0), false));
            }
            Some((StreamId::new(ms, string_to_u64(rest)?), true))
        }
    }
}

const FLAG_DELETED: i64 = 1;
const FLAG_SAMEFIELDS: i64 = 2;
/// Redis never lets a stream listpack grow past 1 GiB (`STREAM_LISTPACK_MAX_SIZE`).
pub const LISTPACK_MAX_SIZE: usize = 1 << 30;
/// A new node preallocates at most this much (`STREAM_LISTPACK_MAX_PRE_ALLOCATE`).
const MAX_PREALLOCATE: usize = 4096;
/// `SCG_INVALID_ENTRIES_READ`: a group's read counter that cannot be known.
pub const INVALID_ENTRIES_READ: i64 = -1;

/// `stream-node-max-bytes` and `stream-node-max-entries` (0: no limit).
#[derive(Clone, Copy, Debug)]
pub struct NodeLimits {
    pub max_bytes: usize,
    pub max_entries: i64,
}

/// A pending entry of a group: delivered to `consumer`, not yet acknowledged.
#[derive(Clone, Debug, PartialEq)]
pub struct Nack {
    /// Unix time in ms of the last delivery.
    pub delivery_time: u64,
    pub delivery_count: u64,
    pub consumer: Box<[u8]>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Consumer {
    /// Unix time in ms of its last interaction.
    pub seen_time: u64,
    /// The IDs it holds in its group's PEL.
    pub pel: BTreeSet<StreamId>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    pub last_id: StreamId,
    /// Entries read by the group, for its lag; [`INVALID_ENTRIES_READ`] if unknown.
    pub entries_read: i64,
    pub pel: BTreeMap<StreamId, Nack>,
    pub consumers: BTreeMap<Box<[u8]>, Consumer>,
}

impl Group {
    pub fn new(last_id: StreamId, entries_read: i64) -> Group {
        Group {
            last_id,
            entries_read,
            pel: BTreeMap::new(),
            consumers: BTreeMap::new(),
        }
    }

    /// The consumer `name`, created if missing (true then); an existing one's seen
    /// time is refreshed when `refresh` (`streamLookupConsumer` / `streamCreateConsumer`).
    pub fn consumer(&mut self, name: &[u8], now: u64, refresh: bool) -> (&mut Consumer, bool) {
        let created = !self.consumers.contains_key(name);
        let c = self
            .consumers
            .entry(name.into())
            .or_insert_with(|| Consumer {
                seen_time: now,
                pel: BTreeSet::new(),
            });
        if refresh {
            c.seen_time = now;
        }
        (c, created)
    }

    /// Drop `id` from the PEL (XACK); false if it was not pending.
    pub fn ack(&mut self, id: StreamId) -> bool {
        let Some(nack) = self.pel.remove(&id) else {
            return false;
        };
        if let Some(c) = self.consumers.get_mut(&nack.consumer) {
            c.pel.remove(&id);
        }
        true
    }

    /// Make `id` pending for `consumer` (which exists), moving it from its previous
    /// owner; a new entry gets `delivery_time` and a count of 0. Returns the entry.
    pub fn assign(&mut self, id: StreamId, consumer: &[u8], delivery_time: u64) -> &mut Nack {
        let previous = self.pel.get(&id).map(|n| n.consumer.clone());
        if let Some(prev) = previous.filter(|p| **p != *consumer) {
            if let Some(c) = self.consumers.get_mut(&prev) {
                c.pel.remove(&id);
            }
        }
        if let Some(c) = self.consumers.get_mut(consumer) {
            c.pel.insert(id);
        }
        let nack = self.pel.entry(id).or_insert_with(|| Nack {
            delivery_time,
            delivery_count: 0,
            consumer: consumer.into(),
        });
        if *nack.consumer != *consumer {
            nack.consumer = consumer.into();
        }
        nack
    }

    /// Remove consumer `name` and its pending entries; how many it had, or `None`.
    pub fn delete_consumer(&mut self, name: &[u8]) -> Option<usize> {
        let c = self.consumers.remove(name)?;
        for id in &c.pel {
            self.pel.remove(id);
        }
        Some(c.pel.len())
    }

    /// Note that the group read `id` (`streamReplyWithRange`'s counter update): the
    /// last delivered ID moves there and entries-read follows when it can be known.
    pub fn advance(&mut self, s: &Stream, id: StreamId) {
        if id <= self.last_id {
            return;
        }
        if self.entries_read != INVALID_ENTRIES_READ && !s.range_has_tombstones(id, StreamId::MAX) {
            self.entries_read = self.entries_read.wrapping_add(1);
        } else if s.entries_added > 0 {
            self.entries_read = s.estimate_distance(id);
        }
        self.last_id = id;
    }
}

/// Why a trim stops where it does (`streamAddTrimArgs` minus the parsing).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TrimTo {
    MaxLen(u64),
    MinId(StreamId),
}

#[derive(Clone, Copy, Debug)]
pub struct Trim {
    pub to: TrimTo,
    /// `~`: only whole nodes go.
    pub approx: bool,
    /// Most entries to remove (0: no limit).
    pub limit: u64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stream {
    nodes: BTreeMap<StreamId, Listpack>,
    length: u64,
    pub last_id: StreamId,
    pub first_id: StreamId,
    pub max_deleted_id: StreamId,
    pub entries_added: u64,
    /// Consumer groups by name; `None` until the first is created (as Redis).
    pub groups: Option<Box<BTreeMap<Box<[u8]>, Group>>>,
}

/// The master entry of a node, decoded.
struct Master {
    count: i64,
    deleted: i64,
    /// Position of the first master field (or of the terminator when none).
    fields: Pos,
    nfields: usize,
    /// Position of the first entry's flags, if any.
    first: Option<Pos>,
}

/// One entry of a node, located.
#[derive(Clone, Copy)]
struct Item {
    flags_pos: Pos,
    flags: i64,
    id: StreamId,
    nfields: usize,
    /// First field (or value, with SAMEFIELDS).
    body: Pos,
    /// The node's first master field (what SAMEFIELDS values pair with).
    master_fields: Pos,
    /// The next entry's flags, if any.
    next: Option<Pos>,
}

fn int(lp: &Listpack, p: Pos) -> i64 {
    match lp.get(p) {
        LpEntry::Int(i) => i,
        LpEntry::Str(s) => crate::storage::listpack::string_to_int(s).unwrap_or(0),
    }
}

fn step(lp: &Listpack, p: Pos, n: usize) -> Option<Pos> {
    let mut p = p;
    for _ in 0..n {
        p = lp.next(p)?;
    }
    Some(p)
}

fn master(lp: &Listpack) -> Master {
    let p = lp.first().expect("a stream node has a master entry");
    let count = int(lp, p);
    let p = lp.next(p).expect("master: deleted");
    let deleted = int(lp, p);
    let p = lp.next(p).expect("master: num-fields");
    let nfields = int(lp, p).max(0) as usize;
    let fields = lp.next(p).expect("master: fields");
    let terminator = step(lp, fields, nfields).expect("master: terminator");
    Master {
        count,
        deleted,
        fields,
        nfields,
        first: lp.next(terminator),
    }
}

fn item_at(lp: &Listpack, base: StreamId, m: &Master, p: Pos) -> Item {
    let flags = int(lp, p);
    let q = lp.next(p).expect("entry: ms");
    let ms = base.ms.wrapping_add(int(lp, q) as u64);
    let q = lp.next(q).expect("entry: seq");
    let seq = base.seq.wrapping_add(int(lp, q) as u64);
    let (nfields, body, values) = if flags & FLAG_SAMEFIELDS != 0 {
        (m.nfields, lp.next(q).expect("entry: values"), m.nfields)
    } else {
        let q = lp.next(q).expect("entry: num-fields");
        let n = int(lp, q).max(0) as usize;
        (n, lp.next(q).expect("entry: fields"), 2 * n)
    };
    let lp_count = step(lp, body, values).expect("entry: lp-count");
    Item {
        flags_pos: p,
        flags,
        id: StreamId::new(ms, seq),
        nfields,
        body,
        master_fields: m.fields,
        next: lp.next(lp_count),
    }
}

/// The entries of one node, in order (tombstones included).
fn items(lp: &Listpack, base: StreamId) -> impl Iterator<Item = Item> + '_ {
    let m = master(lp);
    let mut at = m.first;
    std::iter::from_fn(move || {
        let p = at?;
        let it = item_at(lp, base, &m, p);
        at = it.next;
        Some(it)
    })
}

/// A live entry as read: its ID and its field / value pairs.
pub struct Entry<'a> {
    pub id: StreamId,
    pub fields: Vec<(LpEntry<'a>, LpEntry<'a>)>,
}

fn entry<'a>(lp: &'a Listpack, it: &Item) -> Entry<'a> {
    let mut fields = Vec::with_capacity(it.nfields);
    let mut p = Some(it.body);
    if it.flags & FLAG_SAMEFIELDS != 0 {
        let mut f = Some(it.master_fields);
        for _ in 0..it.nfields {
            let (fp, vp) = (f.expect("master field"), p.expect("value"));
            fields.push((lp.get(fp), lp.get(vp)));
            f = lp.next(fp);
            p = lp.next(vp);
        }
    } else {
        for _ in 0..it.nfields {
            let fp = p.expect("field");
            let vp = lp.next(fp).expect("value");
            fields.push((lp.get(fp), lp.get(vp)));
            p = lp.next(vp);
        }
    }
    Entry { id: it.id, fields }
}

impl Stream {
    pub fn new() -> Stream {
        Stream::default()
    }

    /// Live entries.
    pub fn len(&self) -> u64 {
        self.length
    }

    pub fn is_empty(&self) -> bool {
        self.length == 0
    }

    /// Number of nodes (XINFO STREAM `radix-tree-keys`).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The nodes by master ID, as RDB stores them.
    pub fn nodes(&self) -> impl Iterator<Item = (&StreamId, &Listpack)> {
        self.nodes.iter()
    }

    pub fn groups(&self) -> impl Iterator<Item = (&Box<[u8]>, &Group)> {
        self.groups.iter().flat_map(|g| g.iter())
    }

    pub fn group(&self, name: &[u8]) -> Option<&Group> {
        self.groups.as_ref()?.get(name)
    }

    pub fn group_mut(&mut self, name: &[u8]) -> Option<&mut Group> {
        self.groups.as_mut()?.get_mut(name)
    }

    /// Add group `name`; false if it exists.
    pub fn create_group(&mut self, name: &[u8], last_id: StreamId, entries_read: i64) -> bool {
        let groups = self.groups.get_or_insert_with(Default::default);
        if groups.contains_key(name) {
            return false;
        }
        groups.insert(name.into(), Group::new(last_id, entries_read));
        true
    }

    /// Remove group `name`; false if there was none.
    pub fn destroy_group(&mut self, name: &[u8]) -> bool {
        self.groups
            .as_mut()
            .is_some_and(|g| g.remove(name).is_some())
    }

    /// Take group `name` out to work on it beside the entries ([`Stream::put_group`]
    /// puts it back).
    pub fn take_group(&mut self, name: &[u8]) -> Option<(Box<[u8]>, Group)> {
        self.groups.as_mut()?.remove_entry(name)
    }

    pub fn put_group(&mut self, name: Box<[u8]>, g: Group) {
        self.groups
            .get_or_insert_with(Default::default)
            .insert(name, g);
    }

    /// Nodes of the radix tree Redis would hold for these node keys (XINFO STREAM
    /// `radix-tree-nodes`): a compressed trie over the 16-byte master IDs, counted as
    /// rax counts it (one node per branching point, per compressed run, per key).
    pub fn rax_nodes(&self) -> usize {
        let keys: Vec<[u8; 16]> = self.nodes.keys().map(|k| k.to_be_bytes()).collect();
        if keys.is_empty() {
            return 1;
        }
        rax_subtree(&keys, 0)
    }

    /// Heap bytes owned (MEMORY USAGE): the listpacks, a map slot per node, and the
    /// groups with their PELs and consumers.
    pub fn heap_size(&self) -> usize {
        use crate::storage::alloc_size;
        let nodes: usize = self
            .nodes
            .values()
            .map(|lp| alloc_size(lp.heap_size()) + 48)
            .sum();
        let groups: usize = self
            .groups()
            .map(|(name, g)| {
                alloc_size(name.len())
                    + 96
                    + g.pel
                        .values()
                        .map(|n| 56 + alloc_size(n.consumer.len()))
                        .sum::<usize>()
                    + g.consumers
                        .iter()
                        .map(|(n, c)| alloc_size(n.len()) + 64 + 24 * c.pel.len())
                        .sum::<usize>()
            })
            .sum();
        nodes + groups
    }

    /// The ID XADD generates at `now_ms` (`streamNextID`); `None` once the last ID
    /// possible was used.
    pub fn next_id(&self, now_ms: u64) -> Option<StreamId> {
        if now_ms > self.last_id.ms {
            Some(StreamId::new(now_ms, 0))
        } else {
            self.last_id.incr()
        }
    }

    /// Append an entry with `id` (already checked to be above `last_id`) and the
    /// field / value pairs `pairs` (`streamAppendItem` after its checks).
    pub fn append<B: AsRef<[u8]>>(&mut self, id: StreamId, pairs: &[B], limits: NodeLimits) {
        debug_assert!(id > self.last_id);
        let numfields = pairs.len() / 2;
        let element_bytes: usize = pairs.iter().map(|b| b.as_ref().len()).sum();
        let max_bytes = if limits.max_bytes == 0 || limits.max_bytes > LISTPACK_MAX_SIZE {
            LISTPACK_MAX_SIZE
        } else {
            limits.max_bytes
        };
        // Room in the last node? Then count the entry in its master entry, and see
        // whether it has the master's fields (compared before the count is rewritten,
        // which may move them).
        let mut flags = 0;
        let mut master_id = None;
        if let Some((&key, lp)) = self.nodes.iter_mut().next_back() {
            let m = master(lp);
            let full = lp.bytes() + element_bytes >= max_bytes
                || (limits.max_entries != 0 && m.count + m.deleted >= limits.max_entries);
            if full {
                lp.shrink_to_fit();
            } else {
                if m.nfields == numfields {
                    let mut f = Some(m.fields);
                    let same = (0..numfields).all(|i| {
                        let fp = f.expect("master field");
                        f = lp.next(fp);
                        lp.get(fp).eq_bytes(pairs[2 * i].as_ref())
                    });
                    if same {
                        flags |= FLAG_SAMEFIELDS;
                    }
                }
                let p = lp.first().expect("master count");
                lp.replace_int(p, m.count + 1);
                master_id = Some(key);
            }
        }
        let master_id = match master_id {
            Some(key) => key,
            None => {
                let prealloc = if limits.max_bytes > 0 && limits.max_bytes < MAX_PREALLOCATE {
                    limits.max_bytes
                } else {
                    MAX_PREALLOCATE
                };
                let mut lp = Listpack::with_capacity(prealloc);
                lp.push_back_int(1);
                lp.push_back_int(0);
                lp.push_back_int(numfields as i64);
                for pair in pairs.chunks(2) {
                    lp.push_back(pair[0].as_ref());
                }
                lp.push_back_int(0);
                self.nodes.insert(id, lp);
                flags |= FLAG_SAMEFIELDS;
                id
            }
        };
        let lp = self.nodes.get_mut(&master_id).expect("node");
        lp.push_back_int(flags);
        lp.push_back_int(id.ms.wrapping_sub(master_id.ms) as i64);
        lp.push_back_int(id.seq.wrapping_sub(master_id.seq) as i64);
        let same = flags & FLAG_SAMEFIELDS != 0;
        if !same {
            lp.push_back_int(numfields as i64);
        }
        for pair in pairs.chunks(2) {
            if !same {
                lp.push_back(pair[0].as_ref());
            }
            lp.push_back(pair[1].as_ref());
        }
        let lp_count = numfields + 3 + if same { 0 } else { numfields + 1 };
        lp.push_back_int(lp_count as i64);
        self.length += 1;
        self.entries_added += 1;
        self.last_id = id;
        if self.length == 1 {
            self.first_id = id;
        }
    }

    /// Visit the live entries from `start` to `end` (both inclusive) in order, or in
    /// reverse; `f` returns false to stop. Returns how many were visited.
    pub fn range(
        &self,
        start: StreamId,
        end: StreamId,
        rev: bool,
        mut f: impl FnMut(Entry<'_>) -> bool,
    ) -> usize {
        let mut n = 0;
        if start > end {
            return 0;
        }
        if !rev {
            let from = self
                .nodes
                .range(..=start)
                .next_back()
                .map_or(StreamId::MIN, |(k, _)| *k);
            for (base, lp) in self.nodes.range(from..) {
                if *base > end {
                    break;
                }
                for it in items(lp, *base) {
                    if it.id < start || it.flags & FLAG_DELETED != 0 {
                        continue;
                    }
                    if it.id > end {
                        return n;
                    }
                    n += 1;
                    if !f(entry(lp, &it)) {
                        return n;
                    }
                }
            }
        } else {
            for (base, lp) in self.nodes.range(..=end).rev() {
                let all: Vec<Item> = items(lp, *base).collect();
                for it in all.iter().rev() {
                    if it.id > end || it.flags & FLAG_DELETED != 0 {
                        continue;
                    }
                    if it.id < start {
                        return n;
                    }
                    n += 1;
                    if !f(entry(lp, it)) {
                        return n;
                    }
                }
            }
        }
        n
    }

    /// The first (or last) entry's ID, tombstones counted or not (`streamGetEdgeID`);
    /// `None` when there is none.
    pub fn edge_id(&self, first: bool, skip_tombstones: bool) -> Option<StreamId> {
        let live = |it: &Item| !skip_tombstones || it.flags & FLAG_DELETED == 0;
        if first {
            self.nodes
                .iter()
                .find_map(|(base, lp)| items(lp, *base).find(live).map(|it| it.id))
        } else {
            self.nodes.iter().rev().find_map(|(base, lp)| {
                let all: Vec<Item> = items(lp, *base).collect();
                all.into_iter().rev().find(live).map(|it| it.id)
            })
        }
    }

    /// The last live entry's ID (`streamLastValidID`), 0-0 when empty.
    pub fn last_valid_id(&self) -> StreamId {
        self.edge_id(false, true).unwrap_or(StreamId::MIN)
    }

    /// True if a live entry has this ID.
    pub fn contains(&self, id: StreamId) -> bool {
        self.range(id, id, false, |_| false) == 1
    }

    /// Flag the live entry `id` deleted (`streamDeleteItem`); false if there is none.
    /// The caller updates `first_id` / `max_deleted_id` as XDEL does.
    pub fn delete(&mut self, id: StreamId) -> bool {
        let Some((&base, _)) = self.nodes.range(..=id).next_back() else {
            return false;
        };
        let lp = self.nodes.get_mut(&base).expect("node");
        let Some(it) = items(lp, base).find(|it| it.id == id) else {
            return false;
        };
        if it.flags & FLAG_DELETED != 0 {
            return false;
        }
        let m = master(lp);
        if m.count == 1 {
            self.nodes.remove(&base);
        } else {
            lp.replace_int(it.flags_pos, it.flags | FLAG_DELETED);
            let p = lp.first().expect("master count");
            let p = lp.replace_int(p, m.count - 1);
            let p = lp.next(p).expect("master deleted");
            lp.replace_int(p, m.deleted + 1);
        }
        self.length -= 1;
        true
    }

    /// Trim from the oldest entries (`streamTrim`); returns how many went.
    pub fn trim(&mut self, t: Trim) -> u64 {
        let mut deleted: u64 = 0;
        while let Some((&base, lp)) = self.nodes.first_key_value() {
            if let TrimTo::MaxLen(max) = t.to {
                if self.length <= max {
                    break;
                }
            }
            let m = master(lp);
            let entries = m.count.max(0) as u64;
            if t.limit != 0 && deleted + entries > t.limit {
                break;
            }
            let remove_node = match t.to {
                TrimTo::MaxLen(max) => self.length - entries >= max,
                TrimTo::MinId(min) => {
                    let last = items(lp, base).last().map_or(base, |it| it.id);
                    last < min
                }
            };
            if remove_node {
                self.nodes.remove(&base);
                self.length -= entries;
                deleted += entries;
                continue;
            }
            if t.approx {
                break;
            }
            // Flag entries inside this node until the target is met.
            let lp = self.nodes.get_mut(&base).expect("node");
            let mut from_node: i64 = 0;
            let mut at = master(lp).first;
            while let Some(p) = at {
                let m = master(lp);
                let it = item_at(lp, base, &m, p);
                let stop = match t.to {
                    TrimTo::MaxLen(max) => self.length <= max,
                    TrimTo::MinId(min) => it.id >= min,
                };
                if stop {
                    break;
                }
                if it.flags & FLAG_DELETED == 0 {
                    // Same-size replacement: flags 0..3 are 1-byte integers.
                    lp.replace_int(p, it.flags | FLAG_DELETED);
                    from_node += 1;
                    self.length -= 1;
                }
                at = item_at(lp, base, &master(lp), p).next;
            }
            let p = lp.first().expect("master count");
            let p = lp.replace_int(p, m.count - from_node);
            let p = lp.next(p).expect("master deleted");
            lp.replace_int(p, m.deleted + from_node);
            deleted += from_node as u64;
            break;
        }
        if self.length == 0 {
            self.first_id = StreamId::MIN;
        } else if deleted > 0 {
            self.first_id = self.edge_id(true, true).unwrap_or(StreamId::MAX);
        }
        deleted
    }

    /// True if a tombstone may lie between `start` and `end` (`streamRangeHasTombstones`).
    pub fn range_has_tombstones(&self, start: StreamId, end: StreamId) -> bool {
        if self.length == 0 || self.max_deleted_id.is_zero() {
            return false;
        }
        if self.first_id > self.max_deleted_id {
            return false;
        }
        start <= self.max_deleted_id && self.max_deleted_id <= end
    }

    /// An ID's logical read counter, if it can be known
    /// (`streamEstimateDistanceFromFirstEverEntry`); [`INVALID_ENTRIES_READ`] if not.
    pub fn estimate_distance(&self, id: StreamId) -> i64 {
        if self.entries_added == 0 {
            return 0;
        }
        if self.length == 0 && id <= self.last_id {
            return self.entries_added as i64;
        }
        match id.cmp(&self.last_id) {
            std::cmp::Ordering::Equal => return self.entries_added as i64,
            std::cmp::Ordering::Greater => return INVALID_ENTRIES_READ,
            std::cmp::Ordering::Less => {}
        }
        if self.max_deleted_id.is_zero() || self.max_deleted_id < self.first_id {
            match id.cmp(&self.first_id) {
                std::cmp::Ordering::Less => return (self.entries_added - self.length) as i64,
                std::cmp::Ordering::Equal => return (self.entries_added - self.length + 1) as i64,
                std::cmp::Ordering::Greater => {}
            }
        }
        INVALID_ENTRIES_READ
    }

    /// A group's lag (XINFO), `None` when it cannot be known (`streamReplyWithCGLag`).
    pub fn lag(&self, g: &Group) -> Option<i64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        if g.entries_read != INVALID_ENTRIES_READ
            && !self.range_has_tombstones(g.last_id, StreamId::MAX)
        {
            return Some((self.entries_added as i64).wrapping_sub(g.entries_read));
        }
        let read = self.estimate_distance(g.last_id);
        (read != INVALID_ENTRIES_READ).then(|| (self.entries_added as i64).wrapping_sub(read))
    }

    /// Insert a node loaded from RDB or RESTORE; false if one with that master ID is
    /// already there. The caller checks the whole stream with [`Stream::validate`].
    pub fn load_node(&mut self, master: StreamId, lp: Listpack) -> bool {
        if self.nodes.contains_key(&master) {
            return false;
        }
        self.nodes.insert(master, lp);
        true
    }

    /// Set the length read from RDB (checked by [`Stream::validate`]).
    pub fn set_loaded_length(&mut self, length: u64) {
        self.length = length;
    }

    /// Check a loaded stream before any walker trusts it: every node's listpack has
    /// a well-formed master entry and entries (integers where integers go, the
    /// counts and `lp-count` right), IDs rise strictly from node to node and never
    /// exceed `last_id`, the length is the number of live entries, and the groups'
    /// PELs and consumers agree. `Err` names what is wrong.
    pub fn validate(&self) -> Result<(), &'static str> {
        self.validate_nodes()?;
        self.validate_groups()
    }

    /// The node and counter half of [`Stream::validate`].
    pub fn validate_nodes(&self) -> Result<(), &'static str> {
        let mut prev: Option<StreamId> = None;
        let mut live: u64 = 0;
        for (base, lp) in &self.nodes {
            let (count, entries) = check_node(lp, *base, prev)?;
            live += count;
            prev = entries.or(prev);
        }
        if live != self.length {
            return Err("stream length does not match its entries");
        }
        if let Some(last) = prev {
            if last > self.last_id {
                return Err("stream entry above the stream's last ID");
            }
        }
        Ok(())
    }

    /// The group half of [`Stream::validate`]: PELs and consumers agree.
    pub fn validate_groups(&self) -> Result<(), &'static str> {
        for (_, g) in self.groups() {
            let mut owned = 0;
            for (cname, c) in &g.consumers {
                for id in &c.pel {
                    match g.pel.get(id) {
                        Some(n) if *n.consumer == **cname => owned += 1,
                        _ => return Err("consumer PEL entry not in its group's PEL"),
                    }
                }
            }
            if owned != g.pel.len() {
                return Err("group PEL entry without a consumer");
            }
        }
        Ok(())
    }
}

/// Nodes of a rax subtree holding `keys` (sorted, distinct, 16 bytes) that all share
/// their first `depth` bytes, the subtree's node standing at `depth`.
fn rax_subtree(keys: &[[u8; 16]], depth: usize) -> usize {
    if depth == 16 {
        return 1; // The key's own (leaf) node.
    }
    let (first, last) = (&keys[0], &keys[keys.len() - 1]);
    let common = (depth..16).take_while(|&i| first[i] == last[i]).count();
    if common > 0 {
        // A compressed node for the shared run, then what follows it.
        return 1 + rax_subtree(keys, depth + common);
    }
    // A branching node, one child per distinct byte.
    let mut n = 1;
    let mut start = 0;
    while start < keys.len() {
        let b = keys[start][depth];
        let end = start + keys[start..].iter().take_while(|k| k[depth] == b).count();
        n += rax_subtree(&keys[start..end], depth + 1);
        start = end;
    }
    n
}

fn checked_int(lp: &Listpack, p: Option<Pos>) -> Result<(i64, Pos), &'static str> {
    let p = p.ok_or("stream node too short")?;
    match lp.get(p) {
        LpEntry::Int(i) => Ok((i, p)),
        LpEntry::Str(_) => Err("stream node integer expected"),
    }
}

/// Check one node; returns its live entries and its last entry's ID.
fn check_node(
    lp: &Listpack,
    base: StreamId,
    prev: Option<StreamId>,
) -> Result<(u64, Option<StreamId>), &'static str> {
    let (count, p) = checked_int(lp, lp.first())?;
    let (deleted, p) = checked_int(lp, lp.next(p))?;
    let (nfields, p) = checked_int(lp, lp.next(p))?;
    if count < 0 || deleted < 0 || nfields < 0 {
        return Err("stream node master entry is invalid");
    }
    let mut at = lp.next(p);
    for _ in 0..nfields {
        at = lp.next(at.ok_or("stream node master fields missing")?);
    }
    let (zero, p) = checked_int(lp, at)?;
    if zero != 0 {
        return Err("stream node master entry terminator is not 0");
    }
    let mut at = lp.next(p);
    let (mut seen_live, mut seen_deleted) = (0i64, 0i64);
    let mut last = prev;
    while at.is_some() {
        let (flags, p) = checked_int(lp, at)?;
        if !(0..=3).contains(&flags) {
            return Err("stream entry flags are invalid");
        }
        let (ms, p) = checked_int(lp, lp.next(p))?;
        let (seq, mut p) = checked_int(lp, lp.next(p))?;
        let id = StreamId::new(
            base.ms.wrapping_add(ms as u64),
            base.seq.wrapping_add(seq as u64),
        );
        if id < base || last.is_some_and(|l| id <= l) {
            return Err("stream entry IDs are out of order");
        }
        last = Some(id);
        let (n, elements) = if flags & FLAG_SAMEFIELDS != 0 {
            (nfields, nfields)
        } else {
            let (n, q) = checked_int(lp, lp.next(p))?;
            if n < 0 {
                return Err("stream entry field count is negative");
            }
            p = q;
            (n, n.checked_mul(2).ok_or("stream entry too large")?)
        };
        let mut q = p;
        for _ in 0..elements {
            q = lp.next(q).ok_or("stream entry too short")?;
        }
        let (lp_count, q) = checked_int(lp, lp.next(q))?;
        let expected = n
            + 3
            + if flags & FLAG_SAMEFIELDS != 0 {
                0
            } else {
                n + 1
            };
        if lp_count != expected {
            return Err("stream entry lp-count is wrong");
        }
        if flags & FLAG_DELETED != 0 {
            seen_deleted += 1;
        } else {
            seen_live += 1;
        }
        at = lp.next(q);
    }
    if seen_live != count || seen_deleted != deleted {
        return Err("stream node counts do not match its entries");
    }
    Ok((count as u64, last.filter(|_| seen_live + seen_deleted > 0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: NodeLimits = NodeLimits {
        max_bytes: 4096,
        max_entries: 100,
    };

    fn ids(s: &Stream, rev: bool) -> Vec<StreamId> {
        let mut out = Vec::new();
        s.range(StreamId::MIN, StreamId::MAX, rev, |e| {
            out.push(e.id);
            true
        });
        out
    }

    fn filled(n: u64, limits: NodeLimits) -> Stream {
        let mut s = Stream::new();
        for i in 1..=n {
            let v = i.to_string();
            if i % 3 == 0 {
                s.append(StreamId::new(i, 0), &["other", v.as_str()], limits);
            } else {
                s.append(StreamId::new(i, 0), &["a", v.as_str(), "b", "x"], limits);
            }
        }
        s
    }

    #[test]
    fn ids_parse_as_redis() {
        let strict = IdForm::STRICT;
        assert_eq!(parse_id(b"5", strict), Some(StreamId::new(5, 0)));
        assert_eq!(parse_id(b"5-3", strict), Some(StreamId::new(5, 3)));
        assert_eq!(parse_id(b"-", strict), None);
        assert_eq!(parse_id(b"+", strict), None);
        assert_eq!(parse_id(b"5-", strict), None);
        assert_eq!(parse_id(b"-5", strict), None);
        assert_eq!(parse_id(b"abc", strict), None);
        assert_eq!(parse_id(b"", strict), None);
        assert_eq!(parse_id(b"007", strict), Some(StreamId::new(7, 0)));
        assert_eq!(parse_id(b" 7", strict), Some(StreamId::new(7, 0)));
        assert_eq!(parse_id(b"18446744073709551616", strict), None);
        let loose = IdForm::loose(u64::MAX);
        assert_eq!(parse_id(b"-", loose), Some(StreamId::MIN));
        assert_eq!(parse_id(b"+", loose), Some(StreamId::MAX));
        assert_eq!(parse_id(b"5", loose), Some(StreamId::new(5, u64::MAX)));
        assert_eq!(parse_add_id(b"5-*"), Some((StreamId::new(5, 0), false)));
        assert_eq!(parse_id(b"5-*", strict), None);
    }

    #[test]
    fn append_fills_nodes_and_walks_both_ways() {
        let s = filled(250, LIMITS);
        assert_eq!(s.len(), 250);
        assert_eq!(s.node_count(), 3);
        let fwd = ids(&s, false);
        assert_eq!(fwd.len(), 250);
        assert!(fwd.windows(2).all(|w| w[0] < w[1]));
        let mut rev = ids(&s, true);
        rev.reverse();
        assert_eq!(fwd, rev);
        s.validate().unwrap();
        let mut got = Vec::new();
        s.range(StreamId::new(3, 0), StreamId::new(4, 0), false, |e| {
            got.push(
                e.fields
                    .iter()
                    .map(|(f, v)| (f.to_vec(), v.to_vec()))
                    .collect::<Vec<_>>(),
            );
            true
        });
        assert_eq!(
            got,
            vec![
                vec![(b"other".to_vec(), b"3".to_vec())],
                vec![
                    (b"a".to_vec(), b"4".to_vec()),
                    (b"b".to_vec(), b"x".to_vec())
                ],
            ]
        );
    }

    #[test]
    fn delete_flags_and_drops_empty_nodes() {
        let mut s = filled(5, LIMITS);
        assert!(s.delete(StreamId::new(2, 0)));
        assert!(!s.delete(StreamId::new(2, 0)));
        assert!(!s.delete(StreamId::new(9, 0)));
        assert_eq!(s.len(), 4);
        s.validate().unwrap();
        for i in [1, 3, 4, 5] {
            assert!(s.delete(StreamId::new(i, 0)));
        }
        assert_eq!(s.node_count(), 0);
        assert!(s.is_empty());
    }

    #[test]
    fn trim_exact_and_approx() {
        let mut s = filled(250, LIMITS);
        let t = |to, approx| Trim {
            to,
            approx,
            limit: 0,
        };
        assert_eq!(s.trim(t(TrimTo::MaxLen(220), true)), 0);
        assert_eq!(s.trim(t(TrimTo::MaxLen(140), true)), 100);
        assert_eq!(s.trim(t(TrimTo::MaxLen(120), false)), 30);
        assert_eq!(s.len(), 120);
        assert_eq!(s.first_id, StreamId::new(131, 0));
        s.validate().unwrap();
        assert_eq!(s.trim(t(TrimTo::MinId(StreamId::new(200, 0)), false)), 69);
        assert_eq!(ids(&s, false)[0], StreamId::new(200, 0));
        s.validate().unwrap();
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        /// A node's bytes as an RDB file or a RESTORE payload could carry them, with
        /// bytes changed and possibly cut short: either refused (by the listpack check
        /// or [`Stream::validate`]) or, if accepted, every walk and edit works without
        /// a panic.
        #[test]
        fn mutated_nodes_are_refused_or_safe(
            flips in proptest::collection::vec((0usize..10_000, proptest::prelude::any::<u8>()), 0..6),
            cut in proptest::option::of(0usize..10_000),
            same_fields in proptest::prelude::any::<bool>(),
            edits in proptest::collection::vec((0usize..200, 0u8..3, -3i64..40), 0..4),
        ) {
            let limits = NodeLimits { max_bytes: 0, max_entries: 0 };
            let mut src = Stream::new();
            for i in 1..=12u64 {
                let v = (i * 977).to_string();
                let f: &str = if same_fields || i % 3 != 0 { "f" } else { "g" };
                src.append(StreamId::new(i, i % 2), &[f, v.as_str(), "x", "yy"], limits);
            }
            src.delete(StreamId::new(4, 0));
            let (base, lp) = src.nodes().next().unwrap();
            // Element-level edits keep the listpack well formed and break the stream
            // layout inside it: what only `validate` can catch.
            let mut elements: Vec<Vec<u8>> = lp.iter().map(|e| e.to_vec()).collect();
            for (at, op, v) in edits {
                let at = at % elements.len();
                match op {
                    0 => elements[at] = v.to_string().into_bytes(),
                    1 => { elements.remove(at); }
                    _ => elements.insert(at, v.to_string().into_bytes()),
                }
                if elements.is_empty() {
                    return Ok(());
                }
            }
            let mut rebuilt = Listpack::new();
            for e in &elements {
                rebuilt.push_back(e);
            }
            let mut bytes = rebuilt.as_bytes().to_vec();
            for (at, x) in flips {
                let n = bytes.len();
                bytes[at % n] ^= x;
            }
            if let Some(c) = cut {
                bytes.truncate(c % (bytes.len() + 1));
            }
            let Some(lp) = Listpack::from_bytes(bytes) else { return Ok(()) };
            for length in 0..=13u64 {
                let mut t = Stream::new();
                t.load_node(*base, lp.clone());
                t.set_loaded_length(length);
                t.last_id = StreamId::MAX.decr().unwrap();
                if t.validate().is_err() {
                    continue;
                }
                let mut n = 0;
                t.range(StreamId::MIN, StreamId::MAX, false, |e| { n += e.fields.len(); true });
                t.range(StreamId::MIN, StreamId::MAX, true, |e| { n += e.fields.len(); true });
                let _ = (t.edge_id(true, true), t.edge_id(false, false), t.rax_nodes(), n);
                t.delete(StreamId::new(5, 1));
                t.append(StreamId::MAX, &["f", "v"], limits);
                t.trim(Trim { to: TrimTo::MaxLen(3), approx: false, limit: 0 });
                t.trim(Trim { to: TrimTo::MinId(StreamId::new(9, 0)), approx: false, limit: 0 });
                proptest::prop_assert!(t.validate().is_ok());
            }
        }
    }

    #[test]
    fn validate_refuses_bad_nodes() {
        let s = filled(10, LIMITS);
        let (base, lp) = s.nodes().next().unwrap();
        let mut bad = Stream::new();
        let mut broken = Listpack::new();
        for e in lp.iter().take(5) {
            broken.push_back(&e.to_vec());
        }
        bad.load_node(*base, broken);
        bad.set_loaded_length(10);
        bad.last_id = s.last_id;
        assert!(bad.validate().is_err());
    }
}
