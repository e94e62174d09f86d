//! Listpack: Redis 7.0's compact encoding for small collections, byte for byte.
//!
//! Owns: the bytes of one listpack and every edit to them. Lists, hashes (field/value
//! pairs) and sorted sets (member/score pairs) use it while small; the RDB layer stores
//! and loads it as one blob, so the bytes must be exactly the ones redis-server writes.
//!
//! Layout (as Redis's listpack.md): `<total-bytes u32 LE> <num-elements u16 LE>
//! <entry>* <0xFF>`; each entry is `<encoding+data> <backlen>`, integers in the smallest
//! of the 7-bit / 13-bit / 16 / 24 / 32 / 64-bit forms, strings with 6-bit / 12-bit /
//! 32-bit lengths; num-elements saturates at 65535 (then counting walks the entries).
//!
//! The one idea to hold: a [`Pos`] is a byte offset, and every entry carries its own
//! length twice: forwards in its encoding byte(s) and backwards in its `backlen` (the
//! size of encoding+data, 7 bits per byte, read from the entry's last byte towards its
//! first, the high bit meaning "one more byte to the left"). So walking either way is
//! cheap and an edit is one `memmove` of the tail. [`Listpack::from_bytes`] checks all of
//! that on untrusted input, so every other method may trust the buffer.
//!
//! Hand-written rather than a crate: the format must be Redis's exactly, and no kept
//! crate writes it.

/// One entry as read: listpacks store integer-looking strings as integers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LpEntry<'a> {
    Int(i64),
    Str(&'a [u8]),
}

impl LpEntry<'_> {
    /// The entry's bytes as a client sees them (an integer in decimal).
    pub fn to_vec(&self) -> Vec<u8> {
        match self {
            LpEntry::Int(v) => itoa::Buffer::new().format(*v).as_bytes().to_vec(),
            LpEntry::Str(s) => s.to_vec(),
        }
    }
    /// Append the entry's bytes to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            LpEntry::Int(v) => out.extend_from_slice(itoa::Buffer::new().format(*v).as_bytes()),
            LpEntry::Str(s) => out.extend_from_slice(s),
        }
    }
    /// True if the entry reads as exactly these bytes.
    pub fn eq_bytes(&self, b: &[u8]) -> bool {
        match self {
            LpEntry::Int(v) => itoa::Buffer::new().format(*v).as_bytes() == b,
            LpEntry::Str(s) => *s == b,
        }
    }
    /// Length in bytes of the entry as a string.
    pub fn str_len(&self) -> usize {
        match self {
            LpEntry::Int(v) => itoa::Buffer::new().format(*v).len(),
            LpEntry::Str(s) => s.len(),
        }
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

/// Header: total bytes (u32 LE) and number of elements (u16 LE).
const HEADER: usize = 6;
const EOF: u8 = 0xFF;
/// num-elements value meaning "too many to count in 16 bits: walk the entries".
const COUNT_UNKNOWN: u16 = u16::MAX;
/// Redis refuses to grow a listpack past 1 GiB (`lpSafeToAdd`).
const SAFETY_SIZE: usize = 1 << 30;

const STR_6BIT: u8 = 0x80;
const INT_13BIT: u8 = 0xC0;
const STR_12BIT: u8 = 0xE0;
const STR_32BIT: u8 = 0xF0;
const INT_16BIT: u8 = 0xF1;
const INT_24BIT: u8 = 0xF2;
const INT_32BIT: u8 = 0xF3;
const INT_64BIT: u8 = 0xF4;

/// The integer a listpack stores for these bytes, exactly when Redis's `lpStringToInt64`
/// accepts them: canonical decimal (no `+`, no leading zeros, no `-0`), at most 20
/// characters, within i64.
pub fn string_to_int(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (negative, digits) = match s[0] {
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    if negative {
        if v > i64::MAX as u64 + 1 {
            return None;
        }
        Some((v as i64).wrapping_neg())
    } else {
        i64::try_from(v).ok()
    }
}

/// Bytes Redis uses for the backlen of an entry whose encoding+data is `l` bytes long
/// (`lpEncodeBacklen`; note the thresholds are one below the powers of 128).
fn backlen_size(l: usize) -> usize {
    if l <= 127 {
        1
    } else if l < 16383 {
        2
    } else if l < 2097151 {
        3
    } else if l < 268435455 {
        4
    } else {
        5
    }
}

/// Write the backlen of `l` into `dst` (exactly `backlen_size(l)` bytes): the most
/// significant 7 bits first, every byte but the first with its high bit set.
fn write_backlen(dst: &mut [u8], l: usize) {
    let n = dst.len();
    for (i, b) in dst.iter_mut().enumerate() {
        let shift = 7 * (n - 1 - i);
        let bits = ((l >> shift) & 127) as u8;
        *b = if i == 0 { bits } else { bits | 128 };
    }
}

/// How many leading bytes of an entry must be present to know its size.
fn size_bytes_needed(first: u8) -> usize {
    if first & 0xF0 == STR_12BIT {
        2
    } else if first == STR_32BIT {
        5
    } else {
        1
    }
}

/// Size of the encoding+data part of the entry starting at `p`, or None for a byte that
/// starts no entry (0xF5..=0xFF). The caller guarantees `size_bytes_needed` bytes exist.
fn body_len(buf: &[u8], p: usize) -> Option<usize> {
    let b = buf[p];
    Some(if b & 0x80 == 0 {
        1
    } else if b & 0xC0 == STR_6BIT {
        1 + (b & 0x3F) as usize
    } else if b & 0xE0 == INT_13BIT {
        2
    } else if b & 0xF0 == STR_12BIT {
        2 + ((((b & 0x0F) as usize) << 8) | buf[p + 1] as usize)
    } else {
        match b {
            STR_32BIT => {
                5 + u32::from_le_bytes([buf[p + 1], buf[p + 2], buf[p + 3], buf[p + 4]]) as usize
            }
            INT_16BIT => 3,
            INT_24BIT => 4,
            INT_32BIT => 5,
            INT_64BIT => 9,
            _ => return None,
        }
    })
}

/// Sign-extend the low `bits` bits of `v`.
fn sign_extend(v: u64, bits: u32) -> i64 {
    let shift = 64 - bits;
    ((v << shift) as i64) >> shift
}

fn le_uint(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}

/// The value of the (valid) entry at `p`.
fn decode(buf: &[u8], p: usize) -> LpEntry<'_> {
    let b = buf[p];
    if b & 0x80 == 0 {
        LpEntry::Int(i64::from(b))
    } else if b & 0xC0 == STR_6BIT {
        let n = (b & 0x3F) as usize;
        LpEntry::Str(&buf[p + 1..p + 1 + n])
    } else if b & 0xE0 == INT_13BIT {
        let v = (u64::from(b & 0x1F) << 8) | u64::from(buf[p + 1]);
        LpEntry::Int(sign_extend(v, 13))
    } else if b & 0xF0 == STR_12BIT {
        let n = (((b & 0x0F) as usize) << 8) | buf[p + 1] as usize;
        LpEntry::Str(&buf[p + 2..p + 2 + n])
    } else {
        match b {
            STR_32BIT => {
                let n = le_uint(&buf[p + 1..p + 5]) as usize;
                LpEntry::Str(&buf[p + 5..p + 5 + n])
            }
            INT_16BIT => LpEntry::Int(sign_extend(le_uint(&buf[p + 1..p + 3]), 16)),
            INT_24BIT => LpEntry::Int(sign_extend(le_uint(&buf[p + 1..p + 4]), 24)),
            INT_32BIT => LpEntry::Int(sign_extend(le_uint(&buf[p + 1..p + 5]), 32)),
            INT_64BIT => LpEntry::Int(le_uint(&buf[p + 1..p + 9]) as i64),
            // Unreachable on a validated buffer; an empty string keeps readers total.
            _ => LpEntry::Str(&[]),
        }
    }
}

/// An entry about to be written: its encoding header (integers fit in it whole) and the
/// string data that follows, if any.
struct NewEntry<'a> {
    head: [u8; 9],
    head_len: usize,
    data: &'a [u8],
}

impl<'a> NewEntry<'a> {
    /// Encode as Redis does: an integer if `lpStringToInt64` accepts it, else a string.
    fn of(v: &'a [u8]) -> Self {
        match string_to_int(v) {
            Some(i) => Self::int(i),
            None => Self::string(v),
        }
    }

    fn int(v: i64) -> Self {
        let mut head = [0u8; 9];
        let le = v.to_le_bytes();
        let head_len = if (0..=127).contains(&v) {
            head[0] = v as u8;
            1
        } else if (-4096..=4095).contains(&v) {
            let u = (v as u64) & 0x1FFF;
            head[0] = INT_13BIT | (u >> 8) as u8;
            head[1] = u as u8;
            2
        } else {
            let (tag, n) = if (-32768..=32767).contains(&v) {
                (INT_16BIT, 2)
            } else if (-8388608..=8388607).contains(&v) {
                (INT_24BIT, 3)
            } else if (-2147483648..=2147483647).contains(&v) {
                (INT_32BIT, 4)
            } else {
                (INT_64BIT, 8)
            };
            head[0] = tag;
            head[1..1 + n].copy_from_slice(&le[..n]);
            1 + n
        };
        NewEntry {
            head,
            head_len,
            data: &[],
        }
    }

    fn string(s: &'a [u8]) -> Self {
        let mut head = [0u8; 9];
        let n = s.len();
        let head_len = if n < 64 {
            head[0] = STR_6BIT | n as u8;
            1
        } else if n < 4096 {
            head[0] = STR_12BIT | (n >> 8) as u8;
            head[1] = n as u8;
            2
        } else {
            head[0] = STR_32BIT;
            head[1..5].copy_from_slice(&(n as u32).to_le_bytes());
            5
        };
        NewEntry {
            head,
            head_len,
            data: s,
        }
    }

    fn body_len(&self) -> usize {
        self.head_len + self.data.len()
    }

    fn total_len(&self) -> usize {
        let b = self.body_len();
        b + backlen_size(b)
    }

    /// Write encoding, data and backlen into `dst` (exactly `total_len` bytes).
    fn write(&self, dst: &mut [u8]) {
        let (head, rest) = dst.split_at_mut(self.head_len);
        head.copy_from_slice(&self.head[..self.head_len]);
        let (data, back) = rest.split_at_mut(self.data.len());
        data.copy_from_slice(self.data);
        write_backlen(back, self.body_len());
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct Listpack {
    buf: Vec<u8>,
}

/// A listpack's bytes, read in place: every read method of a listpack lives here, so
/// that [`Listpack`] (a growable buffer) and [`Packed`] (an exact-size box, for values
/// kept long) share them.
#[repr(transparent)]
pub struct LpSlice([u8]);

impl LpSlice {
    /// `b` (a well-formed listpack) as one.
    fn of(b: &[u8]) -> &LpSlice {
        // SAFETY: `LpSlice` is `#[repr(transparent)]` over `[u8]`, so a `&[u8]` and a
        // `&LpSlice` have the same layout and pointer metadata (the length); the
        // returned reference borrows `b` for the same lifetime and allows no more
        // than it did (reads only).
        unsafe { &*(b as *const [u8] as *const LpSlice) }
    }
}

impl std::ops::Deref for Listpack {
    type Target = LpSlice;
    fn deref(&self) -> &LpSlice {
        LpSlice::of(&self.buf)
    }
}

/// A listpack kept at its exact size in a box: 16 bytes where a [`Listpack`] takes
/// 24, so a small hash's listpack fits in its `Value` with no box of its own (the
/// 24-byte box was the rest of what a small hash cost beyond Redis's). Reads go
/// through [`LpSlice`]; a change is made on a [`Listpack`] ([`Packed::edit`]), which
/// grows to the exact size anyway, so taking the buffer out and back costs nothing
/// but a shrink when the listpack got smaller.
#[derive(Clone, PartialEq, Eq)]
pub struct Packed(Box<[u8]>);

impl Packed {
    /// Change it as a [`Listpack`].
    pub fn edit<R>(&mut self, f: impl FnOnce(&mut Listpack) -> R) -> R {
        let mut lp = Listpack {
            buf: std::mem::take(&mut self.0).into_vec(),
        };
        let r = f(&mut lp);
        *self = Packed::from(lp);
        r
    }

    /// Heap bytes owned (for MEMORY USAGE).
    pub fn heap_size(&self) -> usize {
        self.0.len()
    }

    pub fn into_listpack(self) -> Listpack {
        Listpack {
            buf: self.0.into_vec(),
        }
    }
}

impl From<Listpack> for Packed {
    fn from(lp: Listpack) -> Packed {
        Packed(lp.buf.into_boxed_slice())
    }
}

impl std::ops::Deref for Packed {
    type Target = LpSlice;
    fn deref(&self) -> &LpSlice {
        LpSlice::of(&self.0)
    }
}

impl std::fmt::Debug for Packed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
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

/// Entries of a listpack, from either end.
pub struct Iter<'a> {
    buf: &'a [u8],
    /// Offset of the next entry from the head.
    front: usize,
    /// Offset just past the next entry from the tail.
    back: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = LpEntry<'a>;
    fn next(&mut self) -> Option<LpEntry<'a>> {
        if self.front >= self.back {
            return None;
        }
        let p = self.front;
        self.front += entry_len(self.buf, p);
        Some(decode(self.buf, p))
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.front >= self.back {
            return None;
        }
        self.back = start_before(self.buf, self.back);
        Some(decode(self.buf, self.back))
    }
}

/// Total size (encoding, data, backlen) of the valid entry at `p`.
fn entry_len(buf: &[u8], p: usize) -> usize {
    let b = body_len(buf, p).unwrap_or(0);
    b + backlen_size(b)
}

/// Start of the valid entry that ends just before `end`, read from its backlen.
fn start_before(buf: &[u8], end: usize) -> usize {
    let mut body = 0usize;
    let mut shift = 0;
    let mut q = end - 1;
    loop {
        body |= ((buf[q] & 127) as usize) << shift;
        if buf[q] & 128 == 0 || shift >= 28 {
            break;
        }
        shift += 7;
        q -= 1;
    }
    end - backlen_size(body) - body
}

impl Listpack {
    pub fn new() -> Self {
        let mut buf = Vec::with_capacity(HEADER + 1);
        buf.extend_from_slice(&((HEADER + 1) as u32).to_le_bytes());
        buf.extend_from_slice(&0u16.to_le_bytes());
        buf.push(EOF);
        Listpack { buf }
    }

    /// A listpack from Redis's bytes (an RDB blob), if they are well formed: the header's
    /// size is the blob's, every entry has a known encoding, lies inside the blob and
    /// ends with the backlen Redis would write for it, the terminator is the last byte,
    /// and the header's count is right (or 65535, "unknown").
    pub fn from_bytes(buf: Vec<u8>) -> Option<Self> {
        if buf.len() < HEADER + 1 || buf.len() > u32::MAX as usize {
            return None;
        }
        if u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize != buf.len() {
            return None;
        }
        let eof = buf.len() - 1;
        if buf[eof] != EOF {
            return None;
        }
        let mut p = HEADER;
        let mut count: usize = 0;
        while p < eof {
            if p + size_bytes_needed(buf[p]) > eof {
                return None;
            }
            let body = body_len(&buf, p)?;
            let back = backlen_size(body);
            let end = p.checked_add(body)?.checked_add(back)?;
            if end > eof {
                return None;
            }
            let mut expected = [0u8; 5];
            write_backlen(&mut expected[..back], body);
            if buf[p + body..end] != expected[..back] {
                return None;
            }
            count += 1;
            p = end;
        }
        let header_count = u16::from_le_bytes([buf[4], buf[5]]);
        if header_count != COUNT_UNKNOWN && header_count as usize != count {
            return None;
        }
        Some(Listpack { buf })
    }

    /// Heap bytes owned (for MEMORY USAGE).
    pub fn heap_size(&self) -> usize {
        self.buf.capacity()
    }

    /// Append at the tail; integer-looking strings are stored as integers.
    pub fn push_back(&mut self, v: &[u8]) {
        let eof = self.buf.len() - 1;
        self.put(eof, &NewEntry::of(v));
    }

    /// Insert at the head.
    pub fn push_front(&mut self, v: &[u8]) {
        self.put(HEADER, &NewEntry::of(v));
    }

    /// Append an integer at the tail (what `push_back` of its decimal form stores).
    pub fn push_back_int(&mut self, v: i64) {
        let eof = self.buf.len() - 1;
        self.put(eof, &NewEntry::int(v));
    }

    /// Insert `v` before or after the entry at `p`; returns the new entry's position.
    pub fn insert(&mut self, p: Pos, v: &[u8], place: Where) -> Pos {
        let at = match place {
            Where::Before => p,
            Where::After => p + entry_len(&self.buf, p),
        };
        self.put(at, &NewEntry::of(v));
        at
    }

    /// Replace the entry at `p`; returns its (possibly moved) position.
    pub fn replace(&mut self, p: Pos, v: &[u8]) -> Pos {
        let e = NewEntry::of(v);
        let old = entry_len(&self.buf, p);
        self.resize_gap(p, old, e.total_len());
        e.write(&mut self.buf[p..p + e.total_len()]);
        self.set_total_bytes();
        p
    }

    /// Replace the entry at `p` with an integer; returns its position.
    pub fn replace_int(&mut self, p: Pos, v: i64) -> Pos {
        let e = NewEntry::int(v);
        let old = entry_len(&self.buf, p);
        self.resize_gap(p, old, e.total_len());
        e.write(&mut self.buf[p..p + e.total_len()]);
        self.set_total_bytes();
        p
    }

    /// An empty listpack with room for `bytes` (Redis's `lpNew(capacity)`: a stream
    /// node preallocates so that appends do not reallocate each time).
    pub fn with_capacity(bytes: usize) -> Self {
        let mut lp = Listpack::new();
        lp.buf.reserve_exact(bytes.saturating_sub(HEADER + 1));
        lp
    }

    /// Give back unused capacity (`lpShrinkToFit`).
    pub fn shrink_to_fit(&mut self) {
        self.buf.shrink_to_fit();
    }

    /// Delete the entry at `p`; returns the position of the entry that followed it.
    pub fn delete(&mut self, p: Pos) -> Option<Pos> {
        let old = entry_len(&self.buf, p);
        self.resize_gap(p, old, 0);
        self.set_total_bytes();
        self.count_removed(1);
        (self.buf[p] != EOF).then_some(p)
    }

    /// Delete `count` entries starting at index `start` (clamped to the end).
    pub fn delete_range(&mut self, start: usize, count: usize) {
        if count == 0 {
            return;
        }
        let Some(from) = i64::try_from(start).ok().and_then(|s| self.seek(s)) else {
            return;
        };
        let eof = self.buf.len() - 1;
        let mut to = from;
        let mut deleted = 0;
        while deleted < count && to < eof {
            to += entry_len(&self.buf, to);
            deleted += 1;
        }
        self.buf.drain(from..to);
        self.set_total_bytes();
        self.count_removed(deleted);
    }

    fn set_header_count(&mut self, n: u16) {
        self.buf[4..6].copy_from_slice(&n.to_le_bytes());
    }

    fn set_total_bytes(&mut self) {
        let n = self.buf.len() as u32;
        self.buf[..4].copy_from_slice(&n.to_le_bytes());
    }

    /// Write a new entry at byte offset `at` (an entry's start or the terminator).
    fn put(&mut self, at: usize, e: &NewEntry<'_>) {
        let n = e.total_len();
        self.resize_gap(at, 0, n);
        e.write(&mut self.buf[at..at + n]);
        self.set_total_bytes();
        // As Redis: an exact count stays exact until it reaches 65535, "unknown".
        let c = self.header_count();
        if c != COUNT_UNKNOWN {
            self.set_header_count(c + 1);
        }
    }

    /// Make the `old` bytes at `at` into `new` bytes, moving the tail.
    fn resize_gap(&mut self, at: usize, old: usize, new: usize) {
        let len = self.buf.len();
        if new > old {
            // Grow to the exact size, as Redis's lpInsert reallocs: a listpack is small
            // and long-lived, so doubling would leave up to half of it unused (most of
            // the memory of a small hash or sorted set).
            self.buf.reserve_exact(new - old);
            self.buf.resize(len + new - old, 0);
            self.buf.copy_within(at + old..len, at + new);
        } else if new < old {
            self.buf.copy_within(at + old..len, at + new);
            self.buf.truncate(len - (old - new));
        }
    }

    fn count_removed(&mut self, n: usize) {
        let c = self.header_count();
        if c != COUNT_UNKNOWN {
            self.set_header_count(c - n as u16);
        } else {
            // As `lpLength` does the next time it is asked: count again, and store the
            // count when it fits.
            let counted = self.iter().count();
            if counted < COUNT_UNKNOWN as usize {
                self.set_header_count(counted as u16);
            }
        }
    }
}

/// The read side of a listpack, on its bytes wherever they are kept ([`Listpack`]'s
/// growable buffer, or [`Packed`]'s exact-size box).
impl LpSlice {
    /// Redis's bytes (what an RDB file stores).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        match self.header_count() {
            COUNT_UNKNOWN => self.iter().count(),
            n => n as usize,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0[HEADER] == EOF
    }

    /// Total size in bytes (header and terminator included), as `lpBytes`.
    pub fn bytes(&self) -> usize {
        self.0.len()
    }

    /// Whether `add` more bytes keep the listpack under Redis's 1 GiB limit
    /// (`lpSafeToAdd`).
    pub fn safe_to_add(&self, add: usize) -> bool {
        self.0.len().saturating_add(add) <= SAFETY_SIZE
    }

    pub fn first(&self) -> Option<Pos> {
        (self.0[HEADER] != EOF).then_some(HEADER)
    }

    pub fn last(&self) -> Option<Pos> {
        let eof = self.0.len() - 1;
        (eof > HEADER).then(|| start_before(&self.0, eof))
    }

    pub fn next(&self, p: Pos) -> Option<Pos> {
        let q = p + entry_len(&self.0, p);
        (self.0[q] != EOF).then_some(q)
    }

    pub fn prev(&self, p: Pos) -> Option<Pos> {
        (p > HEADER).then(|| start_before(&self.0, p))
    }

    /// The entry at `p`.
    pub fn get(&self, p: Pos) -> LpEntry<'_> {
        decode(&self.0, p)
    }

    /// The entry at `index` (negative counts from the tail: -1 is the last), as `lpSeek`.
    pub fn seek(&self, index: i64) -> Option<Pos> {
        let n = self.len() as i64;
        let index = if index < 0 {
            n.checked_add(index)?
        } else {
            index
        };
        if index < 0 || index >= n {
            return None;
        }
        if index <= n / 2 {
            let mut p = self.first()?;
            for _ in 0..index {
                p = self.next(p)?;
            }
            Some(p)
        } else {
            let mut p = self.last()?;
            for _ in 0..(n - 1 - index) {
                p = self.prev(p)?;
            }
            Some(p)
        }
    }

    /// Entries from head to tail.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = LpEntry<'_>> + '_ {
        self.iter_from(HEADER)
    }

    /// Entries from the one at `p` (or the terminator's offset, for none) to the tail.
    pub fn iter_from(&self, p: Pos) -> Iter<'_> {
        Iter {
            buf: &self.0,
            front: p,
            back: self.0.len() - 1,
        }
    }

    /// The first entry at or after `from` equal to `v`, looking only at every
    /// `skip + 1`-th entry (skip 1 visits the fields of a field/value listpack).
    pub fn find(&self, from: Pos, v: &[u8], skip: usize) -> Option<Pos> {
        let as_int = string_to_int(v);
        let eof = self.0.len() - 1;
        let mut p = from;
        let mut to_skip = 0;
        while p < eof {
            if to_skip == 0 {
                let hit = match decode(&self.0, p) {
                    LpEntry::Int(i) => as_int == Some(i),
                    LpEntry::Str(s) => s == v,
                };
                if hit {
                    return Some(p);
                }
                to_skip = skip;
            } else {
                to_skip -= 1;
            }
            p += entry_len(&self.0, p);
        }
        None
    }

    fn header_count(&self) -> u16 {
        u16::from_le_bytes([self.0[4], self.0[5]])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn contents(lp: &Listpack) -> Vec<Vec<u8>> {
        lp.iter().map(|e| e.to_vec()).collect()
    }

    fn of(items: &[&[u8]]) -> Listpack {
        let mut lp = Listpack::new();
        for v in items {
            lp.push_back(v);
        }
        lp
    }

    /// `RPUSH l a 1 hello 12345` then `DUMP l` on redis-server 7.0.15: a quicklist with
    /// one packed node whose blob is this listpack.
    #[test]
    fn same_bytes_as_redis_small_list() {
        let lp = of(&[b"a", b"1", b"hello", b"12345"]);
        assert_eq!(
            lp.as_bytes(),
            hex("17000000040081610201018568656c6c6f06f1393003ff")
        );
    }

    /// `HSET h f v n 42`: a hash listpack of field/value pairs.
    #[test]
    fn same_bytes_as_redis_small_hash() {
        let lp = of(&[b"f", b"v", b"n", b"42"]);
        assert_eq!(lp.as_bytes(), hex("120000000400816602817602816e022a01ff"));
    }

    /// Every encoding at once, from `RPUSH` of these values and `DUMP` with
    /// `rdbcompression no` (the 5000-byte string stands in the middle).
    #[test]
    fn same_bytes_as_redis_every_encoding() {
        let y = vec![b'y'; 5000];
        let x = vec![b'x'; 100];
        let values: Vec<&[u8]> = vec![
            b"-1",
            b"-5000",
            b"40000",
            b"-9000000",
            b"3000000000",
            b"9223372036854775807",
            b"-9223372036854775808",
            b"127",
            b"128",
            b"-4096",
            b"4095",
            b"4096",
            b"007",
            b"-0",
            b"+5",
            &x,
            &y,
            b"",
            b"12345678901234567890",
            b"18446744073709551616",
        ];
        let lp = of(&values);
        let mut expected = hex(concat!(
            "771400001400dfff02f178ec03f2409c0004f3c0ab76ff05f4005ed0b20000000009f4ffffff",
            "ffffffff7f09f40000000000000080097f01c08002d00002cfff02f10010038330303704822d",
            "3003822b3503e064",
        ));
        expected.extend_from_slice(&x);
        expected.extend_from_slice(&hex("66f088130000"));
        expected.extend_from_slice(&y);
        expected.extend_from_slice(&hex(concat!(
            "278d800194313233343536373839303132333435363738393015943138343436373434303733",
            "37303935353136313615ff",
        )));
        assert_eq!(lp.as_bytes(), &expected[..]);
        let back = Listpack::from_bytes(expected).unwrap();
        let want: Vec<Vec<u8>> = values.iter().map(|v| v.to_vec()).collect();
        assert_eq!(contents(&back), want);
        let mut rev: Vec<Vec<u8>> = back.iter().rev().map(|e| e.to_vec()).collect();
        rev.reverse();
        assert_eq!(rev, want);
    }

    #[test]
    fn integers_exactly_as_lp_string_to_int64() {
        assert_eq!(string_to_int(b"0"), Some(0));
        assert_eq!(string_to_int(b"-1"), Some(-1));
        assert_eq!(string_to_int(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(string_to_int(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"-0",
            b"00",
            b"01",
            b"+1",
            b" 1",
            b"1 ",
            b"1a",
            b"9223372036854775808",
            b"-9223372036854775809",
            b"99999999999999999999",
            b"000000000000000000001",
        ] {
            assert_eq!(
                string_to_int(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn entry_helpers() {
        let lp = of(&[b"-4096", b"abc"]);
        let a = lp.get(lp.first().unwrap());
        assert_eq!(a, LpEntry::Int(-4096));
        assert!(a.eq_bytes(b"-4096"));
        assert!(!a.eq_bytes(b"-04096"));
        assert_eq!(a.str_len(), 5);
        let mut out = b"x".to_vec();
        a.write_to(&mut out);
        assert_eq!(out, b"x-4096");
        let b = lp.get(lp.last().unwrap());
        assert_eq!(b, LpEntry::Str(b"abc"));
        assert_eq!(b.str_len(), 3);
        assert!(b.eq_bytes(b"abc"));
    }

    #[test]
    fn empty_listpack() {
        let lp = Listpack::new();
        assert_eq!(lp.as_bytes(), [7, 0, 0, 0, 0, 0, 0xFF]);
        assert_eq!(lp.len(), 0);
        assert!(lp.is_empty());
        assert_eq!(lp.first(), None);
        assert_eq!(lp.last(), None);
        assert_eq!(lp.seek(0), None);
        assert_eq!(lp.seek(-1), None);
        assert_eq!(lp.iter().next(), None);
        assert!(Listpack::from_bytes(lp.as_bytes().to_vec()).is_some());
    }

    /// Entries whose encoding+data is 127/128 and 16382/16383 bytes long: the backlen
    /// changes size there (Redis's thresholds are one below the powers of 128).
    #[test]
    fn backlen_boundaries() {
        for body in [126usize, 127, 128, 129, 16381, 16382, 16383, 16384, 70000] {
            let head = if body - 1 < 64 {
                1
            } else if body - 2 < 4096 {
                2
            } else {
                5
            };
            let s = vec![b's'; body - head];
            let mut lp = of(&[b"1", &s, b"2"]);
            let mid = lp.next(lp.first().unwrap()).unwrap();
            assert_eq!(lp.next(mid).unwrap() - mid, body + backlen_size(body));
            assert_eq!(lp.prev(lp.last().unwrap()), Some(mid));
            assert_eq!(lp.prev(mid), lp.first());
            assert!(Listpack::from_bytes(lp.as_bytes().to_vec()).is_some());
            lp.replace(mid, b"short");
            assert_eq!(
                contents(&lp),
                vec![b"1".to_vec(), b"short".to_vec(), b"2".to_vec()]
            );
        }
        let mut b = [0u8; 2];
        write_backlen(&mut b, 200);
        assert_eq!(b, [1, 200 - 128 + 128]);
        assert_eq!(backlen_size(127), 1);
        assert_eq!(backlen_size(16382), 2);
        assert_eq!(backlen_size(16383), 3);
        assert_eq!(backlen_size(2097150), 3);
        assert_eq!(backlen_size(2097151), 4);
    }

    #[test]
    fn count_unknown_past_65534() {
        let mut lp = Listpack::new();
        for i in 0..65534 {
            lp.push_back(if i % 2 == 0 { b"a" } else { b"1" });
        }
        assert_eq!(lp.header_count(), 65534);
        lp.push_back(b"b");
        assert_eq!(lp.header_count(), COUNT_UNKNOWN);
        lp.push_front(b"c");
        assert_eq!(lp.header_count(), COUNT_UNKNOWN);
        assert_eq!(lp.len(), 65536);
        assert_eq!(lp.get(lp.seek(-1).unwrap()), LpEntry::Str(b"b"));
        assert!(Listpack::from_bytes(lp.as_bytes().to_vec()).is_some());
        lp.delete(lp.first().unwrap());
        assert_eq!(lp.header_count(), COUNT_UNKNOWN);
        lp.delete_range(0, 2);
        assert_eq!(lp.header_count(), 65533);
        assert_eq!(lp.len(), 65533);
    }

    #[test]
    fn find_with_skip_visits_fields_only() {
        let lp = of(&[b"f1", b"v", b"v", b"f2", b"10", b"x"]);
        let first = lp.first().unwrap();
        // As a field/value listpack: fields are f1, v, 10.
        assert_eq!(lp.find(first, b"v", 1), lp.seek(2));
        assert_eq!(lp.find(first, b"f2", 1), None);
        assert_eq!(lp.find(first, b"10", 1), lp.seek(4));
        assert_eq!(lp.find(first, b"x", 1), None);
        assert_eq!(lp.find(first, b"x", 0), lp.seek(5));
        assert_eq!(lp.find(lp.seek(1).unwrap(), b"x", 1), lp.seek(5));
        assert_eq!(lp.find(first, b"010", 0), None);
    }

    #[test]
    fn from_bytes_rejects_malformed() {
        let good = of(&[b"a", b"1", b"hello", b"12345", &[b'z'; 200][..]])
            .as_bytes()
            .to_vec();
        assert!(Listpack::from_bytes(good.clone()).is_some());
        let set_total = |b: &mut Vec<u8>| {
            let n = b.len() as u32;
            b[..4].copy_from_slice(&n.to_le_bytes());
        };
        // Truncations, with the header's size fixed up or not.
        for cut in 0..good.len() {
            let mut b = good[..cut].to_vec();
            assert!(Listpack::from_bytes(b.clone()).is_none());
            if b.len() >= 4 {
                set_total(&mut b);
                assert!(Listpack::from_bytes(b).is_none(), "cut {cut}");
            }
        }
        let mut b = good.clone();
        b[0] += 1;
        assert!(Listpack::from_bytes(b).is_none());
        let mut b = good.clone();
        b[4] = 4; // count 4 of 5
        assert!(Listpack::from_bytes(b).is_none());
        let mut b = good.clone();
        b[4] = 0xFF;
        b[5] = 0xFF; // unknown count is fine
        assert!(Listpack::from_bytes(b).is_some());
        let mut b = good.clone();
        b[6] = 0xF5; // no such encoding
        assert!(Listpack::from_bytes(b).is_none());
        let mut b = good.clone();
        b[8] = 3; // wrong backlen of "a"
        assert!(Listpack::from_bytes(b).is_none());
        let mut b = good.clone();
        *b.last_mut().unwrap() = 0;
        assert!(Listpack::from_bytes(b).is_none());
        // A 32-bit string length far past the end.
        let mut b = vec![0, 0, 0, 0, 1, 0, 0xF0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
        set_total(&mut b);
        assert!(Listpack::from_bytes(b).is_none());
        // A 12-bit string header cut by the terminator.
        let mut b = vec![0, 0, 0, 0, 1, 0, 0xE0, 0xFF];
        set_total(&mut b);
        assert!(Listpack::from_bytes(b).is_none());
        // Backlen in a non-canonical longer form.
        let mut b = vec![0, 0, 0, 0, 1, 0, 0x01, 0x00, 0x81, 0xFF];
        set_total(&mut b);
        assert!(Listpack::from_bytes(b).is_none());
    }

    #[derive(Clone, Debug)]
    enum Op {
        PushBack(Vec<u8>),
        PushFront(Vec<u8>),
        Insert(usize, Vec<u8>, bool),
        Replace(usize, Vec<u8>),
        Delete(usize),
        DeleteRange(usize, usize),
        Seek(i64),
        Find(usize, Vec<u8>, usize),
    }

    fn value() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            (0i64..200).prop_map(|i| i.to_string().into_bytes()),
            (-5000i64..5000).prop_map(|i| i.to_string().into_bytes()),
            any::<i64>().prop_map(|i| i.to_string().into_bytes()),
            any::<i32>().prop_map(|i| i.to_string().into_bytes()),
            prop::sample::select(vec![
                &b"-0"[..],
                b"007",
                b"+5",
                b"",
                b"9223372036854775808",
                b"-9223372036854775809",
                b" 1",
            ])
            .prop_map(|s| s.to_vec()),
            prop::collection::vec(any::<u8>(), 0..80),
            (60usize..70).prop_map(|n| vec![b'q'; n]),
            (4090usize..4100).prop_map(|n| vec![b'w'; n]),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            value().prop_map(Op::PushBack),
            value().prop_map(Op::PushFront),
            (any::<usize>(), value(), any::<bool>()).prop_map(|(i, v, b)| Op::Insert(i, v, b)),
            (any::<usize>(), value()).prop_map(|(i, v)| Op::Replace(i, v)),
            any::<usize>().prop_map(Op::Delete),
            (0usize..40, 0usize..10).prop_map(|(s, c)| Op::DeleteRange(s, c)),
            (-40i64..40).prop_map(Op::Seek),
            (any::<usize>(), value(), 0usize..3).prop_map(|(i, v, s)| Op::Find(i, v, s)),
        ]
    }

    fn check(lp: &Listpack, model: &[Vec<u8>]) {
        assert_eq!(contents(lp), model);
        let rev: Vec<Vec<u8>> = lp.iter().rev().map(|e| e.to_vec()).collect();
        let mut mrev = model.to_vec();
        mrev.reverse();
        assert_eq!(rev, mrev);
        assert_eq!(lp.len(), model.len());
        assert_eq!(lp.is_empty(), model.is_empty());
        // Walking by positions agrees with iteration, both ways.
        let mut fwd = Vec::new();
        let mut p = lp.first();
        while let Some(q) = p {
            fwd.push(lp.get(q).to_vec());
            p = lp.next(q);
        }
        assert_eq!(fwd, model);
        let mut back = Vec::new();
        let mut p = lp.last();
        while let Some(q) = p {
            back.push(lp.get(q).to_vec());
            p = lp.prev(q);
        }
        assert_eq!(back, mrev);
        // Entries are stored as integers exactly when Redis would.
        for e in lp.iter() {
            if let LpEntry::Str(s) = e {
                assert_eq!(string_to_int(s), None);
            }
        }
        let again = Listpack::from_bytes(lp.as_bytes().to_vec()).expect("round trip");
        assert_eq!(&again, lp);
    }

    /// A listpack built directly from the model's values, for comparing bytes.
    fn build(model: &[Vec<u8>]) -> Listpack {
        let mut lp = Listpack::new();
        for v in model {
            lp.push_back(v);
        }
        lp
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn behaves_like_a_vec(ops in prop::collection::vec(op(), 0..60)) {
            let mut lp = Listpack::new();
            let mut model: Vec<Vec<u8>> = Vec::new();
            for op in ops {
                match op {
                    Op::PushBack(v) => {
                        lp.push_back(&v);
                        model.push(v);
                    }
                    Op::PushFront(v) => {
                        lp.push_front(&v);
                        model.insert(0, v);
                    }
                    Op::Insert(i, v, after) => {
                        if model.is_empty() {
                            continue;
                        }
                        let i = i % model.len();
                        let p = lp.seek(i as i64).unwrap();
                        let place = if after { Where::After } else { Where::Before };
                        let q = lp.insert(p, &v, place);
                        prop_assert!(lp.get(q).eq_bytes(&v));
                        model.insert(if after { i + 1 } else { i }, v);
                    }
                    Op::Replace(i, v) => {
                        if model.is_empty() {
                            continue;
                        }
                        let i = i % model.len();
                        let p = lp.seek(i as i64).unwrap();
                        let q = lp.replace(p, &v);
                        prop_assert_eq!(Some(q), lp.seek(i as i64));
                        prop_assert!(lp.get(q).eq_bytes(&v));
                        model[i] = v;
                    }
                    Op::Delete(i) => {
                        if model.is_empty() {
                            continue;
                        }
                        let i = i % model.len();
                        let p = lp.seek(i as i64).unwrap();
                        let next = lp.delete(p);
                        model.remove(i);
                        prop_assert_eq!(next, lp.seek(i as i64));
                    }
                    Op::DeleteRange(s, c) => {
                        lp.delete_range(s, c);
                        if s < model.len() {
                            let end = (s + c).min(model.len());
                            model.drain(s..end);
                        }
                    }
                    Op::Seek(i) => {
                        let n = model.len() as i64;
                        let idx = if i < 0 { n + i } else { i };
                        let got = lp.seek(i).map(|p| lp.get(p).to_vec());
                        let want = (0..n).contains(&idx).then(|| model[idx as usize].clone());
                        prop_assert_eq!(got, want);
                    }
                    Op::Find(from, v, skip) => {
                        if model.is_empty() {
                            continue;
                        }
                        let from = from % model.len();
                        let v = if from.is_multiple_of(2) { model[from].clone() } else { v };
                        let p = lp.seek(from as i64).unwrap();
                        let got = lp.find(p, &v, skip);
                        let want = (from..model.len())
                            .step_by(skip + 1)
                            .find(|&j| model[j] == v)
                            .and_then(|j| lp.seek(j as i64));
                        prop_assert_eq!(got, want);
                    }
                }
                check(&lp, &model);
            }
            // Edits leave the same bytes as building the final contents from scratch.
            let fresh = build(&model);
            prop_assert_eq!(lp.as_bytes(), fresh.as_bytes());
        }

        #[test]
        fn from_bytes_never_panics_on_noise(b in prop::collection::vec(any::<u8>(), 0..64)) {
            let mut b = b;
            if b.len() >= 4 && b[0] % 2 == 0 {
                let n = b.len() as u32;
                b[..4].copy_from_slice(&n.to_le_bytes());
            }
            if let Some(lp) = Listpack::from_bytes(b) {
                let _ = lp.iter().count() + lp.iter().rev().count() + lp.len();
            }
        }

        #[test]
        fn from_bytes_never_panics_on_damage(
            model in prop::collection::vec(value(), 0..12),
            flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..4),
        ) {
            let mut b = build(&model).as_bytes().to_vec();
            for (at, byte) in flips {
                let at = at % b.len();
                b[at] = byte;
            }
            if let Some(lp) = Listpack::from_bytes(b) {
                let fwd: Vec<Vec<u8>> = lp.iter().map(|e| e.to_vec()).collect();
                let mut back: Vec<Vec<u8>> = lp.iter().rev().map(|e| e.to_vec()).collect();
                back.reverse();
                prop_assert_eq!(fwd.len(), lp.len());
                prop_assert_eq!(fwd, back);
            }
        }
    }
}
