//! HyperLogLog sketches in Redis 7.0's own byte format (`hyperloglog.c`).
//!
//! A sketch is a plain string value, so `GET` returns exactly the bytes Redis would
//! store and `SET` can hand any string to the HLL commands, which must then check it.
//! Layout: a 16-byte header (`HYLL`, an encoding byte, three unused bytes, the cached
//! cardinality as 8 little-endian bytes whose top bit marks it stale) followed by
//! 16384 registers of 6 bits. Two encodings of those registers:
//!
//! * dense: the registers packed 6 bits each, LSB first (12288 bytes);
//! * sparse: run-length opcodes. `00xxxxxx` ZERO (1..64 zero registers),
//!   `01xxxxxx yyyyyyyy` XZERO (1..16384 zero registers, 14-bit length),
//!   `1vvvvvxx` VAL (1..4 registers holding value 1..32).
//!
//! The one idea to hold: every operation must leave the *same bytes* Redis would, so the
//! sparse update follows Redis's in-place rewrite step by step (split the opcode that
//! covers the register into at most three, then merge at most five neighbouring VAL
//! opcodes), and promotes to dense exactly when Redis does: a value above 32, or a
//! rewrite that would grow the string past `hll-sparse-max-bytes`. Strings written by
//! users may be corrupt: nothing here indexes past the end; a read past the end sees
//! the zero byte that terminates Redis's sds strings, as Redis itself does.
//!
//! Hashing is MurmurHash64A with Redis's seed, hand-written here (a few lines; the
//! crates that offer it differ in tail handling or endianness).

/// Header size in bytes.
pub const HDR_SIZE: usize = 16;
/// Number of registers (2^14).
pub const REGISTERS: usize = 1 << P;
/// Byte size of a dense sketch.
pub const DENSE_SIZE: usize = HDR_SIZE + (REGISTERS * BITS).div_ceil(8);
/// Encoding byte of a dense sketch.
pub const DENSE: u8 = 0;
/// Encoding byte of a sparse sketch.
pub const SPARSE: u8 = 1;

const P: usize = 14;
const Q: usize = 64 - P;
const BITS: usize = 6;
const REGISTER_MAX: u8 = 63;
const SEED: u64 = 0xadc8_3b19;
const SPARSE_VAL_MAX_VALUE: u8 = 32;
const SPARSE_VAL_MAX_LEN: usize = 4;
const SPARSE_ZERO_MAX_LEN: usize = 64;
const SPARSE_XZERO_MAX_LEN: usize = 16384;
/// 1 / (2 ln 2), the estimator's constant for an infinite number of registers.
const ALPHA_INF: f64 = 0.721_347_520_444_481_7;

/// The sketch's bytes do not describe 16384 registers (Redis's INVALIDOBJ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corrupt;

/// MurmurHash64A over `data` (8-byte little-endian blocks), as Redis computes it on
/// every platform.
pub fn murmur64a(data: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h = seed ^ (data.len() as u64).wrapping_mul(M);
    let mut blocks = data.chunks_exact(8);
    for block in &mut blocks {
        let mut k = u64::from_le_bytes(block.try_into().expect("8-byte chunk"));
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate() {
            h ^= (b as u64) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// The register an element lands in and the value it offers there: the number of
/// trailing zeros of the hash's upper 50 bits, plus one (1..=51).
pub fn register_and_count(element: &[u8]) -> (usize, u8) {
    let hash = murmur64a(element, SEED);
    let index = (hash as usize) & (REGISTERS - 1);
    let rest = (hash >> P) | (1u64 << Q);
    (index, rest.trailing_zeros() as u8 + 1)
}

/// An empty sketch as PFADD creates it: sparse, one XZERO covering every register.
pub fn new_sparse() -> Vec<u8> {
    let mut v = vec![0u8; HDR_SIZE];
    v[..4].copy_from_slice(b"HYLL");
    v[4] = SPARSE;
    let mut run = REGISTERS;
    while run > 0 {
        let len = run.min(SPARSE_XZERO_MAX_LEN);
        push_xzero(&mut v, len);
        run -= len;
    }
    v
}

/// Whether `b` passes Redis's `isHLLObjectOrReply` checks: magic, a known encoding,
/// and the exact size when dense.
pub fn is_valid_header(b: &[u8]) -> bool {
    b.len() >= HDR_SIZE
        && &b[..4] == b"HYLL"
        && b[4] <= SPARSE
        && (b[4] != DENSE || b.len() == DENSE_SIZE)
}

pub fn is_sparse(b: &[u8]) -> bool {
    b.get(4) == Some(&SPARSE)
}

/// The cached cardinality, if the header holds a valid one.
pub fn cached_cardinality(b: &[u8]) -> Option<u64> {
    let card: [u8; 8] = b.get(8..HDR_SIZE)?.try_into().ok()?;
    (card[7] & 0x80 == 0).then(|| u64::from_le_bytes(card))
}

/// Store `card` as the cached cardinality (which marks it valid).
pub fn set_cached_cardinality(b: &mut [u8], card: u64) {
    if let Some(dst) = b.get_mut(8..HDR_SIZE) {
        dst.copy_from_slice(&card.to_le_bytes());
    }
}

/// Mark the cached cardinality stale (the top bit of its last byte).
pub fn invalidate_cache(b: &mut [u8]) {
    if let Some(x) = b.get_mut(15) {
        *x |= 0x80;
    }
}

/// PFADD's per-element step: true if a register grew. The cache is left alone (the
/// command invalidates it once when anything changed).
pub fn add(hll: &mut Vec<u8>, element: &[u8], sparse_max_bytes: usize) -> Result<bool, Corrupt> {
    let (index, count) = register_and_count(element);
    set_register(hll, index, count, sparse_max_bytes)
}

/// Raise register `index` to `count` if it is lower; true if it changed. A sparse
/// sketch may be promoted to dense on the way, as Redis's `hllSparseSet` does.
pub fn set_register(
    hll: &mut Vec<u8>,
    index: usize,
    count: u8,
    sparse_max_bytes: usize,
) -> Result<bool, Corrupt> {
    match hll.get(4) {
        Some(&DENSE) => Ok(dense_set(&mut hll[HDR_SIZE..], index, count)),
        Some(&SPARSE) => sparse_set(hll, index, count, sparse_max_bytes),
        _ => Err(Corrupt),
    }
}

/// Convert a sparse sketch to dense in place (the header, cache bytes included, is
/// kept; only the encoding byte changes). Ok(true) if it was converted, Ok(false) if
/// it was already dense.
pub fn to_dense(hll: &mut Vec<u8>) -> Result<bool, Corrupt> {
    if !is_sparse(hll) {
        return Ok(false);
    }
    let mut dense = vec![0u8; DENSE_SIZE];
    dense[..HDR_SIZE].copy_from_slice(&hll[..HDR_SIZE]);
    dense[4] = DENSE;
    let regs = &mut dense[HDR_SIZE..];
    let mut idx = 0usize;
    let mut ok = true;
    for op in Opcodes::new(&hll[HDR_SIZE..]) {
        match op {
            Op::Zero(len) => idx += len,
            Op::Val(value, len) => {
                if idx + len > REGISTERS {
                    ok = false;
                    break;
                }
                for _ in 0..len {
                    dense_write(regs, idx, value);
                    idx += 1;
                }
            }
        }
    }
    if !ok || idx != REGISTERS {
        return Err(Corrupt);
    }
    *hll = dense;
    Ok(true)
}

/// Fold the sketch's registers into `max` (`max[i] = MAX(max[i], reg[i])`), as
/// PFMERGE and multi-key PFCOUNT do.
pub fn merge_into(max: &mut [u8; REGISTERS], hll: &[u8]) -> Result<(), Corrupt> {
    match hll.get(4) {
        Some(&DENSE) => {
            let regs = &hll[HDR_SIZE..];
            for (i, m) in max.iter_mut().enumerate() {
                *m = (*m).max(dense_get(regs, i));
            }
            Ok(())
        }
        Some(&SPARSE) => {
            let mut i = 0usize;
            for op in Opcodes::new(&hll[HDR_SIZE..]) {
                match op {
                    Op::Zero(len) => i += len,
                    Op::Val(value, len) => {
                        // A run past the last register is corrupt (Redis 7.0.15 as
                        // patched for CVE-2025-32023 refuses it here).
                        if i + len > REGISTERS {
                            return Err(Corrupt);
                        }
                        for m in &mut max[i..i + len] {
                            *m = (*m).max(value);
                        }
                        i += len;
                    }
                }
            }
            if i == REGISTERS {
                Ok(())
            } else {
                Err(Corrupt)
            }
        }
        _ => Err(Corrupt),
    }
}

/// The sketch's cardinality estimate computed from its registers (the cache is not
/// consulted). A sparse sketch not covering exactly 16384 registers is corrupt.
pub fn count(hll: &[u8]) -> Result<u64, Corrupt> {
    let mut histo = [0u64; 64];
    match hll.get(4) {
        Some(&DENSE) => {
            let regs = &hll[HDR_SIZE..];
            for i in 0..REGISTERS {
                histo[dense_get(regs, i) as usize] += 1;
            }
        }
        Some(&SPARSE) => {
            let mut idx = 0usize;
            for op in Opcodes::new(&hll[HDR_SIZE..]) {
                match op {
                    Op::Zero(len) => {
                        idx += len;
                        histo[0] += len as u64;
                    }
                    Op::Val(value, len) => {
                        idx += len;
                        histo[value as usize] += len as u64;
                    }
                }
            }
            if idx != REGISTERS {
                return Err(Corrupt);
            }
        }
        _ => return Err(Corrupt),
    }
    Ok(estimate(&histo))
}

/// Cardinality of plain registers, one byte each (multi-key PFCOUNT's merged sketch).
pub fn count_registers(regs: &[u8; REGISTERS]) -> u64 {
    let mut histo = [0u64; 64];
    for &r in regs.iter() {
        histo[(r & 63) as usize] += 1;
    }
    estimate(&histo)
}

/// All 16384 register values of a dense sketch (PFDEBUG GETREG).
pub fn dense_registers(hll: &[u8]) -> Vec<u8> {
    let regs = hll.get(HDR_SIZE..).unwrap_or(&[]);
    (0..REGISTERS).map(|i| dense_get(regs, i)).collect()
}

/// The sparse opcodes in PFDEBUG DECODE's notation: `z:len`, `Z:len`, `v:value,len`.
pub fn decode_sparse(hll: &[u8]) -> String {
    let ops = hll.get(HDR_SIZE..).unwrap_or(&[]);
    let mut out = Vec::new();
    let mut p = 0;
    while p < ops.len() {
        let b = ops[p];
        if is_zero(b) {
            out.push(format!("z:{}", zero_len(b)));
            p += 1;
        } else if is_xzero(b) {
            out.push(format!("Z:{}", xzero_len(b, byte_at(ops, p + 1))));
            p += 2;
        } else {
            out.push(format!("v:{},{}", val_value(b), val_len(b)));
            p += 1;
        }
    }
    out.join(" ")
}

// ---- estimator ---------------------------------------------------------------------

/// Redis 7.0's estimator (Ertl, "New cardinality estimation algorithms for
/// HyperLogLog sketches", 2017) over the register-value histogram.
fn estimate(histo: &[u64; 64]) -> u64 {
    let m = REGISTERS as f64;
    let mut z = m * tau((m - histo[Q + 1] as f64) / m);
    for j in (1..=Q).rev() {
        z += histo[j] as f64;
        z *= 0.5;
    }
    z += m * sigma(histo[0] as f64 / m);
    // `(uint64_t)(double)llroundl(e)` on x86-64: an estimate out of range (z == 0 when
    // every register is above 50) becomes LLONG_MIN, read back as 2^63.
    let e = ALPHA_INF * m * m / z;
    let rounded = if e.is_finite() && e.abs() < 9.2e18 {
        e.round() as i64
    } else {
        i64::MIN
    };
    rounded as u64
}

fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let mut y = 1.0;
    let mut z = x;
    loop {
        x *= x;
        let prev = z;
        z += x * y;
        y += y;
        if prev == z {
            return z;
        }
    }
}

fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let mut y = 1.0;
    let mut z = 1.0 - x;
    loop {
        x = x.sqrt();
        let prev = z;
        y *= 0.5;
        z -= (1.0 - x) * (1.0 - x) * y;
        if prev == z {
            return z / 3.0;
        }
    }
}

// ---- dense registers ---------------------------------------------------------------

/// A byte of `b`, or the zero terminator Redis's strings carry past their end.
fn byte_at(b: &[u8], i: usize) -> u8 {
    b.get(i).copied().unwrap_or(0)
}

fn dense_get(regs: &[u8], index: usize) -> u8 {
    let bit = index * BITS;
    let (byte, fb) = (bit / 8, bit & 7);
    let b0 = byte_at(regs, byte) as u32;
    let b1 = byte_at(regs, byte + 1) as u32;
    (((b0 >> fb) | (b1 << (8 - fb))) & REGISTER_MAX as u32) as u8
}

fn dense_write(regs: &mut [u8], index: usize, value: u8) {
    let bit = index * BITS;
    let (byte, fb) = (bit / 8, bit & 7);
    let v = value as u32;
    let mask = REGISTER_MAX as u32;
    if let Some(b) = regs.get_mut(byte) {
        *b = ((*b as u32 & !(mask << fb)) | (v << fb)) as u8;
    }
    if let Some(b) = regs.get_mut(byte + 1) {
        *b = ((*b as u32 & !(mask >> (8 - fb))) | (v >> (8 - fb))) as u8;
    }
}

fn dense_set(regs: &mut [u8], index: usize, count: u8) -> bool {
    if count > dense_get(regs, index) {
        dense_write(regs, index, count);
        true
    } else {
        false
    }
}

// ---- sparse opcodes ----------------------------------------------------------------

fn is_zero(b: u8) -> bool {
    b & 0xc0 == 0
}
fn is_xzero(b: u8) -> bool {
    b & 0xc0 == 0x40
}
fn is_val(b: u8) -> bool {
    b & 0x80 != 0
}
fn zero_len(b: u8) -> usize {
    (b & 0x3f) as usize + 1
}
fn xzero_len(b0: u8, b1: u8) -> usize {
    (((b0 & 0x3f) as usize) << 8 | b1 as usize) + 1
}
fn val_value(b: u8) -> u8 {
    ((b >> 2) & 0x1f) + 1
}
fn val_len(b: u8) -> usize {
    (b & 0x3) as usize + 1
}
fn val_op(value: u8, len: usize) -> u8 {
    0x80 | ((value - 1) << 2) | (len - 1) as u8
}
fn push_zero_run(out: &mut Vec<u8>, len: usize) {
    if len > SPARSE_ZERO_MAX_LEN {
        push_xzero(out, len);
    } else {
        out.push((len - 1) as u8);
    }
}
fn push_xzero(out: &mut Vec<u8>, len: usize) {
    let l = len - 1;
    out.push(0x40 | (l >> 8) as u8);
    out.push((l & 0xff) as u8);
}

/// A decoded opcode: a run of zero registers, or a run of `len` registers at `value`.
enum Op {
    Zero(usize),
    Val(u8, usize),
}

/// The opcodes of a sparse register area, read as Redis reads them (an XZERO cut by
/// the end of the string reads the terminator as its second byte).
struct Opcodes<'a> {
    ops: &'a [u8],
    p: usize,
}

impl<'a> Opcodes<'a> {
    fn new(ops: &'a [u8]) -> Self {
        Opcodes { ops, p: 0 }
    }
}

impl Iterator for Opcodes<'_> {
    type Item = Op;
    fn next(&mut self) -> Option<Op> {
        let b = *self.ops.get(self.p)?;
        Some(if is_zero(b) {
            self.p += 1;
            Op::Zero(zero_len(b))
        } else if is_xzero(b) {
            let len = xzero_len(b, byte_at(self.ops, self.p + 1));
            self.p += 2;
            Op::Zero(len)
        } else {
            self.p += 1;
            Op::Val(val_value(b), val_len(b))
        })
    }
}

/// Redis's `hllSparseSet`, byte for byte.
fn sparse_set(
    hll: &mut Vec<u8>,
    index: usize,
    count: u8,
    sparse_max_bytes: usize,
) -> Result<bool, Corrupt> {
    if count > SPARSE_VAL_MAX_VALUE {
        return promote(hll, index, count);
    }
    // Step 1: find the opcode covering `index`.
    let end = hll.len();
    let mut p = HDR_SIZE;
    let mut first = 0usize;
    let mut prev: Option<usize> = None;
    let mut span = 0usize;
    let mut oplen = 1;
    while p < end {
        let b = hll[p];
        oplen = 1;
        span = if is_zero(b) {
            zero_len(b)
        } else if is_val(b) {
            val_len(b)
        } else {
            oplen = 2;
            xzero_len(b, byte_at(hll, p + 1))
        };
        if index < first + span {
            break;
        }
        prev = Some(p);
        p += oplen;
        first += span;
    }
    if span == 0 || p >= end {
        return Err(Corrupt);
    }
    let op = hll[p];
    let last = first + span - 1;

    // Step 2: the trivial in-place cases, then the general split.
    if is_val(op) {
        if val_value(op) >= count {
            return Ok(false);
        }
        if span == 1 {
            hll[p] = val_op(count, 1);
            merge_adjacent_vals(hll, prev);
            return Ok(true);
        }
    }
    if is_zero(op) && span == 1 {
        hll[p] = val_op(count, 1);
        merge_adjacent_vals(hll, prev);
        return Ok(true);
    }
    let mut seq: Vec<u8> = Vec::with_capacity(5);
    if is_val(op) {
        let current = val_value(op);
        if index != first {
            seq.push(val_op(current, index - first));
        }
        seq.push(val_op(count, 1));
        if index != last {
            seq.push(val_op(current, last - index));
        }
    } else {
        if index != first {
            push_zero_run(&mut seq, index - first);
        }
        seq.push(val_op(count, 1));
        if index != last {
            push_zero_run(&mut seq, last - index);
        }
    }

    // Step 3: substitute the new sequence for the old opcode, unless the string would
    // grow past the sparse limit.
    let new_len = end + seq.len() - oplen; // the length Redis gives the string
    if seq.len() > oplen && new_len > sparse_max_bytes {
        return promote(hll, index, count);
    }
    let old_end = (p + oplen).min(end);
    hll.splice(p..old_end, seq);
    // An XZERO cut by the end of the string counted its missing byte as present.
    hll.truncate(new_len);
    merge_adjacent_vals(hll, prev);
    Ok(true)
}

/// Step 4 of `hllSparseSet`: starting at the opcode before the one changed, look at up
/// to five opcodes and merge adjacent VALs of the same value while they fit in one.
fn merge_adjacent_vals(hll: &mut Vec<u8>, prev: Option<usize>) {
    let mut p = prev.unwrap_or(HDR_SIZE);
    let mut scan = 5;
    while p < hll.len() && scan > 0 {
        scan -= 1;
        let b = hll[p];
        if is_xzero(b) {
            p += 2;
            continue;
        }
        if is_zero(b) {
            p += 1;
            continue;
        }
        if let Some(&next) = hll.get(p + 1) {
            if is_val(next) && val_value(b) == val_value(next) {
                let len = val_len(b) + val_len(next);
                if len <= SPARSE_VAL_MAX_LEN {
                    hll[p + 1] = val_op(val_value(b), len);
                    hll.remove(p);
                    continue;
                }
            }
        }
        p += 1;
    }
}

/// Convert to dense and set the register there (it must grow: a sparse sketch cannot
/// hold the value, or had no room for it).
fn promote(hll: &mut Vec<u8>, index: usize, count: u8) -> Result<bool, Corrupt> {
    to_dense(hll)?;
    Ok(dense_set(&mut hll[HDR_SIZE..], index, count))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sketch(elements: &[&[u8]], sparse_max: usize) -> Vec<u8> {
        let mut h = new_sparse();
        for e in elements {
            add(&mut h, e, sparse_max).unwrap();
        }
        h
    }

    fn bytes_of(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }

    #[test]
    fn empty_sketch_is_redis_bytes() {
        // `PFADD h0` then `GET h0` on redis-server 7.0 (whose cache bit is then set).
        let mut h = new_sparse();
        invalidate_cache(&mut h);
        assert_eq!(
            h,
            b"HYLL\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80\x7f\xff".to_vec()
        );
        assert_eq!(count(&h), Ok(0));
    }

    #[test]
    fn three_elements_match_redis() {
        // `PFADD h1 a b c` on redis-server 7.0: `GET h1`, then after `PFCOUNT h1`.
        let mut h = sketch(&[b"a", b"b", b"c"], 3000);
        invalidate_cache(&mut h);
        let want =
            b"HYLL\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80`\xf3\x80P\xb1\x84K\xfb\x80BZ";
        assert_eq!(h, want.to_vec());
        assert_eq!(
            decode_sparse(&h),
            "Z:8436 v:1,1 Z:4274 v:2,1 Z:3068 v:1,1 Z:603"
        );
        assert_eq!(count(&h), Ok(3));
        set_cached_cardinality(&mut h, 3);
        assert_eq!(&h[8..16], b"\x03\x00\x00\x00\x00\x00\x00\x00");
        assert_eq!(cached_cardinality(&h), Some(3));
    }

    #[test]
    fn dense_registers_round_trip() {
        let mut regs = vec![0u8; DENSE_SIZE - HDR_SIZE];
        for i in 0..REGISTERS {
            dense_write(&mut regs, i, ((i * 7) % 64) as u8);
        }
        for i in 0..REGISTERS {
            assert_eq!(dense_get(&regs, i), ((i * 7) % 64) as u8, "register {i}");
        }
    }

    #[test]
    fn sparse_and_dense_agree() {
        let elements: Vec<Vec<u8>> = (0..2000).map(|i| bytes_of(&format!("e{i}"))).collect();
        let refs: Vec<&[u8]> = elements.iter().map(|e| e.as_slice()).collect();
        let sparse = sketch(&refs, usize::MAX);
        assert!(is_sparse(&sparse));
        let mut dense = sketch(&refs, 0);
        assert!(!is_sparse(&dense) && dense.len() == DENSE_SIZE);
        let mut converted = sparse.clone();
        assert_eq!(to_dense(&mut converted), Ok(true));
        converted[8..16].copy_from_slice(&dense[8..16]);
        assert_eq!(converted, dense);
        assert_eq!(count(&sparse), count(&dense));
        let mut max = [0u8; REGISTERS];
        merge_into(&mut max, &sparse).unwrap();
        assert_eq!(max.to_vec(), dense_registers(&dense));
        assert_eq!(count_registers(&max), count(&dense).unwrap());
        to_dense(&mut dense).unwrap();
    }

    #[test]
    fn sparse_promotes_past_the_limit() {
        let mut h = new_sparse();
        let mut i = 0;
        while is_sparse(&h) {
            add(&mut h, format!("x{i}").as_bytes(), 300).unwrap();
            assert!(h.len() <= 300 || !is_sparse(&h));
            i += 1;
        }
        assert_eq!(h.len(), DENSE_SIZE);
    }

    #[test]
    fn corrupt_sparse_is_detected() {
        let mut h = new_sparse();
        h.truncate(HDR_SIZE + 1); // XZERO missing its second byte: covers 16129
        assert_eq!(count(&h), Err(Corrupt));
        let mut max = [0u8; REGISTERS];
        assert_eq!(merge_into(&mut max, &h), Err(Corrupt));
        assert_eq!(to_dense(&mut h.clone()), Err(Corrupt));
        // Setting a register beyond the covered area is an error, never a panic.
        assert_eq!(set_register(&mut h, 16383, 3, 3000), Err(Corrupt));
        // Inside it, Redis rewrites the cut opcode (and its length comes out one short).
        let mut h2 = h.clone();
        assert_eq!(set_register(&mut h2, 5, 3, 3000), Ok(true));
        // A VAL run past the last register: corrupt for merges too.
        let mut over = new_sparse();
        over.push(0x80);
        assert_eq!(merge_into(&mut max, &over), Err(Corrupt));
        assert_eq!(count(&over), Err(Corrupt));
        let mut garbage = b"HYLL\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00".to_vec();
        assert_eq!(count(&garbage), Err(Corrupt));
        assert_eq!(add(&mut garbage, b"a", 3000), Err(Corrupt));
        garbage.extend_from_slice(&[0xff; 100]);
        assert!(count(&garbage).is_err());
        assert!(add(&mut garbage, b"a", 3000).is_err() || garbage.len() == DENSE_SIZE);
    }

    #[test]
    fn header_checks() {
        assert!(is_valid_header(&new_sparse()));
        assert!(!is_valid_header(b"HYLL"));
        let mut d = vec![0u8; DENSE_SIZE];
        d[..4].copy_from_slice(b"HYLL");
        assert!(is_valid_header(&d));
        d.push(0);
        assert!(!is_valid_header(&d));
        let mut s = new_sparse();
        s[4] = 2;
        assert!(!is_valid_header(&s));
    }

    #[test]
    fn estimator_tracks_cardinality() {
        for n in [1usize, 10, 100, 1000, 10_000, 100_000] {
            let mut h = new_sparse();
            for i in 0..n {
                add(&mut h, format!("el:{i}").as_bytes(), 3000).unwrap();
            }
            let c = count(&h).unwrap() as f64;
            let err = (c - n as f64).abs() / n as f64;
            assert!(err < 0.03, "n={n} estimate={c}");
        }
    }
}
