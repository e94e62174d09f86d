//! LZF compression of RDB strings (`rdbSaveLzfStringObject`); reading them back is
//! the `lzf` crate's `decompress`.
//!
//! Why our own compressor: the `lzf` crate's (1.0) panics with an index out of bounds
//! on some nearly incompressible inputs (its literal runs can end one byte past its
//! output buffer before a match), and it allocates and zeroes a 512 KiB hash table per
//! call, so a SAVE of a million 100-byte strings spent 81% of its time in `memset`
//! and took 5.4 s against Redis's 1.0 s.
//!
//! The format (liblzf's, which Redis reads): a sequence of
//! - literal runs: a byte `000LLLLL` then L+1 bytes copied as they are (1-32 bytes);
//! - back references: a byte `LLLooooo` (LLL = length - 2, 1 to 6), or `111ooooo`
//!   followed by a byte holding length - 9 (lengths 9 to 264); then a byte with the
//!   low 8 bits of the offset. `ooooo` are its high 5 bits; the copy starts offset + 1
//!   bytes back in the output (up to 8 KiB back) and may overlap what it writes.
//!
//! The plan: one pass, greedy. A hash of the 3 bytes at each position finds the last
//! position with the same hash; if it is close enough and its 3 bytes are equal, the
//! match is extended as far as it goes (264 bytes at most) and written as a back
//! reference, else the byte joins the pending literals. The table is per thread and
//! never cleared: each call numbers positions from a base past the previous call's, so
//! older entries read as empty (the table is cleared only when the numbering would
//! wrap). A call gives up as soon as its output would pass `limit`, as liblzf does
//! when its output buffer is full, so an incompressible string costs one pass.

use std::cell::RefCell;

/// log2 of the hash table's entries (16K entries of 4 bytes: 64 KiB a thread).
const HASH_BITS: u32 = 14;
/// The farthest back a reference reaches (13 bits of offset - 1).
const MAX_OFFSET: usize = 1 << 13;
/// The longest back reference (7 + 255 + 2).
const MAX_MATCH: usize = 264;
/// The longest literal run.
const MAX_LITERALS: usize = 32;

struct Table {
    /// Position + base of the last position whose 3 bytes hashed here.
    slots: Vec<u32>,
    /// Positions of this call are numbered from here; smaller entries are stale.
    base: u32,
}

thread_local! {
    static TABLE: RefCell<Table> = RefCell::new(Table {
        slots: vec![0; 1 << HASH_BITS],
        base: 1,
    });
}

fn hash(b: &[u8]) -> usize {
    let v = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
    (v.wrapping_mul(2_654_435_761) >> (32 - HASH_BITS)) as usize
}

/// `input` compressed, or `None` when that would take more than `limit` bytes.
pub fn compress(input: &[u8], limit: usize) -> Option<Vec<u8>> {
    let n = input.len();
    if n >= 1 << 31 {
        return None;
    }
    let mut out = Vec::with_capacity(limit.min(n + n / MAX_LITERALS + 1));
    TABLE.with(|t| {
        let mut t = t.borrow_mut();
        // Positions of this call are base..base + n: start over before they wrap.
        if u64::from(t.base) + n as u64 + 1 >= u64::from(u32::MAX) {
            t.slots.fill(0);
            t.base = 1;
        }
        let base = t.base;
        t.base += n as u32 + 1;
        let mut literals_from = 0;
        let mut i = 0;
        while i + 2 < n {
            let slot = hash(&input[i..]);
            let seen = t.slots[slot];
            t.slots[slot] = base + i as u32;
            if seen >= base {
                let at = (seen - base) as usize;
                let offset = i - at - 1;
                if offset < MAX_OFFSET && input[at..at + 3] == input[i..i + 3] {
                    let longest = (n - i).min(MAX_MATCH);
                    let mut len = 3;
                    while len < longest && input[at + len] == input[i + len] {
                        len += 1;
                    }
                    push_literals(&mut out, &input[literals_from..i]);
                    push_reference(&mut out, len, offset);
                    if out.len() > limit {
                        return None;
                    }
                    i += len;
                    literals_from = i;
                    continue;
                }
            }
            i += 1;
            let pending = i - literals_from;
            if out.len() + pending + pending.div_ceil(MAX_LITERALS) > limit {
                return None;
            }
        }
        push_literals(&mut out, &input[literals_from..]);
        (out.len() <= limit).then_some(out)
    })
}

fn push_literals(out: &mut Vec<u8>, literals: &[u8]) {
    for run in literals.chunks(MAX_LITERALS) {
        out.push((run.len() - 1) as u8);
        out.extend_from_slice(run);
    }
}

fn push_reference(out: &mut Vec<u8>, len: usize, offset: usize) {
    let high = (offset >> 8) as u8;
    let len = len - 2;
    if len < 7 {
        out.push((len as u8) << 5 | high);
    } else {
        out.push(7 << 5 | high);
        out.push((len - 7) as u8);
    }
    out.push(offset as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(input: &[u8]) {
        let Some(c) = compress(input, usize::MAX) else {
            panic!("no limit, no refusal");
        };
        if !input.is_empty() {
            assert_eq!(lzf::decompress(&c, input.len()).unwrap(), input);
        }
        // A limit below the output refuses; the output's own size is enough.
        if !c.is_empty() {
            assert_eq!(compress(input, c.len() - 1), None);
        }
        assert_eq!(compress(input, c.len()).as_deref(), Some(&c[..]));
    }

    #[test]
    fn repeats_shrink_and_come_back() {
        round_trip(b"");
        round_trip(b"a");
        round_trip(b"abcabcabcabcabcabcabcabcabcabcabcabc");
        let zeros = vec![0u8; 100_000];
        let c = compress(&zeros, usize::MAX).unwrap();
        assert!(c.len() < 1_300, "{}", c.len());
        round_trip(&zeros);
        let text = b"value:123456 ".repeat(300);
        round_trip(&text);
        // A match reaching back to the table's farthest slot, and past it.
        let mut far = vec![7u8; 3];
        far.extend((0..MAX_OFFSET as u32 * 2).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
        far.extend_from_slice(&[7, 7, 7]);
        round_trip(&far);
    }

    #[test]
    fn incompressible_input_is_refused_within_the_limit() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let noise: Vec<u8> = (0..10_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        assert_eq!(compress(&noise, noise.len() - 4), None);
        round_trip(&noise);
    }

    proptest::proptest! {
        #[test]
        fn any_input_round_trips(
            input in proptest::collection::vec(0u8..4, 0..3000),
            noise in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3000),
        ) {
            round_trip(&input);
            round_trip(&noise);
            let mut both = noise.clone();
            both.extend_from_slice(&input);
            both.extend_from_slice(&noise);
            round_trip(&both);
        }
    }
}
