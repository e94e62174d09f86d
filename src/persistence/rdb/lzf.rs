//! LZF compression of RDB strings (`rdbSaveLzfStringObject`); reading them back is
//! the `lzf` crate's `decompress`.
//!
//! Why our own compressor: the `lzf` crate's (1.0) panics with an index out of bounds
//! on some nearly incompressible inputs (its literal runs can end one byte past its
//! output buffer before a match), and it allocates and zeroes a 512 KiB hash table per
//! call, so a SAVE of a million 100-byte strings spent 81% of its time in `memset`
//! and took 5.4 s against Redis's 1.0 s (0.48 s now).
//!
//! The format (liblzf's, which Redis reads): a sequence of
//! - literal runs: a byte `000LLLLL` then L+1 bytes copied as they are (1-32 bytes);
//! - back references: a byte `LLLooooo` (LLL = length - 2, 1 to 6), or `111ooooo`
//!   followed by a byte holding length - 9 (lengths 9 to 264); then a byte with the
//!   low 8 bits of the offset. `ooooo` are its high 5 bits; the copy starts offset + 1
//!   bytes back in the output (up to 8 KiB back) and may overlap what it writes.
//!
//! The plan: liblzf's own greedy parse (`lzf_c.c` as Redis 7.0 builds it: `HLOG` 16,
//! `VERY_FAST`), so that a value is stored byte for byte as Redis stores it: DEBUG
//! OBJECT's `serializedlength`, DUMP payloads and file sizes match Redis's. One pass:
//! a rolling hash of the bytes at each position (liblzf's `FRST` / `NEXT` / `IDX`,
//! which also mix in the byte before) finds the last position with the same hash; if it
//! is not the input's first byte, is close enough and its 3 bytes are equal, the match
//! is extended (to 264 bytes, and never over the last 2 bytes but where liblzf's
//! unrolled comparison reaches them) and written as a back reference, and the match's
//! last two positions are hashed; else the byte joins the pending literal run. The
//! output gives up exactly where liblzf's does for an output buffer of `limit` bytes,
//! so the same strings are stored compressed. The table is per thread and never
//! cleared: each call numbers positions from a base past the previous call's, so older
//! entries read as empty (as a zeroed table would; the table is cleared only when the
//! numbering would wrap).

use std::cell::RefCell;

/// log2 of the hash table's entries (liblzf's `HLOG`: 64K entries of 4 bytes a thread).
const HASH_BITS: u32 = 16;
/// The farthest back a reference reaches (13 bits of offset - 1).
const MAX_OFFSET: usize = 1 << 13;
/// The longest back reference (7 + 255 + 2).
const MAX_MATCH: usize = 264;
/// The longest literal run.
const MAX_LITERALS: usize = 32;

struct Table {
    /// Position + base of the last position whose hash fell here.
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

/// liblzf's `IDX` of the rolling value `h`.
fn slot_of(h: u32) -> usize {
    ((h >> (24 - HASH_BITS)).wrapping_sub(h.wrapping_mul(5)) & ((1 << HASH_BITS) - 1)) as usize
}

/// The output: runs of literals behind a control byte reserved when the run starts.
struct Out {
    bytes: Vec<u8>,
    /// Literals in the current run.
    run: usize,
}

impl Out {
    fn literal(&mut self, b: u8) {
        self.bytes.push(b);
        self.run += 1;
        if self.run == MAX_LITERALS {
            self.end_run();
            self.bytes.push(0);
        }
    }

    /// Write the current run's control byte, or drop it if the run is empty.
    fn end_run(&mut self) {
        if self.run == 0 {
            self.bytes.pop();
        } else {
            let at = self.bytes.len() - self.run - 1;
            self.bytes[at] = (self.run - 1) as u8;
        }
        self.run = 0;
    }

    fn reference(&mut self, len: usize, offset: usize) {
        self.end_run();
        let high = (offset >> 8) as u8;
        let len = len - 2;
        if len < 7 {
            self.bytes.push((len as u8) << 5 | high);
        } else {
            self.bytes.push(7 << 5 | high);
            self.bytes.push((len - 7) as u8);
        }
        self.bytes.push(offset as u8);
        self.bytes.push(0);
    }
}

/// `input` compressed, or `None` when liblzf would find that it takes more than
/// `limit` bytes.
pub fn compress(input: &[u8], limit: usize) -> Option<Vec<u8>> {
    let n = input.len();
    if n < 3 || limit == 0 || n >= 1 << 31 {
        return None;
    }
    let mut out = Out {
        bytes: Vec::with_capacity(limit.min(n + n / MAX_LITERALS + 2)),
        run: 0,
    };
    out.bytes.push(0);
    TABLE.with(|t| {
        let mut t = t.borrow_mut();
        // Positions of this call are base..base + n: start over before they wrap.
        if u64::from(t.base) + n as u64 + 1 >= u64::from(u32::MAX) {
            t.slots.fill(0);
            t.base = 1;
        }
        let base = t.base;
        t.base += n as u32 + 1;
        let slots = &mut t.slots;
        let mut h = u32::from(input[0]) << 8 | u32::from(input[1]);
        let mut i = 0;
        while i + 2 < n {
            h = h << 8 | u32::from(input[i + 2]);
            let slot = slot_of(h);
            let seen = slots[slot];
            slots[slot] = base + i as u32;
            let at = seen.checked_sub(base).map_or(0, |at| at as usize);
            if at > 0 && i - at - 1 < MAX_OFFSET && input[at..at + 3] == input[i..i + 3] {
                let op = out.bytes.len();
                if op + 4 >= limit && op - usize::from(out.run == 0) + 4 >= limit {
                    return None;
                }
                let len = match_len(input, at, i);
                out.reference(len, i - at - 1);
                i += len;
                if i + 2 >= n {
                    break;
                }
                // Hash the match's last two positions.
                i -= 2;
                h = u32::from(input[i]) << 8 | u32::from(input[i + 1]);
                for _ in 0..2 {
                    h = h << 8 | u32::from(input[i + 2]);
                    slots[slot_of(h)] = base + i as u32;
                    i += 1;
                }
            } else {
                if out.bytes.len() >= limit {
                    return None;
                }
                out.literal(input[i]);
                i += 1;
            }
        }
        if out.bytes.len() + 3 > limit {
            return None;
        }
        for &b in &input[i..] {
            out.literal(b);
        }
        out.end_run();
        Some(out.bytes)
    })
}

/// The length of the match at `i` of the bytes at `at`, whose first 3 are equal:
/// liblzf's, which stops 2 bytes before the end (and at 264) unless its unrolled
/// first 16 comparisons, made when more than 16 bytes are left to compare, go past.
fn match_len(input: &[u8], at: usize, i: usize) -> usize {
    let longest = (input.len() - i - 2).min(MAX_MATCH);
    let mut len = 2;
    if longest > 16 {
        for _ in 0..16 {
            len += 1;
            if input[at + len] != input[i + len] {
                return len;
            }
        }
    }
    loop {
        len += 1;
        if len >= longest || input[at + len] != input[i + len] {
            return len;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(input: &[u8]) {
        let Some(c) = compress(input, usize::MAX) else {
            assert!(input.len() < 3, "no limit, no refusal");
            return;
        };
        assert_eq!(lzf::decompress(&c, input.len()).unwrap(), input);
        // A limit below the output refuses; one with room for liblzf's margins not.
        assert_eq!(compress(input, c.len() - 1), None);
        assert_eq!(compress(input, c.len() + 4).as_deref(), Some(&c[..]));
    }

    #[test]
    fn liblzf_s_output_for_known_strings() {
        // As redis-server 7.0.15's DUMP payloads hold them.
        assert_eq!(
            compress(&[b'a'; 100], 96).unwrap(),
            [1, b'a', b'a', 0xe0, 87, 0, 1, b'a', b'a']
        );
        let mut abc = b"abc".repeat(10);
        abc.push(b'!');
        assert_eq!(
            compress(&abc, abc.len() - 4).unwrap(),
            [3, b'a', b'b', b'c', b'a', 0xe0, 16, 2, 1, b'c', b'!']
        );
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
