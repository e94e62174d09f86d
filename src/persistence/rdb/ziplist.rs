//! Readers for the blob encodings only older Redis versions write: the ziplist (lists,
//! hashes and sorted sets before 7.0; quicklist nodes before 7.0) and the zipmap
//! (hashes before 2.6). Loading converts them to our listpack-based values.
//!
//! The one idea to hold: the blobs are untrusted, so every read is bounds-checked and
//! the whole blob is walked (header size, entry sizes, `prevlen` of each entry, the end
//! marker, the entry count) before any element is handed out, as Redis's
//! `ziplistValidateIntegrity(deep)` and `zipmapValidateIntegrity` do.

/// The entries of a ziplist, as byte strings (integers in decimal); `None` if the blob
/// is not a well-formed ziplist.
pub fn ziplist_entries(b: &[u8]) -> Option<Vec<Vec<u8>>> {
    const HEADER: usize = 10;
    if b.len() < HEADER + 1 {
        return None;
    }
    let zlbytes = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let zltail = u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as usize;
    let zllen = u16::from_le_bytes([b[8], b[9]]);
    if zlbytes != b.len() || b[b.len() - 1] != 0xff || zltail >= b.len() {
        return None;
    }
    let end = b.len() - 1;
    let mut out = Vec::new();
    let mut p = HEADER;
    let mut prev_size = 0usize;
    let mut last = HEADER;
    while p < end {
        let start = p;
        // prevlen
        let prevlen = if *b.get(p)? < 254 {
            p += 1;
            b[start] as usize
        } else {
            let s = b.get(p + 1..p + 5)?;
            p += 5;
            u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize
        };
        if prevlen != prev_size {
            return None;
        }
        let enc = *b.get(p)?;
        p += 1;
        let value: Vec<u8> = match enc >> 6 {
            0 => take(b, &mut p, (enc & 0x3f) as usize, end)?.to_vec(),
            1 => {
                let n = ((enc as usize & 0x3f) << 8) | *b.get(p)? as usize;
                p += 1;
                take(b, &mut p, n, end)?.to_vec()
            }
            2 => {
                if enc != 0x80 {
                    return None;
                }
                let s = take(b, &mut p, 4, end)?;
                let n = u32::from_be_bytes([s[0], s[1], s[2], s[3]]) as usize;
                take(b, &mut p, n, end)?.to_vec()
            }
            _ => {
                let v: i64 = match enc {
                    0xc0 => {
                        let s = take(b, &mut p, 2, end)?;
                        i16::from_le_bytes([s[0], s[1]]) as i64
                    }
                    0xd0 => {
                        let s = take(b, &mut p, 4, end)?;
                        i32::from_le_bytes([s[0], s[1], s[2], s[3]]) as i64
                    }
                    0xe0 => {
                        let s = take(b, &mut p, 8, end)?;
                        i64::from_le_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]])
                    }
                    0xf0 => {
                        let s = take(b, &mut p, 3, end)?;
                        (i32::from_le_bytes([0, s[0], s[1], s[2]]) >> 8) as i64
                    }
                    0xfe => {
                        let s = take(b, &mut p, 1, end)?;
                        s[0] as i8 as i64
                    }
                    0xf1..=0xfd => (enc & 0x0f) as i64 - 1,
                    _ => return None,
                };
                itoa::Buffer::new().format(v).as_bytes().to_vec()
            }
        };
        if p > end {
            return None;
        }
        prev_size = p - start;
        last = start;
        out.push(value);
    }
    if (zllen != u16::MAX && zllen as usize != out.len()) || (!out.is_empty() && zltail != last) {
        return None;
    }
    Some(out)
}

/// `n` bytes at `*p`, within `..end`; advances `*p`.
fn take<'a>(b: &'a [u8], p: &mut usize, n: usize, end: usize) -> Option<&'a [u8]> {
    let stop = p.checked_add(n)?;
    if stop > end {
        return None;
    }
    let s = &b[*p..stop];
    *p = stop;
    Some(s)
}

/// The field / value pairs of a zipmap; `None` if the blob is not a well-formed zipmap.
pub fn zipmap_pairs(b: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    let end = b.len();
    let mut p = 1usize; // zmlen: a count hint, 254 = unknown
    if b.is_empty() {
        return None;
    }
    let zmlen = b[0];
    let mut out = Vec::new();
    loop {
        let first = *b.get(p)?;
        if first == 0xff {
            p += 1;
            break;
        }
        let field = zipmap_string(b, &mut p, end, false)?;
        let value = zipmap_string(b, &mut p, end, true)?;
        out.push((field, value));
    }
    if p != end || (zmlen < 254 && zmlen as usize != out.len()) {
        return None;
    }
    Some(out)
}

/// One zipmap string: its length (1 byte, or 254 and 4 bytes LE), for values the
/// `free` byte, the bytes, and `free` unused bytes.
fn zipmap_string(b: &[u8], p: &mut usize, end: usize, value: bool) -> Option<Vec<u8>> {
    let first = *b.get(*p)?;
    let n = match first {
        0..=253 => {
            *p += 1;
            first as usize
        }
        254 => {
            let s = b.get(*p + 1..*p + 5)?;
            *p += 5;
            u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize
        }
        _ => return None,
    };
    let free = if value {
        let f = *b.get(*p)? as usize;
        *p += 1;
        f
    } else {
        0
    };
    let s = take(b, p, n, end)?.to_vec();
    take(b, p, free, end)?;
    Some(s)
}

/// Test helper: a ziplist holding `items` (strings, and integers where canonical), as
/// Redis 6 writes them.
#[cfg(test)]
pub fn build_ziplist(items: &[&[u8]]) -> Vec<u8> {
    let mut body = Vec::new();
    let mut prev = 0usize;
    let mut last = 10usize;
    for it in items {
        let start = body.len();
        if prev < 254 {
            body.push(prev as u8);
        } else {
            body.push(254);
            body.extend_from_slice(&(prev as u32).to_le_bytes());
        }
        match crate::storage::listpack::string_to_int(it) {
            Some(v) if (0..=12).contains(&v) => body.push(0xf1 + v as u8),
            Some(v) if i8::try_from(v).is_ok() => {
                body.push(0xfe);
                body.push(v as i8 as u8);
            }
            Some(v) if i16::try_from(v).is_ok() => {
                body.push(0xc0);
                body.extend_from_slice(&(v as i16).to_le_bytes());
            }
            Some(v) if (-(1 << 23)..(1 << 23)).contains(&v) => {
                body.push(0xf0);
                body.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
            }
            Some(v) if i32::try_from(v).is_ok() => {
                body.push(0xd0);
                body.extend_from_slice(&(v as i32).to_le_bytes());
            }
            Some(v) => {
                body.push(0xe0);
                body.extend_from_slice(&v.to_le_bytes());
            }
            None if it.len() < 64 => {
                body.push(it.len() as u8);
                body.extend_from_slice(it);
            }
            None if it.len() < 16384 => {
                body.push(0x40 | (it.len() >> 8) as u8);
                body.push(it.len() as u8);
                body.extend_from_slice(it);
            }
            None => {
                body.push(0x80);
                body.extend_from_slice(&(it.len() as u32).to_be_bytes());
                body.extend_from_slice(it);
            }
        }
        last = 10 + start;
        prev = body.len() - start;
    }
    let total = 10 + body.len() + 1;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_le_bytes());
    out.extend_from_slice(&(if items.is_empty() { 10 } else { last } as u32).to_le_bytes());
    out.extend_from_slice(&(items.len() as u16).to_le_bytes());
    out.extend_from_slice(&body);
    out.push(0xff);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ziplist_round_trip() {
        let long = vec![b'x'; 300];
        let huge = vec![b'y'; 20000];
        let items: Vec<&[u8]> = vec![
            b"a",
            b"0",
            b"12",
            b"13",
            b"-1",
            b"127",
            b"-128",
            b"300",
            b"-30000",
            b"70000",
            b"-8388608",
            b"8388608",
            b"2147483647",
            b"-9223372036854775808",
            b"012",
            &long,
            b"",
            &huge,
            b"z",
        ];
        let zl = build_ziplist(&items);
        let got = ziplist_entries(&zl).expect("valid ziplist");
        let want: Vec<Vec<u8>> = items.iter().map(|s| s.to_vec()).collect();
        assert_eq!(got, want);
        assert_eq!(ziplist_entries(&build_ziplist(&[])), Some(vec![]));
    }

    #[test]
    fn ziplist_corruption_refused() {
        let zl = build_ziplist(&[b"hello", b"42", b"world"]);
        for cut in 0..zl.len() {
            assert_eq!(ziplist_entries(&zl[..cut]), None);
        }
        for i in 0..zl.len() {
            for x in [1u8, 0x80, 0xff] {
                let mut z = zl.clone();
                z[i] ^= x;
                // Never panics; most flips are caught.
                let _ = ziplist_entries(&z);
            }
        }
    }

    #[test]
    fn zipmap_pairs_read() {
        // zmlen 2, "a" -> "1" (free 0), "bb" -> "xyz" (free 2, two junk bytes), end.
        let zm = [
            2, 1, b'a', 1, 0, b'1', 2, b'b', b'b', 3, 2, b'x', b'y', b'z', 0, 0, 0xff,
        ];
        assert_eq!(
            zipmap_pairs(&zm),
            Some(vec![
                (b"a".to_vec(), b"1".to_vec()),
                (b"bb".to_vec(), b"xyz".to_vec())
            ])
        );
        for cut in 0..zm.len() {
            assert_eq!(zipmap_pairs(&zm[..cut]), None);
        }
    }
}
