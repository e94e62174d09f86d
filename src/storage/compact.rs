//! `CompactBytes`: an immutable byte string stored inline when short (≤ 22 bytes) and
//! on the heap otherwise, in 24 bytes either way.
//!
//! Keys and short string values are the bulk of a cache's memory; keeping them inline
//! in the dict node saves an allocation (and its 16+ bytes of overhead) per key. Safe
//! code only: the inline form is an array plus a length.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};

const INLINE: usize = 22;

#[derive(Clone)]
pub enum CompactBytes {
    Inline { len: u8, buf: [u8; INLINE] },
    Heap(Box<[u8]>),
}

impl CompactBytes {
    pub fn new(b: &[u8]) -> Self {
        if b.len() <= INLINE {
            let mut buf = [0u8; INLINE];
            buf[..b.len()].copy_from_slice(b);
            CompactBytes::Inline {
                len: b.len() as u8,
                buf,
            }
        } else {
            CompactBytes::Heap(b.into())
        }
    }
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        match self {
            CompactBytes::Inline { len, buf } => &buf[..*len as usize],
            CompactBytes::Heap(b) => b,
        }
    }
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Heap bytes owned beyond the 24 inline ones (for memory accounting).
    pub fn heap_size(&self) -> usize {
        match self {
            CompactBytes::Inline { .. } => 0,
            CompactBytes::Heap(b) => b.len(),
        }
    }
}

impl std::ops::Deref for CompactBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl Borrow<[u8]> for CompactBytes {
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

impl PartialEq for CompactBytes {
    fn eq(&self, o: &Self) -> bool {
        self.as_slice() == o.as_slice()
    }
}
impl Eq for CompactBytes {}

impl Hash for CompactBytes {
    // Must hash exactly like `[u8]` so lookups by `&[u8]` find the key.
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.as_slice().hash(h)
    }
}

impl std::fmt::Debug for CompactBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_slice()))
    }
}

impl From<&[u8]> for CompactBytes {
    fn from(b: &[u8]) -> Self {
        CompactBytes::new(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn size_and_roundtrip() {
        assert_eq!(std::mem::size_of::<CompactBytes>(), 24);
        for n in [0, 1, 22, 23, 100] {
            let v: Vec<u8> = (0..n as u8).collect();
            assert_eq!(CompactBytes::new(&v).as_slice(), &v[..]);
        }
    }
}
