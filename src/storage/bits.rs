//! Bit-level operations on byte strings: the data structure side of Redis's `bitops.c`.
//!
//! Bit 0 is the most significant bit of byte 0, as in Redis, so a bitmap reads left to
//! right. The one idea to hold: everything here works on a borrowed slice and treats
//! bits beyond its end as zero; growing a string (and the size checks that go with
//! it) is the command's job, so no function here allocates because of an offset.

/// Number of set bits in `s`.
pub fn popcount(s: &[u8]) -> u64 {
    let mut chunks = s.chunks_exact(8);
    let mut n: u64 = chunks
        .by_ref()
        .map(|c| {
            u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]).count_ones() as u64
        })
        .sum();
    n += chunks
        .remainder()
        .iter()
        .map(|b| b.count_ones() as u64)
        .sum::<u64>();
    n
}

/// Set bits among bits `first..=last` of `s` (both within `s`).
pub fn count_range(s: &[u8], first: u64, last: u64) -> u64 {
    let (fb, lb) = ((first >> 3) as usize, (last >> 3) as usize);
    let mut n = popcount(&s[fb..=lb]);
    // Remove the bits of the edge bytes that lie outside the range.
    let head_mask = !(0xffu8 >> (first & 7));
    let tail_mask = 0xffu8.checked_shr((last & 7) as u32 + 1).unwrap_or(0);
    n -= (s[fb] & head_mask).count_ones() as u64;
    n -= (s[lb] & tail_mask).count_ones() as u64;
    n
}

/// Position of the first bit equal to `bit` among bits `first..=last` of `s` (both
/// within `s`), if any.
pub fn find_bit(s: &[u8], bit: bool, first: u64, last: u64) -> Option<u64> {
    let skip = if bit { 0x00u8 } else { 0xff };
    let mut pos = first;
    while pos <= last {
        let byte = s[(pos >> 3) as usize];
        if pos & 7 == 0 && pos + 7 <= last {
            // Whole bytes: skip the ones that cannot hold the bit, 8 at a time.
            let i = (pos >> 3) as usize;
            let end = ((last + 1) >> 3) as usize;
            let mut j = i;
            while j + 8 <= end && s[j..j + 8].iter().all(|&b| b == skip) {
                j += 8;
            }
            while j < end && s[j] == skip {
                j += 1;
            }
            if j > i {
                pos = (j as u64) << 3;
                continue;
            }
            let off = if bit {
                byte.leading_zeros()
            } else {
                byte.leading_ones()
            };
            return Some(pos + off as u64);
        }
        if ((byte >> (7 - (pos & 7))) & 1 == 1) == bit {
            return Some(pos);
        }
        pos += 1;
    }
    None
}

/// The bit at `offset`, zero beyond the end.
pub fn get_bit(s: &[u8], offset: u64) -> bool {
    let byte = (offset >> 3) as usize;
    match s.get(byte) {
        Some(b) => (b >> (7 - (offset & 7))) & 1 == 1,
        None => false,
    }
}

/// Set the bit at `offset` (within `s`); returns the previous bit.
pub fn set_bit(s: &mut [u8], offset: u64, on: bool) -> bool {
    let byte = (offset >> 3) as usize;
    let mask = 1u8 << (7 - (offset & 7));
    let old = s[byte] & mask != 0;
    if on {
        s[byte] |= mask;
    } else {
        s[byte] &= !mask;
    }
    old
}

/// `bits` (1..=64) bits at `offset` as an unsigned integer, zero beyond the end.
pub fn get_unsigned(s: &[u8], offset: u64, bits: u32) -> u64 {
    let mut v = 0u64;
    for i in 0..bits as u64 {
        v = (v << 1) | get_bit(s, offset + i) as u64;
    }
    v
}

/// `bits` (1..=64) bits at `offset` as a two's complement signed integer.
pub fn get_signed(s: &[u8], offset: u64, bits: u32) -> i64 {
    let v = get_unsigned(s, offset, bits);
    if bits < 64 && v & (1u64 << (bits - 1)) != 0 {
        (v | (u64::MAX << bits)) as i64
    } else {
        v as i64
    }
}

/// Store the low `bits` bits of `value` at `offset` (the range must lie within `s`).
pub fn set_field(s: &mut [u8], offset: u64, bits: u32, value: u64) {
    for i in 0..bits as u64 {
        let on = (value >> (bits as u64 - 1 - i)) & 1 == 1;
        set_bit(s, offset + i, on);
    }
}

/// What BITFIELD does when a value does not fit its type.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Overflow {
    Wrap,
    Sat,
    Fail,
}

/// Redis's `checkUnsignedBitfieldOverflow`: `Some(v)` is the value to store, `None`
/// means FAIL refused it. The second member says whether it overflowed.
pub fn unsigned_add(value: u64, incr: i64, bits: u32, mode: Overflow) -> (Option<u64>, bool) {
    let max = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let maxincr = max.wrapping_sub(value) as i64;
    let minincr = value.wrapping_neg() as i64;
    let wrapped = || {
        let r = value.wrapping_add(incr as u64);
        if bits == 64 {
            r
        } else {
            r & max
        }
    };
    if value > max || (incr > 0 && incr > maxincr) {
        match mode {
            Overflow::Wrap => (Some(wrapped()), true),
            Overflow::Sat => (Some(max), true),
            Overflow::Fail => (None, true),
        }
    } else if incr < 0 && incr < minincr {
        match mode {
            Overflow::Wrap => (Some(wrapped()), true),
            Overflow::Sat => (Some(0), true),
            Overflow::Fail => (None, true),
        }
    } else {
        (Some(value.wrapping_add(incr as u64)), false)
    }
}

/// Redis's `checkSignedBitfieldOverflow`, with the same result shape as [`unsigned_add`].
pub fn signed_add(value: i64, incr: i64, bits: u32, mode: Overflow) -> (Option<i64>, bool) {
    let max = if bits == 64 {
        i64::MAX
    } else {
        (1i64 << (bits - 1)) - 1
    };
    let min = -max - 1;
    let maxincr = (max as u64).wrapping_sub(value as u64) as i64;
    let minincr = min.wrapping_sub(value);
    let wrapped = || {
        let mut c = (value as u64).wrapping_add(incr as u64);
        if bits < 64 {
            let mask = u64::MAX << bits;
            if c & (1u64 << (bits - 1)) != 0 {
                c |= mask;
            } else {
                c &= !mask;
            }
        }
        c as i64
    };
    if value > max || (bits != 64 && incr > maxincr) || (value >= 0 && incr > 0 && incr > maxincr) {
        match mode {
            Overflow::Wrap => (Some(wrapped()), true),
            Overflow::Sat => (Some(max), true),
            Overflow::Fail => (None, true),
        }
    } else if value < min
        || (bits != 64 && incr < minincr)
        || (value < 0 && incr < 0 && incr < minincr)
    {
        match mode {
            Overflow::Wrap => (Some(wrapped()), true),
            Overflow::Sat => (Some(min), true),
            Overflow::Fail => (None, true),
        }
    } else {
        (Some(value.wrapping_add(incr)), false)
    }
}

/// BITOP's operations.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BitOp {
    And,
    Or,
    Xor,
    Not,
}

/// BITOP over `srcs` (missing keys are empty slices): the result is as long as the
/// longest source, shorter sources read as zero-padded.
pub fn bitop(op: BitOp, srcs: &[&[u8]]) -> Vec<u8> {
    let maxlen = srcs.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out: Vec<u8> = (0..maxlen)
        .map(|j| srcs.first().and_then(|s| s.get(j)).copied().unwrap_or(0))
        .collect();
    match op {
        BitOp::Not => out.iter_mut().for_each(|b| *b = !*b),
        _ => {
            for src in srcs.iter().skip(1) {
                for (j, o) in out.iter_mut().enumerate() {
                    let b = src.get(j).copied().unwrap_or(0);
                    match op {
                        BitOp::And => *o &= b,
                        BitOp::Or => *o |= b,
                        _ => *o ^= b,
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counting_and_finding() {
        let s = b"foobar";
        assert_eq!(popcount(s), 26);
        assert_eq!(count_range(s, 8, 15), 6);
        assert_eq!(count_range(s, 5, 30), 17);
        assert_eq!(count_range(&[0xff], 1, 6), 6);
        assert_eq!(count_range(&[0xff], 3, 3), 1);
        let z = [0xff, 0xf0, 0x00];
        assert_eq!(find_bit(&z, false, 0, 23), Some(12));
        assert_eq!(find_bit(&z, true, 12, 23), None);
        assert_eq!(find_bit(&[0u8; 40], true, 0, 319), None);
        let mut big = [0u8; 40];
        big[33] = 0x02;
        assert_eq!(find_bit(&big, true, 3, 319), Some(33 * 8 + 6));
        assert_eq!(find_bit(&big, true, 3, 33 * 8 + 5), None);
    }

    #[test]
    fn fields() {
        let mut s = vec![0u8; 4];
        set_field(&mut s, 3, 8, 0xab);
        assert_eq!(get_unsigned(&s, 3, 8), 0xab);
        assert_eq!(get_signed(&s, 3, 8), 0xab_u8 as i8 as i64);
        assert_eq!(get_unsigned(&s, 30, 10), get_unsigned(&s, 30, 2) << 8);
        set_field(&mut s, 0, 32, u64::MAX);
        assert_eq!(get_signed(&s, 0, 64), -1i64 << 32);
    }

    #[test]
    fn overflow_modes() {
        assert_eq!(unsigned_add(250, 10, 8, Overflow::Wrap), (Some(4), true));
        assert_eq!(unsigned_add(250, 10, 8, Overflow::Sat), (Some(255), true));
        assert_eq!(unsigned_add(250, 10, 8, Overflow::Fail), (None, true));
        assert_eq!(unsigned_add(5, -10, 8, Overflow::Sat), (Some(0), true));
        assert_eq!(unsigned_add(5, -10, 8, Overflow::Wrap), (Some(251), true));
        assert_eq!(
            unsigned_add(u64::MAX, 0, 8, Overflow::Wrap),
            (Some(255), true)
        );
        assert_eq!(signed_add(120, 10, 8, Overflow::Wrap), (Some(-126), true));
        assert_eq!(signed_add(120, 10, 8, Overflow::Sat), (Some(127), true));
        assert_eq!(signed_add(-120, -10, 8, Overflow::Sat), (Some(-128), true));
        assert_eq!(signed_add(-120, -10, 8, Overflow::Fail), (None, true));
        assert_eq!(
            signed_add(i64::MAX, 1, 64, Overflow::Wrap),
            (Some(i64::MIN), true)
        );
        assert_eq!(
            signed_add(i64::MAX, 1, 64, Overflow::Sat),
            (Some(i64::MAX), true)
        );
        assert_eq!(signed_add(1, 2, 64, Overflow::Fail), (Some(3), false));
    }

    #[test]
    fn ops() {
        assert_eq!(bitop(BitOp::And, &[b"ab", b"a"]), vec![b'a', 0]);
        assert_eq!(bitop(BitOp::Or, &[b"\x01", b"\x02\x04"]), vec![3, 4]);
        assert_eq!(bitop(BitOp::Not, &[b"\x0f"]), vec![0xf0]);
        assert_eq!(bitop(BitOp::Xor, &[b"", b""]), Vec::<u8>::new());
    }
}
