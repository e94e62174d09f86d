//! Reply values and their RESP2 / RESP3 encodings.
//!
//! Commands return a [`Reply`]; the connection encodes it for its protocol version.
//! RESP3-only types degrade the way Redis degrades them for RESP2 clients: maps become
//! flat arrays, sets arrays, doubles bulk strings, booleans integers, `Null` becomes
//! `$-1` (or `*-1` for [`Reply::NullArray`]). `Reply` is `Send` so a shard can answer a
//! hop from another core.

use bytes::{BufMut, Bytes, BytesMut};
use std::borrow::Cow;

#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+OK`-style status line.
    Status(Cow<'static, str>),
    /// Error line; the text includes the code (`ERR ...`, `WRONGTYPE ...`).
    Error(Cow<'static, str>),
    /// Error line with arbitrary bytes (Redis echoes a client's bytes in some errors,
    /// such as an unknown command's name and arguments).
    ErrorBytes(Bytes),
    /// An error already counted in the error stats where it was made: a script
    /// returning the error a `redis.call` got (Redis 7.0's `ignore_error_stats_update`).
    CountedError(Cow<'static, str>),
    Int(i64),
    Bulk(Bytes),
    /// Null bulk in RESP2 (`$-1`), `_` in RESP3.
    Null,
    /// Null array in RESP2 (`*-1`), `_` in RESP3.
    NullArray,
    Array(Vec<Reply>),
    Map(Vec<(Reply, Reply)>),
    /// Pairs that Redis sends flat in RESP2 and as an array of 2-element arrays in
    /// RESP3 (ZRANGE WITHSCORES, HRANDFIELD WITHVALUES, ZPOPMIN with a count).
    Pairs(Vec<(Reply, Reply)>),
    /// Keyed results that Redis sends as an array of `[key, value]` arrays in RESP2
    /// and as a map in RESP3 (XREAD, XREADGROUP).
    Keyed(Vec<(Reply, Reply)>),
    /// Bytes already encoded, identical in RESP2 and RESP3 (an array of bulk strings):
    /// lets a command with a huge reply (SRANDMEMBER -100000000) build it as compactly
    /// as Redis's output buffer does, instead of one `Reply` per element.
    Raw(Bytes),
    Set(Vec<Reply>),
    Double(f64),
    /// A double already formatted (Redis's `addReplyHumanLongDouble`: GEOPOS): a bulk
    /// string in RESP2, a `,` double with exactly this text in RESP3.
    DoubleText(String),
    Bool(bool),
    BigNumber(String),
    /// Verbatim string with its 3-letter format (`txt`, `mkd`).
    Verbatim(&'static str, Bytes),
    Push(Vec<Reply>),
    /// Several replies in a row from one command (SUBSCRIBE a b answers one message
    /// per channel), each encoded in turn.
    Sequence(Vec<Reply>),
    /// Nothing at all is written (CLIENT REPLY OFF/SKIP, QUIT handled by caller).
    NoReply,
}

pub const OK: Reply = Reply::Status(Cow::Borrowed("OK"));

impl Reply {
    pub fn ok() -> Reply {
        OK
    }
    pub fn status(s: &'static str) -> Reply {
        Reply::Status(Cow::Borrowed(s))
    }
    /// An error with static text, e.g. `Reply::err(errors::SYNTAX)` (client-facing texts live in `commands::errors`).
    pub fn err(s: &'static str) -> Reply {
        Reply::Error(Cow::Borrowed(s))
    }
    pub fn error(s: String) -> Reply {
        Reply::Error(Cow::Owned(s))
    }
    pub fn bulk(b: &[u8]) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(b))
    }
    pub fn bulk_str(s: &str) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()))
    }
    pub fn is_error(&self) -> bool {
        matches!(
            self,
            Reply::Error(_) | Reply::ErrorBytes(_) | Reply::CountedError(_)
        )
    }
    /// The text of an error reply (lossy for non-UTF-8 bytes), for stats and logs.
    pub fn error_text(&self) -> Option<Cow<'_, str>> {
        match self {
            Reply::Error(e) | Reply::CountedError(e) => Some(Cow::Borrowed(e)),
            Reply::ErrorBytes(b) => Some(String::from_utf8_lossy(b)),
            _ => None,
        }
    }

    /// How many times the command that made this reply counts as failed (INFO
    /// commandstats), as Redis 7.0 counts: once for an error reply; for a reply
    /// holding errors (a script's table), once per error a `redis.call` got
    /// ([`Reply::CountedError`]) and once for any others.
    pub fn failures(&self) -> u64 {
        match self {
            Reply::Error(_) | Reply::ErrorBytes(_) | Reply::CountedError(_) => 1,
            _ => {
                let (mut counted, mut other) = (0, false);
                self.each_error(&mut |e| match e {
                    Reply::CountedError(_) => counted += 1,
                    _ => other = true,
                });
                counted + other as u64
            }
        }
    }

    /// Call `f` with every error reply in this one, itself included.
    fn each_error(&self, f: &mut impl FnMut(&Reply)) {
        match self {
            Reply::Error(_) | Reply::ErrorBytes(_) | Reply::CountedError(_) => f(self),
            Reply::Array(items)
            | Reply::Set(items)
            | Reply::Push(items)
            | Reply::Sequence(items) => items.iter().for_each(|r| r.each_error(f)),
            Reply::Map(pairs) | Reply::Pairs(pairs) | Reply::Keyed(pairs) => {
                for (k, v) in pairs {
                    k.each_error(f);
                    v.each_error(f);
                }
            }
            _ => {}
        }
    }

    /// Call `f` with the text of every error in this reply that the error stats have
    /// not counted yet: itself, or those inside it (EXEC's replies, a script's
    /// table), as Redis counts every error it adds to a reply.
    pub fn each_uncounted_error(&self, f: &mut impl FnMut(&str)) {
        self.each_error(&mut |e| match e {
            Reply::Error(text) => f(text),
            Reply::ErrorBytes(b) => f(&String::from_utf8_lossy(b)),
            _ => {}
        });
    }

    /// Append this reply's encoding for protocol `proto` (2 or 3) to `out`.
    /// The reply as a RESP2 client reads it: [`Reply::Pairs`] flattened, a
    /// [`Reply::Raw`] array of bulk strings unpacked, [`Reply::DoubleText`] as the bulk
    /// string it is in RESP2, all the way down (for tests and comparisons).
    pub fn resp2_view(self) -> Reply {
        match self {
            Reply::Array(items) => Reply::Array(items.into_iter().map(Reply::resp2_view).collect()),
            Reply::DoubleText(s) => Reply::Bulk(Bytes::from(s)),
            Reply::Pairs(p) => Reply::Array(p.into_iter().flat_map(|(k, v)| [k, v]).collect()),
            Reply::Keyed(p) => Reply::Array(
                p.into_iter()
                    .map(|(k, v)| Reply::Array(vec![k.resp2_view(), v.resp2_view()]))
                    .collect(),
            ),
            Reply::Raw(b) => {
                // `*n\r\n` then `$len\r\n<len bytes>\r\n` per element.
                let mut items = Vec::new();
                let line_end = |from: usize| b[from..].windows(2).position(|w| w == b"\r\n");
                let mut at = line_end(0).map_or(b.len(), |e| e + 2);
                while at < b.len() && b[at] == b'$' {
                    let Some(e) = line_end(at) else { break };
                    let len: usize = std::str::from_utf8(&b[at + 1..at + e])
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                    let start = at + e + 2;
                    let end = (start + len).min(b.len());
                    items.push(Reply::Bulk(b.slice(start..end)));
                    at = end + 2;
                }
                Reply::Array(items)
            }
            other => other,
        }
    }
    pub fn encode(&self, proto: u8, out: &mut BytesMut) {
        match self {
            Reply::Status(s) => line(out, b'+', s.as_bytes()),
            Reply::Error(s) | Reply::CountedError(s) => line(out, b'-', s.as_bytes()),
            Reply::ErrorBytes(b) => line(out, b'-', b),
            Reply::Int(i) => int_line(out, b':', *i),
            Reply::Bulk(b) => bulk(out, b),
            Reply::Null if proto >= 3 => out.put_slice(b"_\r\n"),
            Reply::Null => out.put_slice(b"$-1\r\n"),
            Reply::NullArray if proto >= 3 => out.put_slice(b"_\r\n"),
            Reply::NullArray => out.put_slice(b"*-1\r\n"),
            Reply::Array(items) => {
                int_line(out, b'*', items.len() as i64);
                items.iter().for_each(|r| r.encode(proto, out));
            }
            Reply::Set(items) => {
                int_line(
                    out,
                    if proto >= 3 { b'~' } else { b'*' },
                    items.len() as i64,
                );
                items.iter().for_each(|r| r.encode(proto, out));
            }
            Reply::Push(items) => {
                int_line(
                    out,
                    if proto >= 3 { b'>' } else { b'*' },
                    items.len() as i64,
                );
                items.iter().for_each(|r| r.encode(proto, out));
            }
            Reply::Pairs(pairs) => {
                if proto >= 3 {
                    int_line(out, b'*', pairs.len() as i64);
                    for (k, v) in pairs {
                        out.put_slice(b"*2\r\n");
                        k.encode(proto, out);
                        v.encode(proto, out);
                    }
                } else {
                    int_line(out, b'*', 2 * pairs.len() as i64);
                    for (k, v) in pairs {
                        k.encode(proto, out);
                        v.encode(proto, out);
                    }
                }
            }
            Reply::Keyed(pairs) => {
                if proto >= 3 {
                    int_line(out, b'%', pairs.len() as i64);
                } else {
                    int_line(out, b'*', pairs.len() as i64);
                }
                for (k, v) in pairs {
                    if proto < 3 {
                        out.put_slice(b"*2\r\n");
                    }
                    k.encode(proto, out);
                    v.encode(proto, out);
                }
            }
            Reply::Sequence(items) => items.iter().for_each(|r| r.encode(proto, out)),
            Reply::Raw(b) => out.put_slice(b),
            Reply::DoubleText(s) if proto >= 3 => line(out, b',', s.as_bytes()),
            Reply::DoubleText(s) => bulk(out, s.as_bytes()),
            Reply::Map(pairs) => {
                if proto >= 3 {
                    int_line(out, b'%', pairs.len() as i64);
                } else {
                    int_line(out, b'*', 2 * pairs.len() as i64);
                }
                for (k, v) in pairs {
                    k.encode(proto, out);
                    v.encode(proto, out);
                }
            }
            Reply::Double(d) => {
                let s = format_double_resp(*d);
                if proto >= 3 {
                    line(out, b',', s.as_bytes());
                } else {
                    bulk(out, s.as_bytes());
                }
            }
            Reply::Bool(b) if proto >= 3 => out.put_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
            Reply::Bool(b) => int_line(out, b':', *b as i64),
            Reply::BigNumber(s) if proto >= 3 => line(out, b'(', s.as_bytes()),
            Reply::BigNumber(s) => bulk(out, s.as_bytes()),
            Reply::Verbatim(fmt, b) if proto >= 3 => {
                int_line(out, b'=', b.len() as i64 + 4);
                out.put_slice(fmt.as_bytes());
                out.put_u8(b':');
                out.put_slice(b);
                out.put_slice(b"\r\n");
            }
            Reply::Verbatim(_, b) => bulk(out, b),
            Reply::NoReply => {}
        }
    }
}

fn line(out: &mut BytesMut, prefix: u8, s: &[u8]) {
    out.reserve(s.len() + 3);
    out.put_u8(prefix);
    // Redis replaces newlines in status/error lines so the protocol stays intact.
    if s.iter().any(|&c| c == b'\r' || c == b'\n') {
        out.extend(
            s.iter()
                .map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c }),
        );
    } else {
        out.put_slice(s);
    }
    out.put_slice(b"\r\n");
}

fn int_line(out: &mut BytesMut, prefix: u8, i: i64) {
    let mut buf = itoa::Buffer::new();
    let s = buf.format(i);
    out.reserve(s.len() + 3);
    out.put_u8(prefix);
    out.put_slice(s.as_bytes());
    out.put_slice(b"\r\n");
}

/// The `$<len>\r\n` line in front of a bulk string of `len` bytes.
pub fn bulk_header(out: &mut BytesMut, len: usize) {
    int_line(out, b'$', len as i64);
}

fn bulk(out: &mut BytesMut, b: &[u8]) {
    bulk_header(out, b.len());
    out.put_slice(b);
    out.put_slice(b"\r\n");
}

/// Builds a [`Reply::Raw`] array of bulk strings one element at a time. When the
/// length is announced up front ([`RawArray::with_len`]) the header goes first and
/// the buffer is the reply; otherwise (or if fewer elements came) the header is put in
/// front at the end.
#[derive(Default)]
pub struct RawArray {
    buf: BytesMut,
    n: usize,
    announced: Option<usize>,
}

impl RawArray {
    pub fn new() -> RawArray {
        RawArray::default()
    }
    /// An array expected to hold `n` elements (a hint: a different count still works).
    pub fn with_len(n: usize) -> RawArray {
        let mut buf = BytesMut::with_capacity(16 + 16 * n.min(1024));
        int_line(&mut buf, b'*', n as i64);
        RawArray {
            buf,
            n: 0,
            announced: Some(n),
        }
    }
    pub fn push(&mut self, b: &[u8]) {
        bulk(&mut self.buf, b);
        self.n += 1;
    }
    /// Append an integer as its decimal bulk string.
    pub fn push_int(&mut self, i: i64) {
        self.push(itoa::Buffer::new().format(i).as_bytes());
    }
    /// Bytes built so far (for callers that cap a reply's size).
    pub fn byte_len(&self) -> usize {
        self.buf.len()
    }
    pub fn finish(self) -> Reply {
        if self.announced == Some(self.n) {
            return Reply::Raw(self.buf.freeze());
        }
        let mut body = self.buf;
        if let Some(a) = self.announced {
            let header = itoa::Buffer::new().format(a).len() + 3;
            body = body.split_off(header);
        }
        let mut out = BytesMut::with_capacity(body.len() + 24);
        int_line(&mut out, b'*', self.n as i64);
        out.extend_from_slice(&body);
        Reply::Raw(out.freeze())
    }
}

/// Format a double as Redis's RESP3 `addReplyDouble` does (`%.17g`, `inf`, `-inf`, `nan`).
pub fn format_double_resp(d: f64) -> String {
    if d.is_nan() {
        "nan".into()
    } else if d.is_infinite() {
        if d > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        }
    } else {
        format_g17(d)
    }
}

/// C's `printf("%.17g", d)` for finite `d`.
pub fn format_g17(d: f64) -> String {
    format_g(d, 17)
}

/// C's `printf("%.{prec}g", d)` for finite `d`: shortest of %e / %f with `prec`
/// significant digits, trailing zeros removed.
pub fn format_g(d: f64, prec: usize) -> String {
    if d == 0.0 {
        return if d.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let p = prec.max(1);
    let e = format!("{:.*e}", p - 1, d);
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= p as i32 {
        let mant = trim_zeros(mant);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{}{:02}", mant, sign, exp.abs())
    } else {
        let decimals = (p as i32 - 1 - exp).max(0) as usize;
        trim_zeros(&format!("{:.*}", decimals, d)).to_string()
    }
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(r: &Reply, proto: u8) -> String {
        let mut b = BytesMut::new();
        r.encode(proto, &mut b);
        String::from_utf8_lossy(&b).into_owned()
    }

    #[test]
    fn resp2_and_3() {
        let m = Reply::Map(vec![(Reply::bulk_str("a"), Reply::Int(1))]);
        assert_eq!(enc(&m, 2), "*2\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(&m, 3), "%1\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(&Reply::Null, 2), "$-1\r\n");
        assert_eq!(enc(&Reply::NullArray, 2), "*-1\r\n");
        assert_eq!(enc(&Reply::Null, 3), "_\r\n");
        assert_eq!(enc(&Reply::Double(1.5), 3), ",1.5\r\n");
        let pairs = Reply::Pairs(vec![(Reply::bulk_str("a"), Reply::Double(1.0))]);
        assert_eq!(enc(&pairs, 2), "*2\r\n$1\r\na\r\n$1\r\n1\r\n");
        assert_eq!(enc(&pairs, 3), "*1\r\n*2\r\n$1\r\na\r\n,1\r\n");
        let mut raw = RawArray::new();
        raw.push(b"x");
        raw.push(b"");
        let raw = raw.finish();
        assert_eq!(enc(&raw, 2), "*2\r\n$1\r\nx\r\n$0\r\n\r\n");
        assert_eq!(enc(&raw, 3), enc(&raw, 2));
        // An announced length that turned out wrong is corrected.
        for announced in [0, 2, 12] {
            let mut r = RawArray::with_len(announced);
            r.push(b"x");
            r.push_int(-7);
            assert_eq!(enc(&r.finish(), 2), "*2\r\n$1\r\nx\r\n$2\r\n-7\r\n");
        }
        assert_eq!(enc(&Reply::Double(f64::INFINITY), 2), "$3\r\ninf\r\n");
        assert_eq!(
            enc(&Reply::Verbatim("txt", Bytes::from_static(b"hi")), 3),
            "=6\r\ntxt:hi\r\n"
        );
        assert_eq!(enc(&Reply::Bool(true), 3), "#t\r\n");
        assert_eq!(enc(&Reply::Error("ERR a\r\nb".into()), 2), "-ERR a  b\r\n");
    }

    #[test]
    fn g_format() {
        assert_eq!(format_g17(1.5), "1.5");
        assert_eq!(format_g17(0.1), "0.10000000000000001");
        assert_eq!(format_g17(1e20), "1e+20");
        assert_eq!(format_g17(123456.0), "123456");
        assert_eq!(format_g17(1e-5), "1.0000000000000001e-05");
        assert_eq!(format_g(3.0, 17), "3");
    }
}
