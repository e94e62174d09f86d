//! Values stored under keys, with the encodings OBJECT ENCODING reports.
//!
//! Strings follow Redis's `tryObjectEncoding`: a value written by SET-like commands that
//! is a canonical 64-bit integer (≤ 20 chars) is stored as `Int`; one of at most 44 bytes
//! as `Emb` (Redis's embstr); anything longer, or any string modified in place (APPEND,
//! SETRANGE, SETBIT), as `Raw`. Collections join this enum in later issues.

use super::CompactBytes;
use crate::protocol::parse::parse_i64;
use std::borrow::Cow;

/// Longest string Redis stores as embstr.
pub const EMBSTR_MAX: usize = 44;

#[derive(Clone, Debug, PartialEq)]
pub enum StrValue {
    Int(i64),
    Emb(CompactBytes),
    Raw(Vec<u8>),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(StrValue),
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
        if b.len() <= EMBSTR_MAX {
            StrValue::Emb(CompactBytes::new(b))
        } else {
            StrValue::Raw(b.to_vec())
        }
    }
    pub fn as_bytes(&self) -> Cow<'_, [u8]> {
        match self {
            StrValue::Int(i) => Cow::Owned(itoa::Buffer::new().format(*i).as_bytes().to_vec()),
            StrValue::Emb(b) => Cow::Borrowed(b.as_slice()),
            StrValue::Raw(v) => Cow::Borrowed(v),
        }
    }
    /// Append the bytes to `out` without an intermediate allocation.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            StrValue::Int(i) => out.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes()),
            StrValue::Emb(b) => out.extend_from_slice(b),
            StrValue::Raw(v) => out.extend_from_slice(v),
        }
    }
    pub fn len(&self) -> usize {
        match self {
            StrValue::Int(i) => itoa::Buffer::new().format(*i).len(),
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
            *self = StrValue::Raw(self.as_bytes().into_owned());
        }
        match self {
            StrValue::Raw(v) => v,
            _ => unreachable!("converted to Raw above"),
        }
    }
    pub fn encoding(&self) -> &'static str {
        match self {
            StrValue::Int(_) => "int",
            StrValue::Emb(_) => "embstr",
            StrValue::Raw(_) => "raw",
        }
    }
}

impl Value {
    /// The name TYPE reports.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
        }
    }
    /// The name OBJECT ENCODING reports.
    pub fn encoding(&self) -> &'static str {
        match self {
            Value::Str(s) => s.encoding(),
        }
    }
    /// Approximate heap bytes owned beyond the dict node (for INFO memory).
    pub fn heap_size(&self) -> usize {
        match self {
            Value::Str(StrValue::Emb(b)) => b.heap_size(),
            Value::Str(StrValue::Raw(v)) => v.capacity(),
            Value::Str(StrValue::Int(_)) => 0,
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
        assert!(std::mem::size_of::<Value>() <= 32);
    }
}
