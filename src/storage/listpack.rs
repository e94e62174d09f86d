//! Listpack: Redis 7.0's compact encoding for small collections, byte for byte.
//!
//! API SKELETON written by the lead so that the list, hash, set and zset modules can be
//! written against it in parallel; the listpack owner fills in the bodies and may add
//! methods, but must not change these signatures.
//!
//! Layout (as Redis's listpack.md): `<total-bytes u32 LE> <num-elements u16 LE>
//! <entry>* <0xFF>`; each entry is `<encoding+data> <backlen>`, integers in the smallest
//! of the 7-bit / 13-bit / 16 / 24 / 32 / 64-bit forms, strings with 6-bit / 12-bit /
//! 32-bit lengths; num-elements saturates at 65535 (then counting walks the entries).
//! Being Redis's exact bytes, an RDB file stores and loads a listpack as one blob.

/// One entry as read: listpacks store integer-looking strings as integers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LpEntry<'a> {
    Int(i64),
    Str(&'a [u8]),
}

impl LpEntry<'_> {
    /// The entry's bytes as a client sees them (an integer in decimal).
    pub fn to_vec(&self) -> Vec<u8> {
        todo!()
    }
    /// Append the entry's bytes to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let _ = out;
        todo!()
    }
    /// True if the entry reads as exactly these bytes.
    pub fn eq_bytes(&self, b: &[u8]) -> bool {
        let _ = b;
        todo!()
    }
    /// Length in bytes of the entry as a string.
    pub fn str_len(&self) -> usize {
        todo!()
    }
}

/// Byte offset of an entry inside a listpack; valid until the listpack next changes.
pub type Pos = usize;

/// Where [`Listpack::insert`] puts the new entry relative to the given one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Where {
    Before,
    After,
}

#[derive(Clone, PartialEq, Eq)]
pub struct Listpack {
    buf: Vec<u8>,
}

impl std::fmt::Debug for Listpack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Default for Listpack {
    fn default() -> Self {
        Self::new()
    }
}

impl Listpack {
    pub fn new() -> Self {
        todo!()
    }
    /// A listpack from Redis's bytes (an RDB blob), if they are well formed.
    pub fn from_bytes(buf: Vec<u8>) -> Option<Self> {
        let _ = buf;
        todo!()
    }
    /// Redis's bytes (what an RDB file stores).
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }
    /// Number of entries.
    pub fn len(&self) -> usize {
        todo!()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Total size in bytes (header and terminator included), as `lpBytes`.
    pub fn bytes(&self) -> usize {
        self.buf.len()
    }
    pub fn first(&self) -> Option<Pos> {
        todo!()
    }
    pub fn last(&self) -> Option<Pos> {
        todo!()
    }
    pub fn next(&self, p: Pos) -> Option<Pos> {
        let _ = p;
        todo!()
    }
    pub fn prev(&self, p: Pos) -> Option<Pos> {
        let _ = p;
        todo!()
    }
    /// The entry at `p`.
    pub fn get(&self, p: Pos) -> LpEntry<'_> {
        let _ = p;
        todo!()
    }
    /// The entry at `index` (negative counts from the tail: -1 is the last), as `lpSeek`.
    pub fn seek(&self, index: i64) -> Option<Pos> {
        let _ = index;
        todo!()
    }
    /// Entries from head to tail.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = LpEntry<'_>> + '_ {
        let _ = self;
        std::iter::empty()
    }
    /// Append at the tail; integer-looking strings are stored as integers.
    pub fn push_back(&mut self, v: &[u8]) {
        let _ = v;
        todo!()
    }
    /// Insert at the head.
    pub fn push_front(&mut self, v: &[u8]) {
        let _ = v;
        todo!()
    }
    /// Insert `v` before or after the entry at `p`; returns the new entry's position.
    pub fn insert(&mut self, p: Pos, v: &[u8], place: Where) -> Pos {
        let _ = (p, v, place);
        todo!()
    }
    /// Replace the entry at `p`; returns its (possibly moved) position.
    pub fn replace(&mut self, p: Pos, v: &[u8]) -> Pos {
        let _ = (p, v);
        todo!()
    }
    /// Delete the entry at `p`; returns the position of the entry that followed it.
    pub fn delete(&mut self, p: Pos) -> Option<Pos> {
        let _ = p;
        todo!()
    }
    /// Delete `count` entries starting at index `start` (clamped to the end).
    pub fn delete_range(&mut self, start: usize, count: usize) {
        let _ = (start, count);
        todo!()
    }
    /// The first entry at or after `from` equal to `v`, looking only at every
    /// `skip + 1`-th entry (skip 1 visits the fields of a field/value listpack).
    pub fn find(&self, from: Pos, v: &[u8], skip: usize) -> Option<Pos> {
        let _ = (from, v, skip);
        todo!()
    }
}
