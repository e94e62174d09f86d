//! AOF records: the RESP encoding of propagated commands, shared by the replication
//! stream (`replication::stream`). Which records a command propagates is the
//! command's own rule (`commands::propagate`).

use bytes::Bytes;

/// Append `argv` as a RESP array of bulk strings.
pub fn encode(out: &mut Vec<u8>, argv: &[&[u8]]) {
    out.push(b'*');
    out.extend_from_slice(argv.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    for a in argv {
        out.push(b'$');
        out.extend_from_slice(a.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// [`encode`] for owned arguments.
pub fn encode_owned(out: &mut Vec<u8>, argv: &[Bytes]) {
    let refs: Vec<&[u8]> = argv.iter().map(|a| &a[..]).collect();
    encode(out, &refs);
}

/// Append a SELECT to `out` unless the stream `selected` says is already in `db`
/// (the AOF and the replication stream each keep where they are).
pub fn select(selected: &mut Option<usize>, out: &mut Vec<u8>, db: usize) {
    if *selected != Some(db) {
        encode(out, &[b"SELECT", db.to_string().as_bytes()]);
        *selected = Some(db);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_resp_arrays() {
        let mut out = Vec::new();
        encode(&mut out, &[b"SET", b"k", b""]);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
    }
}
