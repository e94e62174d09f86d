//! The RDB format: Redis's snapshot file and the body of DUMP payloads.
//!
//! Owns: the byte format only (`encode` writes version 10 as Redis 7.0 does, `decode`
//! reads every version up to 12 and every encoding Redis 7.0 to 7.4 writes, `ziplist`
//! and `zipmap` read the encodings older Redis versions left in files, `dump` frames
//! one value as a DUMP payload), `crc64`, the checksum both carry, and `lzf`, the
//! compression of strings both use. The one idea to hold: a file is a sequence of
//! opcodes and typed records whose lengths come from the file itself, so the reader
//! trusts no length: it never allocates more than it has read and validates every
//! blob (listpack, intset, ziplist) before it becomes a value.

pub mod crc64;
pub mod decode;
pub mod dump;
pub mod encode;
pub mod lzf;
pub mod ziplist;

/// The oldest and newest RDB versions we read.
pub const MIN_READ_VERSION: u16 = 1;
pub const MAX_READ_VERSION: u16 = 12;

/// Opcodes (`RDB_OPCODE_*`).
pub mod opcode {
    pub const FUNCTION2: u8 = 245;
    pub const FUNCTION_PRE_GA: u8 = 246;
    pub const MODULE_AUX: u8 = 247;
    pub const IDLE: u8 = 248;
    pub const FREQ: u8 = 249;
    pub const AUX: u8 = 250;
    pub const RESIZEDB: u8 = 251;
    pub const EXPIRETIME_MS: u8 = 252;
    pub const EXPIRETIME: u8 = 253;
    pub const SELECTDB: u8 = 254;
    pub const EOF: u8 = 255;
}

/// Value types (`RDB_TYPE_*`).
pub mod rdb_type {
    pub const STRING: u8 = 0;
    pub const LIST: u8 = 1;
    pub const SET: u8 = 2;
    pub const ZSET: u8 = 3;
    pub const HASH: u8 = 4;
    pub const ZSET_2: u8 = 5;
    pub const MODULE_PRE_GA: u8 = 6;
    pub const MODULE_2: u8 = 7;
    pub const HASH_ZIPMAP: u8 = 9;
    pub const LIST_ZIPLIST: u8 = 10;
    pub const SET_INTSET: u8 = 11;
    pub const ZSET_ZIPLIST: u8 = 12;
    pub const HASH_ZIPLIST: u8 = 13;
    pub const LIST_QUICKLIST: u8 = 14;
    pub const STREAM_LISTPACKS: u8 = 15;
    pub const HASH_LISTPACK: u8 = 16;
    pub const ZSET_LISTPACK: u8 = 17;
    pub const LIST_QUICKLIST_2: u8 = 18;
    pub const STREAM_LISTPACKS_2: u8 = 19;
    pub const SET_LISTPACK: u8 = 20;
    pub const STREAM_LISTPACKS_3: u8 = 21;
    pub const HASH_METADATA_PRE_GA: u8 = 22;
    pub const HASH_LISTPACK_EX_PRE_GA: u8 = 23;
    pub const HASH_METADATA: u8 = 24;
    pub const HASH_LISTPACK_EX: u8 = 25;
}
