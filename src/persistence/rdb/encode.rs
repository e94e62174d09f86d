//! Writing RDB: header, AUX fields, SELECTDB / RESIZEDB, one key's record, EOF.
//!
//! Writes what Redis 7.0's `rdb.c` writes, byte for byte where the format leaves no
//! choice: lengths in the 6/14/32/64-bit encodings, strings as 8/16/32-bit integers
//! when they are the canonical decimal of one (`rdbTryIntegerEncoding`), LZF-compressed
//! (the `lzf` crate) when `rdbcompression` is on, longer than 20 bytes and the result
//! saves at least 4 bytes (`rdbSaveLzfStringObject`). The one idea to hold: our
//! listpacks and intsets are Redis's own bytes, so compact values are written as one
//! string blob; only hash tables, table sets and skiplists are written element by
//! element. (LZF output may differ from liblzf's bytes; any LZF decoder reads it.)
//! The signatures of `header`, `select_db`, `resize_db`, `entry` and `eof` are what
//! the snapshot and AOF code call.

use super::{opcode, rdb_type};
use crate::storage::hash::Hash;
use crate::storage::set::Set;
use crate::storage::stream::Stream;
use crate::storage::zset::ZSet;
use crate::storage::{StrValue, Value};

/// The version Shardis writes (Redis 7.0's).
pub const RDB_VERSION: u16 = 10;

/// The `redis-ver` AUX field: the Redis version whose files ours are.
pub const REDIS_VER: &str = crate::commands::connection::REDIS_VERSION;

/// Quicklist node containers (`QUICKLIST_NODE_CONTAINER_*`).
pub const CONTAINER_PLAIN: u64 = 1;
pub const CONTAINER_PACKED: u64 = 2;

/// How values are written.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// `rdbcompression`: LZF-compress strings longer than 20 bytes when it saves space.
    pub compress: bool,
}

/// `REDIS0010`, the AUX fields (`redis-ver`, `redis-bits`, `ctime`, `used-mem`,
/// `aof-base`, plus the given ones), then the function `libraries` (as Redis writes
/// them, before the first database).
pub fn header(
    out: &mut Vec<u8>,
    aof_base: bool,
    used_mem: u64,
    extra_aux: &[(&str, &str)],
    libraries: &[bytes::Bytes],
) {
    out.extend_from_slice(format!("REDIS{:04}", RDB_VERSION).as_bytes());
    let ctime = crate::clock::now_ms() / 1000;
    aux(out, "redis-ver", REDIS_VER.as_bytes());
    aux(out, "redis-bits", b"64");
    aux(out, "ctime", ctime.to_string().as_bytes());
    aux(out, "used-mem", used_mem.to_string().as_bytes());
    for (k, v) in extra_aux {
        aux(out, k, v.as_bytes());
    }
    aux(out, "aof-base", if aof_base { b"1" } else { b"0" });
    for code in libraries {
        function(out, code, false);
    }
}

/// One AUX field (opcode 250, key, value; both strings, integers encoded as such).
pub fn aux(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    out.push(opcode::AUX);
    string(out, key.as_bytes(), false);
    string(out, value, false);
}

/// A function library: the FUNCTION2 opcode and the library's code (RDB files,
/// FUNCTION DUMP payloads).
pub fn function(out: &mut Vec<u8>, code: &[u8], compress: bool) {
    out.push(opcode::FUNCTION2);
    string(out, code, compress);
}

/// SELECTDB opcode.
pub fn select_db(out: &mut Vec<u8>, db: usize) {
    out.push(opcode::SELECTDB);
    len(out, db as u64);
}

/// RESIZEDB opcode (sizes are hints for the loader).
pub fn resize_db(out: &mut Vec<u8>, keys: u64, expires: u64) {
    out.push(opcode::RESIZEDB);
    len(out, keys);
    len(out, expires);
}

/// One key: [EXPIRETIME_MS at] [IDLE / FREQ when given] type key value.
pub fn entry(out: &mut Vec<u8>, key: &[u8], value: &Value, expire_ms: Option<u64>, opts: Options) {
    if let Some(at) = expire_ms {
        out.push(opcode::EXPIRETIME_MS);
        out.extend_from_slice(&at.to_le_bytes());
    }
    out.push(value_type(value));
    string(out, key, opts.compress);
    value_body(out, value, opts);
}

/// EOF opcode (the caller appends the CRC64 of everything before it, little endian,
/// or 8 zero bytes with `rdbchecksum no`).
pub fn eof(out: &mut Vec<u8>) {
    out.push(opcode::EOF);
}

/// The RDB type byte a value is written with (`rdbSaveObjectType`).
pub fn value_type(value: &Value) -> u8 {
    match value {
        Value::Str(_) => rdb_type::STRING,
        Value::List(_) => rdb_type::LIST_QUICKLIST_2,
        Value::Set(s) => match s {
            Set::Intset(_) => rdb_type::SET_INTSET,
            Set::Table(_) => rdb_type::SET,
        },
        Value::Hash(h) => match *h {
            Hash::Listpack(_) => rdb_type::HASH_LISTPACK,
            Hash::Table(_) => rdb_type::HASH,
        },
        Value::ZSet(z) => match **z {
            ZSet::Listpack(_) => rdb_type::ZSET_LISTPACK,
            ZSet::SkipList(_) => rdb_type::ZSET_2,
        },
        Value::Stream(_) => rdb_type::STREAM_LISTPACKS_2,
    }
}

/// A value's body, after its type byte (`rdbSaveObject`).
pub fn value_body(out: &mut Vec<u8>, value: &Value, opts: Options) {
    let c = opts.compress;
    match value {
        Value::Str(StrValue::Int(i)) => int_string(out, *i),
        Value::Str(s) => string(out, &s.as_bytes(), c),
        Value::List(l) => {
            let ql = l.quicklist();
            len(out, ql.node_count() as u64);
            for lp in ql.listpacks() {
                len(out, CONTAINER_PACKED);
                string(out, lp.as_bytes(), c);
            }
        }
        Value::Set(s) => match s {
            Set::Intset(is) => string(out, is.as_bytes(), c),
            Set::Table(t) => {
                len(out, t.len() as u64);
                for (m, _) in t.iter() {
                    string(out, m, c);
                }
            }
        },
        Value::Hash(h) => match h {
            Hash::Listpack(lp) => string(out, lp.as_bytes(), c),
            Hash::Table(t) => {
                len(out, t.len() as u64);
                for (f, v) in t.iter() {
                    string(out, f, c);
                    string(out, v, c);
                }
            }
        },
        Value::ZSet(z) => match &**z {
            ZSet::Listpack(lp) => string(out, lp.as_bytes(), c),
            ZSet::SkipList(z) => {
                // From the highest score down, as Redis: the loader then always
                // inserts at the head of its skiplist.
                let list = z.list();
                len(out, list.len() as u64);
                for id in list.iter().rev() {
                    string(out, list.member(id), c);
                    out.extend_from_slice(&list.score(id).to_le_bytes());
                }
            }
        },
        Value::Stream(st) => stream(out, st, c),
    }
}

/// A stream as `rdbSaveObject` writes type 19: its nodes (master ID, listpack), the
/// counters, then each group with its PEL and consumers.
fn stream(out: &mut Vec<u8>, s: &Stream, c: bool) {
    len(out, s.node_count() as u64);
    for (master, lp) in s.nodes() {
        string(out, &master.to_be_bytes(), c);
        string(out, lp.as_bytes(), c);
    }
    len(out, s.len());
    for id in [s.last_id, s.first_id, s.max_deleted_id] {
        len(out, id.ms);
        len(out, id.seq);
    }
    len(out, s.entries_added);
    len(out, s.groups().count() as u64);
    for (name, g) in s.groups() {
        string(out, name, c);
        len(out, g.last_id.ms);
        len(out, g.last_id.seq);
        len(out, g.entries_read as u64);
        len(out, g.pel.len() as u64);
        for (id, nack) in &g.pel {
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&nack.delivery_time.to_le_bytes());
            len(out, nack.delivery_count);
        }
        len(out, g.consumers.len() as u64);
        for (name, consumer) in &g.consumers {
            string(out, name, c);
            out.extend_from_slice(&consumer.seen_time.to_le_bytes());
            len(out, consumer.pel.len() as u64);
            for id in &consumer.pel {
                out.extend_from_slice(&id.to_be_bytes());
            }
        }
    }
}

/// A length (`rdbSaveLen`): 6-bit, 14-bit, 32-bit or 64-bit big endian.
pub fn len(out: &mut Vec<u8>, n: u64) {
    if n < 1 << 6 {
        out.push(n as u8);
    } else if n < 1 << 14 {
        out.push(0x40 | (n >> 8) as u8);
        out.push(n as u8);
    } else if n <= u32::MAX as u64 {
        out.push(0x80);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// A string (`rdbSaveRawString`): integer-encoded when it is the canonical decimal of
/// a 32-bit value, else LZF when asked and worth it, else raw.
pub fn string(out: &mut Vec<u8>, s: &[u8], compress: bool) {
    if s.len() <= 11 {
        if let Some(i) = crate::storage::listpack::string_to_int(s) {
            if int_encoded(out, i) {
                return;
            }
        }
    }
    if compress && s.len() > 20 && lzf_string(out, s) {
        return;
    }
    len(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// An integer value (`rdbSaveLongLongAsStringObject`).
fn int_string(out: &mut Vec<u8>, i: i64) {
    if !int_encoded(out, i) {
        let digits = itoa::Buffer::new().format(i).as_bytes().to_vec();
        len(out, digits.len() as u64);
        out.extend_from_slice(&digits);
    }
}

/// `rdbEncodeInteger`: INT8 / INT16 / INT32 when `i` fits; false otherwise.
fn int_encoded(out: &mut Vec<u8>, i: i64) -> bool {
    if let Ok(v) = i8::try_from(i) {
        out.push(0xc0);
        out.push(v as u8);
    } else if let Ok(v) = i16::try_from(i) {
        out.push(0xc1);
        out.extend_from_slice(&v.to_le_bytes());
    } else if let Ok(v) = i32::try_from(i) {
        out.push(0xc2);
        out.extend_from_slice(&v.to_le_bytes());
    } else {
        return false;
    }
    true
}

/// `rdbSaveLzfStringObject`: false (nothing written) when LZF does not save 4 bytes.
fn lzf_string(out: &mut Vec<u8>, s: &[u8]) -> bool {
    let Some(compressed) = super::lzf::compress(s, s.len() - 4) else {
        return false;
    };
    out.push(0xc3);
    len(out, compressed.len() as u64);
    len(out, s.len() as u64);
    out.extend_from_slice(&compressed);
    true
}
