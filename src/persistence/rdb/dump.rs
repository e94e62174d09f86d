//! DUMP payloads: one value in RDB form, framed so a receiver can trust it.
//!
//! A payload is the value's RDB type byte and body, then the RDB version as 2 bytes
//! little endian, then the CRC64 of everything before it as 8 bytes little endian
//! (`createDumpPayload`). The one idea to hold: the payload crosses servers (MIGRATE,
//! redis-cli copies, Redis to Shardis and back), so it is checked before any byte of it
//! is interpreted (`verifyDumpPayload`), and its body is read with the same validating
//! decoder as files.

use super::crc64::crc64;
use super::decode::Reader;
use super::encode::{self, Options, RDB_VERSION};
use super::MAX_READ_VERSION;
use crate::commands::errors;
use crate::config::EncodingLimits;
use crate::storage::Value;

/// The DUMP payload of `value`.
pub fn payload(value: &Value, opts: Options) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    out.push(encode::value_type(value));
    encode::value_body(&mut out, value, opts);
    out.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc64(0, &out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Check a payload's trailer: RDB version we read (≤ 12) and CRC64.
pub fn verify(bytes: &[u8]) -> bool {
    if bytes.len() < 10 {
        return false;
    }
    let footer = bytes.len() - 10;
    let version = u16::from_le_bytes([bytes[footer], bytes[footer + 1]]);
    if version > MAX_READ_VERSION {
        return false;
    }
    let body = bytes.len() - 8;
    let mut stored = [0u8; 8];
    stored.copy_from_slice(&bytes[body..]);
    crc64(0, &bytes[..body]) == u64::from_le_bytes(stored)
}

/// The value in a payload (RESTORE), built with our encoding limits; Redis's error
/// text when the trailer is wrong or the contents do not parse.
pub fn restore(bytes: &[u8], limits: &EncodingLimits) -> Result<Value, &'static str> {
    if !verify(bytes) {
        return Err(errors::DUMP_PAYLOAD);
    }
    let body = &bytes[..bytes.len() - 10];
    let mut r = Reader::raw(body, *limits);
    let ty = r.read_type().map_err(|_| errors::BAD_DATA_FORMAT)?;
    r.read_object(ty).map_err(|_| errors::BAD_DATA_FORMAT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StrValue;

    #[test]
    fn string_payload_is_redis_bytes() {
        // redis-cli: SET k hello; DUMP k
        let v = Value::Str(StrValue::from_set(b"hello"));
        let p = payload(&v, Options { compress: true });
        assert_eq!(&p[..9], &b"\x00\x05hello\x0a\x00"[..]);
        assert_eq!(p.len(), 1 + 6 + 2 + 8);
        assert_eq!(restore(&p, &EncodingLimits::default()), Ok(v));
        let mut bad = p.clone();
        bad[3] ^= 1;
        assert_eq!(
            restore(&bad, &EncodingLimits::default()),
            Err(errors::DUMP_PAYLOAD)
        );
        assert_eq!(
            restore(b"short", &EncodingLimits::default()),
            Err(errors::DUMP_PAYLOAD)
        );
    }
}
