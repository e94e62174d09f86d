//! Intset: Redis's compact encoding for a small set of integers, byte for byte.
//!
//! Layout (as Redis's `intset.c`): `<encoding u32 LE> <length u32 LE> <contents>`, the
//! contents being `length` integers of `encoding` bytes each (2, 4 or 8), little-endian,
//! sorted ascending, without duplicates. The one idea to hold: every element has the
//! width of the widest one ever inserted. Inserting a value that does not fit upgrades
//! the whole set to the wider encoding (the new value then belongs at one end, being
//! smaller or larger than everything else); removing never downgrades. Lookups are
//! binary searches over the fixed-width records. Being Redis's exact bytes, an RDB file
//! stores and loads an intset as one blob ([`Intset::as_bytes`], [`Intset::from_bytes`]).

use rand::Rng;

const HEADER: usize = 8;
const ENC_INT16: u32 = 2;
const ENC_INT32: u32 = 4;
const ENC_INT64: u32 = 8;

#[derive(Clone, PartialEq, Eq)]
pub struct Intset {
    /// The whole blob: header then records, allocated to its exact size (16 bytes
    /// where a `Vec` takes 24, so a set holds it without a box; a change reallocates,
    /// as Redis's `intsetResize` does).
    buf: Box<[u8]>,
}

impl Default for Intset {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Intset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Intset(int{})", self.width() * 8)?;
        f.debug_list().entries(self.iter()).finish()
    }
}

/// The narrowest encoding (record width in bytes) that holds `v`.
fn width_for(v: i64) -> u32 {
    if v < i32::MIN as i64 || v > i32::MAX as i64 {
        ENC_INT64
    } else if v < i16::MIN as i64 || v > i16::MAX as i64 {
        ENC_INT32
    } else {
        ENC_INT16
    }
}

fn read_u32(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

/// Record `i` of `records` encoded with `width` bytes.
fn read_record(records: &[u8], width: usize, i: usize) -> i64 {
    let r = &records[i * width..(i + 1) * width];
    match width {
        2 => i16::from_le_bytes([r[0], r[1]]) as i64,
        4 => i32::from_le_bytes([r[0], r[1], r[2], r[3]]) as i64,
        _ => i64::from_le_bytes([r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]]),
    }
}

fn write_record(records: &mut [u8], width: usize, i: usize, v: i64) {
    let r = &mut records[i * width..(i + 1) * width];
    match width {
        2 => r.copy_from_slice(&(v as i16).to_le_bytes()),
        4 => r.copy_from_slice(&(v as i32).to_le_bytes()),
        _ => r.copy_from_slice(&v.to_le_bytes()),
    }
}

impl Intset {
    /// An empty intset of 16-bit records (`intsetNew`).
    pub fn new() -> Intset {
        let mut buf = Vec::with_capacity(HEADER);
        buf.extend_from_slice(&ENC_INT16.to_le_bytes());
        buf.extend_from_slice(&0u32.to_le_bytes());
        Intset {
            buf: buf.into_boxed_slice(),
        }
    }

    /// Make the blob `len` bytes long (new bytes zero), reallocating once.
    fn resize(&mut self, len: usize) {
        let mut v = std::mem::take(&mut self.buf).into_vec();
        v.reserve_exact(len.saturating_sub(v.len()));
        v.resize(len, 0);
        self.buf = v.into_boxed_slice();
    }

    /// Record width in bytes: 2, 4 or 8.
    pub fn width(&self) -> usize {
        read_u32(&self.buf, 0) as usize
    }

    pub fn len(&self) -> usize {
        read_u32(&self.buf, 4) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn set_len(&mut self, n: usize) {
        self.buf[4..8].copy_from_slice(&(n as u32).to_le_bytes());
    }

    fn records(&self) -> &[u8] {
        &self.buf[HEADER..]
    }

    /// The `i`-th smallest element.
    pub fn get(&self, i: usize) -> Option<i64> {
        (i < self.len()).then(|| read_record(self.records(), self.width(), i))
    }

    /// Where `v` is, or where it would be inserted (Redis's `intsetSearch`).
    fn search(&self, v: i64) -> Result<usize, usize> {
        let n = self.len();
        if n == 0 {
            return Err(0);
        }
        let (w, r) = (self.width(), self.records());
        // The common cases of appending or prepending skip the search.
        if v > read_record(r, w, n - 1) {
            return Err(n);
        }
        if v < read_record(r, w, 0) {
            return Err(0);
        }
        let (mut lo, mut hi) = (0usize, n);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let cur = read_record(r, w, mid);
            match cur.cmp(&v) {
                std::cmp::Ordering::Equal => return Ok(mid),
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
            }
        }
        Err(lo)
    }

    pub fn contains(&self, v: i64) -> bool {
        width_for(v) as usize <= self.width() && self.search(v).is_ok()
    }

    /// Insert `v`; false if it was already present.
    pub fn insert(&mut self, v: i64) -> bool {
        let need = width_for(v) as usize;
        if need > self.width() {
            self.upgrade_and_add(v, need);
            return true;
        }
        let pos = match self.search(v) {
            Ok(_) => return false,
            Err(p) => p,
        };
        let (w, n) = (self.width(), self.len());
        self.resize(HEADER + (n + 1) * w);
        let records = &mut self.buf[HEADER..];
        records.copy_within(pos * w..n * w, (pos + 1) * w);
        write_record(records, w, pos, v);
        self.set_len(n + 1);
        true
    }

    /// Widen every record to `width` bytes and add `v`, which does not fit the old
    /// width and so is smaller (negative) or larger than every element.
    fn upgrade_and_add(&mut self, v: i64, width: usize) {
        let (old_w, n) = (self.width(), self.len());
        let prepend = usize::from(v < 0);
        self.resize(HEADER + (n + 1) * width);
        self.buf[0..4].copy_from_slice(&(width as u32).to_le_bytes());
        let records = &mut self.buf[HEADER..];
        // Back to front, so no record is overwritten before it is read.
        for i in (0..n).rev() {
            let x = read_record(records, old_w, i);
            write_record(records, width, i + prepend, x);
        }
        write_record(records, width, if prepend == 1 { 0 } else { n }, v);
        self.set_len(n + 1);
    }

    /// Remove `v`; false if it was not present. The encoding stays as wide as it was.
    pub fn remove(&mut self, v: i64) -> bool {
        if width_for(v) as usize > self.width() {
            return false;
        }
        let Ok(pos) = self.search(v) else {
            return false;
        };
        let (w, n) = (self.width(), self.len());
        self.buf
            .copy_within(HEADER + (pos + 1) * w..HEADER + n * w, HEADER + pos * w);
        self.resize(HEADER + (n - 1) * w);
        self.set_len(n - 1);
        true
    }

    /// A uniformly chosen element (`intsetRandom`).
    pub fn random<R: Rng>(&self, rng: &mut R) -> Option<i64> {
        let n = self.len();
        (n > 0).then(|| read_record(self.records(), self.width(), rng.gen_range(0..n)))
    }

    pub fn min(&self) -> Option<i64> {
        self.get(0)
    }

    pub fn max(&self) -> Option<i64> {
        self.len().checked_sub(1).and_then(|i| self.get(i))
    }

    /// The elements in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = i64> + '_ {
        let (w, r) = (self.width(), self.records());
        (0..self.len()).map(move |i| read_record(r, w, i))
    }

    /// Redis's exact bytes (what an RDB file stores).
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// An intset from untrusted bytes (an RDB file), validated as Redis's
    /// `intsetValidateIntegrity` with deep checking: a known encoding, a length that
    /// matches the size exactly, at least one element, strictly ascending records.
    /// `None` for anything else; never panics.
    pub fn from_bytes(b: &[u8]) -> Option<Intset> {
        if b.len() < HEADER {
            return None;
        }
        let width = read_u32(b, 0);
        if !matches!(width, ENC_INT16 | ENC_INT32 | ENC_INT64) {
            return None;
        }
        let n = read_u32(b, 4) as usize;
        let expected = n.checked_mul(width as usize)?.checked_add(HEADER)?;
        if expected != b.len() || n == 0 {
            return None;
        }
        let records = &b[HEADER..];
        let w = width as usize;
        let ascending = (1..n).all(|i| read_record(records, w, i - 1) < read_record(records, w, i));
        ascending.then(|| Intset { buf: b.into() })
    }

    /// Heap bytes owned.
    pub fn heap_size(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn layout_is_redis_bytes() {
        let mut s = Intset::new();
        assert_eq!(s.as_bytes(), &[2, 0, 0, 0, 0, 0, 0, 0]);
        assert!(s.insert(5));
        assert!(s.insert(-3));
        assert!(!s.insert(5));
        assert_eq!(s.as_bytes(), &[2, 0, 0, 0, 2, 0, 0, 0, 0xfd, 0xff, 5, 0]);
        // 70000 needs 32 bits: everything widens, the new value goes last.
        assert!(s.insert(70000));
        assert_eq!(s.width(), 4);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![-3, 5, 70000]);
        assert_eq!(
            s.as_bytes(),
            &[4, 0, 0, 0, 3, 0, 0, 0, 0xfd, 0xff, 0xff, 0xff, 5, 0, 0, 0, 0x70, 0x11, 1, 0]
        );
        // A large negative goes first.
        assert!(s.insert(i64::MIN));
        assert_eq!(s.width(), 8);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![i64::MIN, -3, 5, 70000]);
        // Removing never narrows.
        assert!(s.remove(i64::MIN));
        assert!(!s.remove(i64::MIN));
        assert!(!s.remove(4));
        assert_eq!(s.width(), 8);
        assert_eq!(s.len(), 3);
        assert!(s.contains(70000) && !s.contains(i64::MAX));
        assert_eq!((s.min(), s.max()), (Some(-3), Some(70000)));
        let copy = Intset::from_bytes(s.as_bytes()).unwrap();
        assert_eq!(copy, s);
    }

    #[test]
    fn from_bytes_rejects_bad_blobs() {
        let mut good = Intset::new();
        good.insert(1);
        good.insert(2);
        let b = good.as_bytes().to_vec();
        assert!(Intset::from_bytes(&b).is_some());
        assert!(Intset::from_bytes(&b[..7]).is_none());
        assert!(Intset::from_bytes(&b[..b.len() - 1]).is_none());
        assert!(
            Intset::from_bytes(&[2, 0, 0, 0, 0, 0, 0, 0]).is_none(),
            "empty"
        );
        let mut bad_enc = b.clone();
        bad_enc[0] = 3;
        assert!(Intset::from_bytes(&bad_enc).is_none());
        let mut dup = b.clone();
        dup[10] = 1; // records 1, 1
        assert!(Intset::from_bytes(&dup).is_none());
        let mut huge = b.clone();
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(Intset::from_bytes(&huge).is_none());
        // A wider encoding than needed is valid (Redis never narrows).
        let wide = [8, 0, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            Intset::from_bytes(&wide)
                .unwrap()
                .iter()
                .collect::<Vec<_>>(),
            vec![7]
        );
    }

    #[test]
    fn random_picks_members() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        let mut s = Intset::new();
        assert_eq!(s.random(&mut rng), None);
        for v in [10, 20, 30] {
            s.insert(v);
        }
        let seen: BTreeSet<i64> = (0..200).filter_map(|_| s.random(&mut rng)).collect();
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec![10, 20, 30]);
    }

    fn value() -> impl Strategy<Value = i64> {
        prop_oneof![
            -40i64..40,
            any::<i16>().prop_map(i64::from),
            any::<i32>().prop_map(i64::from),
            any::<i64>(),
            Just(i64::MIN),
            Just(i64::MAX),
        ]
    }

    proptest! {
        #[test]
        fn behaves_like_a_btreeset(ops in prop::collection::vec((any::<bool>(), value()), 0..300)) {
            let mut s = Intset::new();
            let mut model = BTreeSet::new();
            let mut widest = 2;
            for (insert, v) in ops {
                if insert {
                    prop_assert_eq!(s.insert(v), model.insert(v));
                    widest = widest.max(width_for(v) as usize);
                } else {
                    prop_assert_eq!(s.remove(v), model.remove(&v));
                }
                prop_assert_eq!(s.contains(v), model.contains(&v));
                prop_assert_eq!(s.len(), model.len());
                prop_assert_eq!(s.width(), widest);
                prop_assert_eq!(s.as_bytes().len(), 8 + widest * model.len());
            }
            prop_assert!(s.iter().eq(model.iter().copied()));
            if !model.is_empty() {
                prop_assert_eq!(Intset::from_bytes(s.as_bytes()), Some(s.clone()));
            }
        }

        #[test]
        fn from_bytes_never_panics(b in prop::collection::vec(any::<u8>(), 0..64)) {
            if let Some(s) = Intset::from_bytes(&b) {
                prop_assert_eq!(s.as_bytes(), &b[..]);
                let v: Vec<i64> = s.iter().collect();
                prop_assert!(v.windows(2).all(|w| w[0] < w[1]));
            }
        }
    }
}
