//! Values stored under keys, with the encodings OBJECT ENCODING reports.
//!
//! Strings follow Redis's `tryObjectEncoding`: a value written by SET-like commands that
//! is a canonical 64-bit integer (≤ 20 chars) is stored as `Int`; one of at most 44 bytes
//! as `Emb` (Redis's embstr); anything longer, or any string modified in place (APPEND,
//! SETRANGE, SETBIT), as `Raw`. Collections (list, hash, set, zset) live in their own
//! modules, each an enum of its encodings; a collection is never stored empty (the
//! command that empties it deletes the key, as in Redis).

use super::{hash::Hash, list::List, set::Set, stream::Stream, zset::ZSet};
use crate::protocol::parse::parse_i64;
use std::borrow::Cow;

/// Longest string Redis stores as embstr.
pub const EMBSTR_MAX: usize = 44;

/// Longest embstr kept inside the value itself (no allocation).
const INLINE: usize = 22;

/// A string value, in 24 bytes: with the 8-byte LRU stamp and the 24-byte key, a dict
/// node holding a short string is exactly 64 bytes, one allocator size class.
#[derive(Clone, Debug)]
pub enum StrValue {
    Int(i64),
    /// embstr of at most 22 bytes, stored inline.
    Inline {
        len: u8,
        buf: [u8; INLINE],
    },
    /// embstr of 23..=44 bytes.
    Emb(Box<[u8]>),
    /// raw: long, or modified in place. Boxed so the enum stays small; a raw string
    /// grows amortised (APPEND in a loop is linear).
    Raw(Box<Vec<u8>>),
}

impl PartialEq for StrValue {
    /// Equal when the bytes and the encoding are equal.
    fn eq(&self, o: &Self) -> bool {
        self.encoding() == o.encoding() && self.as_bytes() == o.as_bytes()
    }
}

/// A key's value. Collections are boxed so that a dict node holding a string stays one
/// 64-byte allocation; each collection type picks its own encoding (see its module).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(StrValue),
    List(Box<List>),
    Hash(Hash),
    Set(Set),
    ZSet(Box<ZSet>),
    /// A stream may be empty (XADD then XDEL, XGROUP CREATE ... MKSTREAM): unlike the
    /// collections, it stays a key.
    Stream(Box<Stream>),
}

impl StrValue {
    /// Encode bytes written by a SET-like command, as Redis's `tryObjectEncoding`.
    pub fn from_set(b: &[u8]) -> StrValue {
        if b.len() <= 20 {
            if let Some(i) = parse_i64(b) {
                return StrValue::Int(i);
            }
        }
        Self::from_bytes(b)
    }
    /// A string not tried as an integer (embstr when short, as `createStringObject`).
    pub fn from_bytes(b: &[u8]) -> StrValue {
        if b.len() <= INLINE {
            let mut buf = [0u8; INLINE];
            buf[..b.len()].copy_from_slice(b);
            StrValue::Inline {
                len: b.len() as u8,
                buf,
            }
        } else if b.len() <= EMBSTR_MAX {
            StrValue::Emb(b.into())
        } else {
            StrValue::Raw(Box::new(b.to_vec()))
        }
    }
    /// A raw-encoded string owning `v`.
    pub fn raw(v: Vec<u8>) -> StrValue {
        StrValue::Raw(Box::new(v))
    }
    pub fn as_bytes(&self) -> Cow<'_, [u8]> {
        match self {
            StrValue::Int(i) => Cow::Owned(itoa::Buffer::new().format(*i).as_bytes().to_vec()),
            StrValue::Inline { len, buf } => Cow::Borrowed(&buf[..*len as usize]),
            StrValue::Emb(b) => Cow::Borrowed(b),
            StrValue::Raw(v) => Cow::Borrowed(v),
        }
    }
    /// Append the bytes to `out` without an intermediate allocation.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            StrValue::Int(i) => out.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes()),
            other => out.extend_from_slice(&other.as_bytes()),
        }
    }
    pub fn len(&self) -> usize {
        match self {
            StrValue::Int(i) => itoa::Buffer::new().format(*i).len(),
            StrValue::Inline { len, .. } => *len as usize,
            StrValue::Emb(b) => b.len(),
            StrValue::Raw(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The value as a mutable byte vector, converting to `Raw` (as Redis's
    /// `dbUnshareStringValue` does before APPEND / SETRANGE / SETBIT).
    pub fn make_raw(&mut self) -> &mut Vec<u8> {
        if !matches!(self, StrValue::Raw(_)) {
            *self = StrValue::raw(self.as_bytes().into_owned());
        }
        match self {
            StrValue::Raw(v) => v,
            _ => unreachable!("converted to Raw above"),
        }
    }
    pub fn encoding(&self) -> &'static str {
        match self {
            StrValue::Int(_) => "int",
            StrValue::Inline { .. } | StrValue::Emb(_) => "embstr",
            StrValue::Raw(_) => "raw",
        }
    }
}

impl Value {
    /// The name TYPE reports.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
            Value::Stream(_) => "stream",
        }
    }
    /// The name OBJECT ENCODING reports.
    pub fn encoding(&self) -> &'static str {
        match self {
            Value::Str(s) => s.encoding(),
            Value::List(l) => l.encoding(),
            Value::Hash(h) => h.encoding(),
            Value::Set(s) => s.encoding(),
            Value::ZSet(z) => z.encoding(),
            Value::Stream(_) => "stream",
        }
    }
    /// Approximate heap bytes owned beyond the dict node (for INFO memory).
    pub fn heap_size(&self) -> usize {
        match self {
            Value::Str(StrValue::Emb(b)) => b.len(),
            Value::Str(StrValue::Raw(v)) => v.capacity() + 24,
            Value::Str(StrValue::Int(_) | StrValue::Inline { .. }) => 0,
            Value::List(l) => l.heap_size(),
            Value::Hash(h) => h.heap_size(),
            Value::Set(s) => s.heap_size(),
            Value::ZSet(z) => z.heap_size(),
            Value::Stream(s) => s.heap_size(),
        }
    }
    /// Bytes MEMORY USAGE reports for the value beyond its entry: what it owns on the
    /// heap, in allocator size classes; large collections are sampled (`samples`
    /// elements, 0: all) and extrapolated, as Redis does, so the answer costs
    /// O(samples), not O(elements).
    pub fn memory_usage(&self, samples: usize) -> usize {
        use super::alloc_size;
        match self {
            Value::Str(StrValue::Int(_) | StrValue::Inline { .. }) => 0,
            Value::Str(StrValue::Emb(b)) => alloc_size(b.len()),
            Value::Str(StrValue::Raw(v)) => {
                alloc_size(std::mem::size_of::<Vec<u8>>()) + alloc_size(v.capacity())
            }
            Value::List(l) => alloc_size(l.memory_usage(samples)),
            Value::Hash(h) => h.memory_usage(samples),
            Value::Set(s) => s.memory_usage(samples),
            Value::ZSet(z) => std::mem::size_of::<ZSet>() + z.heap_size(),
            Value::Stream(s) => alloc_size(std::mem::size_of::<Stream>()) + s.heap_size(),
        }
    }
    /// Number of elements of a collection (1 for a string); UNLINK and the lazy-free
    /// heuristics use it as the cost of freeing the value.
    pub fn elements(&self) -> usize {
        match self {
            Value::Str(_) => 1,
            Value::List(l) => l.len(),
            Value::Hash(h) => h.len(),
            Value::Set(s) => s.len(),
            Value::ZSet(z) => z.len(),
            // Redis's lazy-free effort for a stream: its nodes and its groups' PELs.
            Value::Stream(s) => {
                s.node_count() + s.groups().map(|(_, g)| 1 + g.pel.len()).sum::<usize>()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn encodings_follow_redis() {
        assert_eq!(StrValue::from_set(b"123").encoding(), "int");
        assert_eq!(
            StrValue::from_set(b"-9223372036854775808").encoding(),
            "int"
        );
        assert_eq!(StrValue::from_set(b"0123").encoding(), "embstr");
        assert_eq!(StrValue::from_set(&[b'a'; 44]).encoding(), "embstr");
        assert_eq!(StrValue::from_set(&[b'a'; 45]).encoding(), "raw");
        let mut v = StrValue::from_set(b"12");
        v.make_raw().push(b'3');
        assert_eq!(v.encoding(), "raw");
        assert_eq!(&*v.as_bytes(), b"123");
        assert_eq!(std::mem::size_of::<StrValue>(), 24);
        assert_eq!(std::mem::size_of::<Value>(), 24);
        // A small hash's listpack lives in the Value itself (no box of its own).
        assert_eq!(std::mem::size_of::<Hash>(), 16);
        assert_eq!(std::mem::size_of::<crate::storage::db::Entry>(), 32);
    }
}
