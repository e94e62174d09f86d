//! Request parser: multibulk (`*N\r\n$L\r\n...`) and inline (`SET a b\n`) forms.
//!
//! Mirrors `processMultibulkBuffer` / `processInlineBuffer` in Redis 7.0 so the same
//! bytes produce the same error text. The parser is resumable by re-parsing: it never
//! consumes a partial request, so the caller keeps unread bytes and calls again after
//! the next socket read. Hand-written rather than a crate because it is the hottest
//! function in the server and must match Redis's error texts byte for byte.

use bytes::{Bytes, BytesMut};

/// Largest inline request or multibulk/bulk header line Redis accepts (PROTO_INLINE_MAX_SIZE).
pub const INLINE_MAX: usize = 64 * 1024;

/// Protocol limits, as configured (`proto-max-bulk-len`) and per-connection state.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_bulk_len: usize,
    /// True while the connection still has to AUTH: Redis then caps request sizes hard.
    pub unauthenticated: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: 512 * 1024 * 1024,
            unauthenticated: false,
        }
    }
}

/// A malformed request. `Display` gives Redis's exact text (without the `ERR ` prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    TooBigInline,
    UnbalancedQuotes,
    TooBigMbulkCount,
    InvalidMultibulkLength,
    UnauthenticatedMultibulkLength,
    ExpectedDollar(u8),
    TooBigBulkCount,
    InvalidBulkLength,
    UnauthenticatedBulkLength,
}

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use ProtocolError::*;
        match self {
            TooBigInline => write!(f, "Protocol error: too big inline request"),
            UnbalancedQuotes => write!(f, "Protocol error: unbalanced quotes in request"),
            TooBigMbulkCount => write!(f, "Protocol error: too big mbulk count string"),
            InvalidMultibulkLength => write!(f, "Protocol error: invalid multibulk length"),
            UnauthenticatedMultibulkLength => {
                write!(f, "Protocol error: unauthenticated multibulk length")
            }
            ExpectedDollar(c) => write!(f, "Protocol error: expected '$', got '{}'", *c as char),
            TooBigBulkCount => write!(f, "Protocol error: too big bulk count string"),
            InvalidBulkLength => write!(f, "Protocol error: invalid bulk length"),
            UnauthenticatedBulkLength => write!(f, "Protocol error: unauthenticated bulk length"),
        }
    }
}

/// What one parse attempt found at the front of the buffer.
#[derive(Debug, PartialEq)]
pub enum ParseOutcome {
    /// A whole request; its bytes have been split off the buffer. May be empty
    /// (`*0\r\n`, a blank inline line): the caller skips it, as Redis does.
    Request(Vec<Bytes>),
    /// Not enough bytes yet; nothing consumed.
    Incomplete,
    /// Malformed; Redis replies with the error and closes the connection.
    Error(ProtocolError),
}

/// Parse one request from the front of `buf`, consuming it only when complete.
pub fn parse_request(buf: &mut BytesMut, limits: Limits) -> ParseOutcome {
    if buf.is_empty() {
        return ParseOutcome::Incomplete;
    }
    if buf[0] == b'*' {
        parse_multibulk(buf, limits)
    } else {
        parse_inline(buf)
    }
}

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    // Redis looks for '\r' and then requires the byte after it to be present.
    memchr(b'\r', &buf[from..]).map(|i| from + i)
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

/// C's optional sign at `s[i]`, as `strtod` / `strtoull` read it: the index after
/// it, and whether it was a minus.
pub fn c_sign(s: &[u8], i: usize) -> (usize, bool) {
    match s.get(i) {
        Some(b'-') => (i + 1, true),
        Some(b'+') => (i + 1, false),
        _ => (i, false),
    }
}

/// The first index at or after `i` that C's `isspace` does not skip.
pub fn c_skip_space(s: &[u8], i: usize) -> usize {
    i + s[i.min(s.len())..]
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c))
        .count()
}

/// Parse a decimal integer as Redis's `string2ll` does: optional '-', no '+', no
/// leading zeros (except "0"), no spaces, fits in i64.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (neg, digits) = if s[0] == b'-' {
        (true, &s[1..])
    } else {
        (false, s)
    };
    if digits.is_empty() || digits[0] == b'0' {
        return None;
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    if neg {
        if v > (i64::MAX as u64) + 1 {
            None
        } else {
            Some((v as i64).wrapping_neg())
        }
    } else if v > i64::MAX as u64 {
        None
    } else {
        Some(v as i64)
    }
}

/// Progress through a multibulk request that is not complete yet, so the next call
/// resumes where this one stopped instead of re-scanning the whole request: a request
/// with a million arguments arriving in small reads costs linear, not quadratic, time.
#[derive(Debug, Default)]
pub struct Resume {
    count: usize,
    pos: usize,
    spans: Vec<(usize, usize)>,
}

/// A resumable request parser for one connection.
#[derive(Debug, Default)]
pub struct RequestParser {
    resume: Option<Resume>,
}

impl RequestParser {
    /// Parse one request from the front of `buf`, consuming it only when complete.
    /// `buf` must not be modified between calls except by appending.
    pub fn parse(&mut self, buf: &mut BytesMut, limits: Limits) -> ParseOutcome {
        if buf.is_empty() {
            return ParseOutcome::Incomplete;
        }
        if buf[0] != b'*' {
            return parse_inline(buf);
        }
        let state = match self.resume.take() {
            Some(r) => r,
            None => match multibulk_header(buf, limits) {
                Ok(Some((count, pos))) => match parse_whole(buf, limits, count, pos) {
                    Some(outcome) => return outcome,
                    None => Resume {
                        count,
                        pos,
                        spans: Vec::with_capacity(count.min(1024)),
                    },
                },
                Ok(None) => return ParseOutcome::Incomplete,
                Err(e) => return e,
            },
        };
        let outcome = parse_bulks(buf, limits, state);
        match outcome {
            Err(r) => {
                self.resume = Some(r);
                ParseOutcome::Incomplete
            }
            Ok(o) => o,
        }
    }

    /// Of the incomplete request at the front of `buf` (after a call that returned
    /// `Incomplete`), the bytes Redis would already have taken off its query buffer:
    /// the `*N` line, every complete argument, and the `$len` line of the argument
    /// being read. Redis's CLIENT LIST `qbuf` counts only the rest.
    pub fn consumed_of_incomplete(&self, buf: &[u8]) -> usize {
        let Some(st) = &self.resume else { return 0 };
        let pos = st.pos;
        if pos >= buf.len() || buf[pos] != b'$' {
            return pos.min(buf.len());
        }
        match find_crlf(buf, pos) {
            Some(nl) if nl + 1 < buf.len() => nl + 2,
            _ => pos,
        }
    }
}

fn parse_multibulk(buf: &mut BytesMut, limits: Limits) -> ParseOutcome {
    RequestParser::default().parse(buf, limits)
}

/// Parse `*N\r\n`: the argument count and where the first argument starts. `Ok(None)`:
/// not complete yet. An empty request is consumed here.
fn multibulk_header(
    buf: &mut BytesMut,
    limits: Limits,
) -> Result<Option<(usize, usize)>, ParseOutcome> {
    let Some(nl) = find_crlf(buf, 1) else {
        if buf.len() > INLINE_MAX {
            return Err(ParseOutcome::Error(ProtocolError::TooBigMbulkCount));
        }
        return Ok(None);
    };
    if nl + 1 >= buf.len() {
        return Ok(None);
    }
    let count = match parse_i64(&buf[1..nl]) {
        Some(n) if n <= i32::MAX as i64 => n,
        _ => return Err(ParseOutcome::Error(ProtocolError::InvalidMultibulkLength)),
    };
    if count > 10 && limits.unauthenticated {
        return Err(ParseOutcome::Error(
            ProtocolError::UnauthenticatedMultibulkLength,
        ));
    }
    let pos = nl + 2;
    if count <= 0 {
        let _ = buf.split_to(pos);
        return Err(ParseOutcome::Request(Vec::new()));
    }
    Ok(Some((count as usize, pos)))
}

/// One bulk (`$L\r\n...\r\n`) looked at from `pos`.
enum Bulk {
    /// Its bytes are `start..start + len`; the next one starts at `next`.
    Whole {
        start: usize,
        len: usize,
        next: usize,
    },
    /// Not all of it is in the buffer yet.
    Partial,
    Malformed(ProtocolError),
}

fn bulk_at(buf: &[u8], limits: Limits, pos: usize) -> Bulk {
    if pos >= buf.len() {
        return Bulk::Partial;
    }
    if let Some(bulk) = short_bulk_at(buf, limits, pos) {
        return bulk;
    }
    let Some(nl) = find_crlf(buf, pos) else {
        if buf.len() - pos > INLINE_MAX {
            return Bulk::Malformed(ProtocolError::TooBigBulkCount);
        }
        return Bulk::Partial;
    };
    if nl + 1 >= buf.len() {
        return Bulk::Partial;
    }
    if buf[pos] != b'$' {
        return Bulk::Malformed(ProtocolError::ExpectedDollar(buf[pos]));
    }
    let len = match parse_i64(&buf[pos + 1..nl]) {
        Some(n) if n >= 0 && (n as u64) <= limits.max_bulk_len as u64 => n as usize,
        _ => return Bulk::Malformed(ProtocolError::InvalidBulkLength),
    };
    if limits.unauthenticated && len > 16384 {
        return Bulk::Malformed(ProtocolError::UnauthenticatedBulkLength);
    }
    let start = nl + 2;
    if buf.len() < start + len + 2 {
        return Bulk::Partial;
    }
    Bulk::Whole {
        start,
        len,
        next: start + len + 2,
    }
}

/// [`bulk_at`] for the common case, in one pass: `$`, a length of 1 to 9 digits with
/// no leading zero (or `0`), `\r\n`, and the whole argument in the buffer. `None`
/// for anything else, which the general path then reads (and refuses with Redis's
/// error where it must). A GET's two arguments took ~100 instructions each the
/// general way (look for `\r`, then parse what lies before it).
fn short_bulk_at(buf: &[u8], limits: Limits, pos: usize) -> Option<Bulk> {
    let head = buf.get(pos..(pos + 12).min(buf.len()))?;
    if head.first() != Some(&b'$') {
        return None;
    }
    let digits = head[1..].iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 9 || (digits > 1 && head[1] == b'0') {
        return None;
    }
    if head.get(1 + digits..3 + digits) != Some(b"\r\n") {
        return None;
    }
    let len = head[1..1 + digits]
        .iter()
        .fold(0usize, |n, &d| n * 10 + usize::from(d - b'0'));
    if len > limits.max_bulk_len || (limits.unauthenticated && len > 16384) {
        return None;
    }
    let start = pos + 3 + digits;
    let next = start + len + 2;
    Some(if buf.len() < next {
        Bulk::Partial
    } else {
        Bulk::Whole { start, len, next }
    })
}

/// Most arguments [`parse_whole`] takes (their places kept on the stack).
const WHOLE_ARGS: usize = 8;

/// The common case: a request of at most [`WHOLE_ARGS`] arguments that is all in the
/// buffer, split off without the resumable path's vector of places (an allocation and
/// a free per request). `None`: not such a request; the resumable path takes it.
fn parse_whole(
    buf: &mut BytesMut,
    limits: Limits,
    count: usize,
    mut pos: usize,
) -> Option<ParseOutcome> {
    if count > WHOLE_ARGS {
        return None;
    }
    let mut spans = [(0, 0); WHOLE_ARGS];
    for span in &mut spans[..count] {
        match bulk_at(buf, limits, pos) {
            Bulk::Whole { start, len, next } => {
                *span = (start, len);
                pos = next;
            }
            Bulk::Partial => return None,
            Bulk::Malformed(e) => return Some(ParseOutcome::Error(e)),
        }
    }
    Some(split_request(buf, pos, &spans[..count]))
}

/// Split the request that ends at `end` off `buf`: its arguments at `spans`.
fn split_request(buf: &mut BytesMut, end: usize, spans: &[(usize, usize)]) -> ParseOutcome {
    let frozen = buf.split_to(end).freeze();
    ParseOutcome::Request(spans.iter().map(|&(s, l)| frozen.slice(s..s + l)).collect())
}

/// Locate the remaining bulks; `Err(state)` when more bytes are needed.
fn parse_bulks(buf: &mut BytesMut, limits: Limits, mut st: Resume) -> Result<ParseOutcome, Resume> {
    while st.spans.len() < st.count {
        match bulk_at(buf, limits, st.pos) {
            Bulk::Whole { start, len, next } => {
                st.spans.push((start, len));
                st.pos = next;
            }
            Bulk::Partial => return Err(st),
            Bulk::Malformed(e) => return Ok(ParseOutcome::Error(e)),
        }
    }
    Ok(split_request(buf, st.pos, &st.spans))
}

fn parse_inline(buf: &mut BytesMut) -> ParseOutcome {
    let Some(nl) = memchr(b'\n', buf) else {
        if buf.len() > INLINE_MAX {
            return ParseOutcome::Error(ProtocolError::TooBigInline);
        }
        return ParseOutcome::Incomplete;
    };
    let line = buf.split_to(nl + 1);
    let mut end = nl;
    if end > 0 && line[end - 1] == b'\r' {
        end -= 1;
    }
    match split_args(&line[..end]) {
        Some(args) => ParseOutcome::Request(args.into_iter().map(Bytes::from).collect()),
        None => ParseOutcome::Error(ProtocolError::UnbalancedQuotes),
    }
}

fn hex_val(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Split an inline line into arguments like Redis's `sdssplitargs`: whitespace
/// separated, with "double quotes" (backslash escapes, `\xHH`) and 'single quotes'.
/// A closing quote must be followed by whitespace or the end. `None` = unbalanced.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= n {
            return Some(out);
        }
        let mut cur = Vec::new();
        let (mut inq, mut insq) = (false, false);
        loop {
            if inq {
                if i >= n {
                    return None;
                }
                if line[i] == b'\\'
                    && i + 3 < n
                    && line[i + 1] == b'x'
                    && hex_val(line[i + 2]).is_some()
                    && hex_val(line[i + 3]).is_some()
                {
                    cur.push(hex_val(line[i + 2]).unwrap() * 16 + hex_val(line[i + 3]).unwrap());
                    i += 3;
                } else if line[i] == b'\\' && i + 1 < n {
                    i += 1;
                    cur.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        c => c,
                    });
                } else if line[i] == b'"' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(line[i]);
                }
            } else if insq {
                if i >= n {
                    return None;
                }
                if line[i] == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    i += 1;
                    cur.push(b'\'');
                } else if line[i] == b'\'' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(line[i]);
                }
            } else {
                if i >= n {
                    break;
                }
                match line[i] {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => {
                        i += 1;
                        break;
                    }
                    b'"' => inq = true,
                    b'\'' => insq = true,
                    c => cur.push(c),
                }
            }
            i += 1;
        }
        out.push(cur);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &[u8]) -> (ParseOutcome, usize) {
        let mut b = BytesMut::from(s);
        let r = parse_request(&mut b, Limits::default());
        (r, b.len())
    }

    /// What Redis 7.0 leaves in its query buffer of a request cut at each point
    /// (measured with CLIENT LIST qbuf): the argument being read, header aside.
    #[test]
    fn consumed_of_incomplete_follows_redis() {
        for (partial, left) in [
            (&b"*2"[..], 2),
            (b"*2\r\n", 0),
            (b"*2\r\n$3", 2),
            (b"*2\r\n$3\r\n", 0),
            (b"*2\r\n$3\r\nGET", 3),
            (b"*2\r\n$3\r\nGET\r\n$1", 2),
            (b"PING", 4),
        ] {
            let mut p = RequestParser::default();
            let mut b = BytesMut::from(partial);
            assert_eq!(p.parse(&mut b, Limits::default()), ParseOutcome::Incomplete);
            let consumed = p.consumed_of_incomplete(&b);
            assert_eq!(
                b.len() - consumed,
                left,
                "{:?}",
                String::from_utf8_lossy(partial)
            );
        }
    }

    fn req(v: &[&str]) -> ParseOutcome {
        ParseOutcome::Request(
            v.iter()
                .map(|s| Bytes::copy_from_slice(s.as_bytes()))
                .collect(),
        )
    }

    #[test]
    fn multibulk() {
        assert_eq!(
            parse(b"*2\r\n$3\r\nGET\r\n$1\r\na\r\n"),
            (req(&["GET", "a"]), 0)
        );
        assert_eq!(
            parse(b"*2\r\n$3\r\nGET\r\n$1\r\na\r\nPING"),
            (req(&["GET", "a"]), 4)
        );
        assert_eq!(
            parse(b"*2\r\n$3\r\nGET\r\n$1\r\na\r").0,
            ParseOutcome::Incomplete
        );
        assert_eq!(parse(b"*0\r\n"), (ParseOutcome::Request(vec![]), 0));
        assert_eq!(parse(b"*-1\r\n"), (ParseOutcome::Request(vec![]), 0));
    }

    #[test]
    fn multibulk_errors() {
        use ProtocolError::*;
        assert_eq!(
            parse(b"*x\r\n").0,
            ParseOutcome::Error(InvalidMultibulkLength)
        );
        assert_eq!(
            parse(b"*1\r\n+a\r\n").0,
            ParseOutcome::Error(ExpectedDollar(b'+'))
        );
        assert_eq!(
            parse(b"*1\r\n$-1\r\n").0,
            ParseOutcome::Error(InvalidBulkLength)
        );
        assert_eq!(
            parse(b"*1\r\n$600000000\r\n").0,
            ParseOutcome::Error(InvalidBulkLength)
        );
        assert_eq!(
            parse(b"*3000000000\r\n").0,
            ParseOutcome::Error(InvalidMultibulkLength)
        );
        let big = vec![b'1'; INLINE_MAX + 2];
        let mut s = b"*".to_vec();
        s.extend_from_slice(&big);
        assert_eq!(parse(&s).0, ParseOutcome::Error(TooBigMbulkCount));
    }

    /// The one-pass header (`short_bulk_at`) and the general path agree where the
    /// one-pass reading gives up: leading zeros, a `\r` not followed by `\n` (Redis
    /// skips the byte after `\r` whatever it is), long lengths, partial headers.
    #[test]
    fn bulk_headers_read_in_one_pass_or_not_mean_the_same() {
        use ProtocolError::*;
        assert_eq!(
            parse(b"*1\r\n$01\r\nx\r\n").0,
            ParseOutcome::Error(InvalidBulkLength)
        );
        assert_eq!(parse(b"*1\r\n$0\r\n\r\n"), (req(&[""]), 0));
        assert_eq!(parse(b"*1\r\n$1\rXa\r\n"), (req(&["a"]), 0));
        assert_eq!(
            parse(b"*1\r\n$+1\r\na\r\n").0,
            ParseOutcome::Error(InvalidBulkLength)
        );
        let ten = b"*1\r\n$0000000001\r\na\r\n";
        assert_eq!(parse(ten).0, ParseOutcome::Error(InvalidBulkLength));
        let long = format!("*1\r\n$10\r\n{}\r\n", "a".repeat(10));
        assert_eq!(parse(long.as_bytes()), (req(&["aaaaaaaaaa"]), 0));
        for partial in [
            &b"*1\r\n$16\r"[..],
            b"*1\r\n$16\r\nabc",
            b"*1\r\n$3\r\nabc\r",
        ] {
            assert_eq!(parse(partial), (ParseOutcome::Incomplete, partial.len()));
        }
        let unauth = Limits {
            unauthenticated: true,
            ..Limits::default()
        };
        let mut b = BytesMut::from(&b"*1\r\n$20000\r\n"[..]);
        assert_eq!(
            parse_request(&mut b, unauth),
            ParseOutcome::Error(UnauthenticatedBulkLength)
        );
    }

    #[test]
    fn resumes_across_reads() {
        let whole = b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$5\r\nhello\r\n";
        let mut p = RequestParser::default();
        let mut b = BytesMut::new();
        for (i, &c) in whole.iter().enumerate() {
            b.extend_from_slice(&[c]);
            let r = p.parse(&mut b, Limits::default());
            if i + 1 < whole.len() {
                assert_eq!(r, ParseOutcome::Incomplete, "at byte {i}");
            } else {
                assert_eq!(r, req(&["SET", "a", "hello"]));
            }
        }
        assert!(b.is_empty());
    }

    #[test]
    fn inline() {
        assert_eq!(parse(b"PING\r\n"), (req(&["PING"]), 0));
        assert_eq!(parse(b"set a \"b c\"\n"), (req(&["set", "a", "b c"]), 0));
        assert_eq!(parse(b"set a 'x\\'y'\n"), (req(&["set", "a", "x'y"]), 0));
        assert_eq!(parse(b"echo \"\\x41\\n\"\n"), (req(&["echo", "A\n"]), 0));
        assert_eq!(parse(b"\r\n"), (ParseOutcome::Request(vec![]), 0));
        assert_eq!(parse(b"PING").0, ParseOutcome::Incomplete);
        assert_eq!(
            parse(b"set a \"b\n").0,
            ParseOutcome::Error(ProtocolError::UnbalancedQuotes)
        );
        assert_eq!(
            parse(b"set a \"b\"c\n").0,
            ParseOutcome::Error(ProtocolError::UnbalancedQuotes)
        );
    }

    #[test]
    fn integers() {
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        assert_eq!(parse_i64(b"01"), None);
        assert_eq!(parse_i64(b"+1"), None);
        assert_eq!(parse_i64(b"-0"), None);
        assert_eq!(parse_i64(b" 1"), None);
    }
}
