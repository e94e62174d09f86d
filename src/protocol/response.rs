//! Parsing replies that another server sent: the client side of RESP2, for the links
//! Sentinel mode keeps to the instances it watches.
//!
//! A reply becomes a [`Reply`] (status, error, integer, bulk, null, array), so the code
//! reading it uses the same type the server writes. The other side is not trusted: a
//! malformed reply or one nested deeper than [`MAX_DEPTH`] is an error, never a panic.

use super::parse::parse_i64;
use super::Reply;
use bytes::Bytes;

/// Arrays nested deeper than this are refused (no reply Sentinel reads nests past 2).
pub const MAX_DEPTH: usize = 16;

/// Parse one reply at the start of `buf`: `Ok(Some((reply, bytes used)))`, `Ok(None)`
/// when it is not complete yet, `Err` when the bytes are not RESP2.
pub fn parse_response(buf: &[u8]) -> Result<Option<(Reply, usize)>, String> {
    parse_at(buf, 0, 0)
}

fn parse_at(buf: &[u8], at: usize, depth: usize) -> Result<Option<(Reply, usize)>, String> {
    if depth > MAX_DEPTH {
        return Err("reply nested too deep".into());
    }
    let Some(end) = find_crlf(buf, at) else {
        return Ok(None);
    };
    if end == at {
        return Err("empty reply line".into());
    }
    let line = &buf[at + 1..end];
    let next = end + 2;
    let text = || String::from_utf8_lossy(line).into_owned();
    let number = || parse_i64(line).ok_or_else(|| format!("bad length '{}'", text()));
    Ok(match buf[at] {
        b'+' => Some((Reply::Status(text().into()), next)),
        b'-' => Some((Reply::Error(text().into()), next)),
        b':' => Some((Reply::Int(number()?), next)),
        b'$' => {
            let len = number()?;
            if len < 0 {
                return Ok(Some((Reply::Null, next)));
            }
            let len = len as usize;
            if buf.len() < next + len + 2 {
                return Ok(None);
            }
            if &buf[next + len..next + len + 2] != b"\r\n" {
                return Err("bulk string without its CRLF".into());
            }
            Some((
                Reply::Bulk(Bytes::copy_from_slice(&buf[next..next + len])),
                next + len + 2,
            ))
        }
        b'*' => {
            let len = number()?;
            if len < 0 {
                return Ok(Some((Reply::NullArray, next)));
            }
            let mut items = Vec::with_capacity((len as usize).min(1024));
            let mut pos = next;
            for _ in 0..len {
                match parse_at(buf, pos, depth + 1)? {
                    Some((item, after)) => {
                        items.push(item);
                        pos = after;
                    }
                    None => return Ok(None),
                }
            }
            Some((Reply::Array(items), pos))
        }
        other => return Err(format!("unexpected reply type byte {other:#x}")),
    })
}

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|p| from + p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_and_partial_input() {
        let cases: &[(&[u8], Reply)] = &[
            (b"+PONG\r\n", Reply::Status("PONG".into())),
            (b"-ERR no\r\n", Reply::Error("ERR no".into())),
            (b":42\r\n", Reply::Int(42)),
            (b"$3\r\nabc\r\n", Reply::Bulk(Bytes::from_static(b"abc"))),
            (b"$-1\r\n", Reply::Null),
            (b"*-1\r\n", Reply::NullArray),
            (
                b"*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n:1\r\n",
                Reply::Array(vec![
                    Reply::Bulk(Bytes::from_static(b"message")),
                    Reply::Bulk(Bytes::from_static(b"c")),
                    Reply::Int(1),
                ]),
            ),
        ];
        for (bytes, want) in cases {
            let (got, used) = parse_response(bytes).unwrap().unwrap();
            assert_eq!(&got, want);
            assert_eq!(used, bytes.len());
            for cut in 0..bytes.len() {
                assert_eq!(parse_response(&bytes[..cut]).unwrap(), None, "{cut}");
            }
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [&b"?x\r\n"[..], b"$abc\r\n", b"$1\r\nab\r\n", b"\r\n"] {
            assert!(parse_response(bad).is_err(), "{bad:?}");
        }
        let deep = "*1\r\n".repeat(MAX_DEPTH + 2) + ":1\r\n";
        assert!(parse_response(deep.as_bytes()).is_err());
    }
}
