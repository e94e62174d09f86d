//! Writing RDB: header, AUX fields, SELECTDB / RESIZEDB, one key's record, EOF.
//! OWNER: helper A. The signatures below are what the snapshot and AOF code call.

use crate::storage::Value;

/// The version Shardis writes (Redis 7.0's).
pub const RDB_VERSION: u16 = 10;

/// How values are written.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// `rdbcompression`: LZF-compress strings longer than 20 bytes when it saves space.
    pub compress: bool,
}

/// `REDIS0010` and the AUX fields (`redis-ver`, `redis-bits`, `ctime`, `used-mem`,
/// `aof-base`, plus the given ones).
pub fn header(out: &mut Vec<u8>, aof_base: bool, used_mem: u64, extra_aux: &[(&str, &str)]) {
    let _ = (out, aof_base, used_mem, extra_aux);
    todo!("helper A")
}

/// SELECTDB opcode.
pub fn select_db(out: &mut Vec<u8>, db: usize) {
    let _ = (out, db);
    todo!("helper A")
}

/// RESIZEDB opcode (sizes are hints for the loader).
pub fn resize_db(out: &mut Vec<u8>, keys: u64, expires: u64) {
    let _ = (out, keys, expires);
    todo!("helper A")
}

/// One key: [EXPIRETIME_MS at] [IDLE / FREQ when given] type key value.
pub fn entry(out: &mut Vec<u8>, key: &[u8], value: &Value, expire_ms: Option<u64>, opts: Options) {
    let _ = (out, key, value, expire_ms, opts);
    todo!("helper A")
}

/// EOF opcode (the caller appends the CRC64 of everything before it, little endian,
/// or 8 zero bytes with `rdbchecksum no`).
pub fn eof(out: &mut Vec<u8>) {
    let _ = out;
    todo!("helper A")
}
