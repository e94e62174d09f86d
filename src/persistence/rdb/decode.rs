//! Reading RDB: a streaming reader over any `std::io::Read` that yields the file's
//! items (AUX fields, SELECTDB, RESIZEDB, keys with their value and metadata,
//! functions) and checks the CRC64 trailer at EOF.
//!
//! Reads every version from 1 to 12 and every encoding Redis 7.0 to 7.4 writes: strings
//! (raw, integer, LZF), lists (linked list, ziplist, quicklist of ziplists, quicklist 2
//! with plain and packed nodes), sets (table, intset, 7.2's listpack), hashes (table,
//! zipmap, ziplist, listpack), sorted sets (string and binary doubles, ziplist,
//! listpack). Modules, streams and 7.4's hashes with field TTLs stop the load with a
//! clear error naming the offset.
//!
//! The one idea to hold: everything in the file is untrusted. Lengths never size an
//! allocation before the bytes are read (strings grow as they are read, collections as
//! elements arrive), blobs are validated before they become values, and a value is
//! built with *our* encoding thresholds ([`EncodingLimits`]): a listpack hash from the
//! file that is over the limits is converted, as Redis's loader does. Values whose
//! encoding the file chose but ours would not (an over-long listpack) are converted,
//! never trusted.

use super::crc64::Crc64;
use super::ziplist::{ziplist_entries, zipmap_pairs};
use super::{opcode, rdb_type, MAX_READ_VERSION, MIN_READ_VERSION};
use crate::config::EncodingLimits;
use crate::storage::hash::{Hash, SetOutcome};
use crate::storage::intset::Intset;
use crate::storage::list::{End, List};
use crate::storage::listpack::{Listpack, LpEntry};
use crate::storage::quicklist::Quicklist;
use crate::storage::set::Set;
use crate::storage::skiplist::cmp_entries;
use crate::storage::stream::{Consumer, Group, Nack, Stream, StreamId};
use crate::storage::zset::{strtod, Limits, SkipListZSet, ZSet};
use crate::storage::{CompactBytes, Dict, StrValue, Value};
use bytes::Bytes;
use std::io::{BufReader, Read};

/// A load error: what went wrong and where (bytes from the start of the input).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RdbError {
    pub message: String,
    pub offset: u64,
}

impl std::fmt::Display for RdbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at offset {}", self.message, self.offset)
    }
}

impl std::error::Error for RdbError {}

/// One item of a file, in file order.
#[derive(Debug)]
pub enum Item {
    Aux {
        key: Bytes,
        value: Bytes,
    },
    SelectDb(usize),
    ResizeDb {
        keys: u64,
        expires: u64,
    },
    Entry {
        db: usize,
        key: Bytes,
        value: Value,
        /// Absolute deadline in unix ms.
        expire_ms: Option<u64>,
        /// Seconds idle (IDLE opcode), for LRU.
        idle: Option<u64>,
        /// LFU counter (FREQ opcode).
        freq: Option<u8>,
    },
    /// A FUNCTION2 record: a function library's code.
    Function(Bytes),
}

/// Why a value could not be read.
enum ValueError {
    /// The input is bad or unsupported.
    Bad(RdbError),
    /// A well-formed but empty collection: Redis skips such keys with a log line.
    Empty,
}

impl From<RdbError> for ValueError {
    fn from(e: RdbError) -> Self {
        ValueError::Bad(e)
    }
}

type VResult<T> = Result<T, ValueError>;

/// Bytes read so far, with the running checksum and offset.
struct Source<R: Read> {
    inner: BufReader<R>,
    crc: Crc64,
    offset: u64,
}

/// Biggest chunk one read of a long string reserves before its bytes arrive.
const READ_CHUNK: u64 = 1 << 16;

impl<R: Read> Source<R> {
    fn err(&self, message: impl Into<String>) -> RdbError {
        RdbError {
            message: message.into(),
            offset: self.offset,
        }
    }
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), RdbError> {
        match self.inner.read_exact(buf) {
            Ok(()) => {
                self.crc.update(buf);
                self.offset += buf.len() as u64;
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                Err(self.err("unexpected end of file (truncated)"))
            }
            Err(e) => Err(self.err(format!("read error: {}", crate::log::strerror(&e)))),
        }
    }
    fn u8(&mut self) -> Result<u8, RdbError> {
        let mut b = [0u8; 1];
        self.fill(&mut b)?;
        Ok(b[0])
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], RdbError> {
        let mut b = [0u8; N];
        self.fill(&mut b)?;
        Ok(b)
    }
    /// `n` bytes, grown as they arrive (a bogus length fails at the end of the input).
    fn bytes(&mut self, n: u64) -> Result<Vec<u8>, RdbError> {
        let mut v = Vec::with_capacity(n.min(READ_CHUNK) as usize);
        let mut left = n;
        while left > 0 {
            let chunk = left.min(READ_CHUNK) as usize;
            let start = v.len();
            v.resize(start + chunk, 0);
            self.fill(&mut v[start..])?;
            left -= chunk as u64;
        }
        Ok(v)
    }

    /// A length, or the special-encoding marker (`rdbLoadLenByRef`): (value, encoded).
    fn len_or_enc(&mut self) -> Result<(u64, bool), RdbError> {
        let first = self.u8()?;
        Ok(match first >> 6 {
            0 => ((first & 0x3f) as u64, false),
            1 => (((first as u64 & 0x3f) << 8) | self.u8()? as u64, false),
            2 => match first {
                0x80 => (u32::from_be_bytes(self.array()?) as u64, false),
                0x81 => (u64::from_be_bytes(self.array()?), false),
                _ => return Err(self.err(format!("unknown length encoding 0x{first:02x}"))),
            },
            _ => ((first & 0x3f) as u64, true),
        })
    }
    fn len(&mut self) -> Result<u64, RdbError> {
        match self.len_or_enc()? {
            (n, false) => Ok(n),
            _ => Err(self.err("encoded value where a length was expected")),
        }
    }
    /// A count of elements, each of which takes at least one byte of input.
    fn count(&mut self) -> Result<usize, RdbError> {
        let n = self.len()?;
        usize::try_from(n).map_err(|_| self.err(format!("length {n} too large")))
    }
    /// A string in any encoding (`rdbGenericLoadStringObject`); integers in decimal.
    fn string(&mut self) -> Result<Vec<u8>, RdbError> {
        let (n, encoded) = self.len_or_enc()?;
        if !encoded {
            return self.bytes(n);
        }
        let int = match n {
            0 => self.u8()? as i8 as i64,
            1 => i16::from_le_bytes(self.array()?) as i64,
            2 => i32::from_le_bytes(self.array()?) as i64,
            3 => return self.lzf(),
            _ => return Err(self.err(format!("unknown string encoding {n}"))),
        };
        Ok(itoa::Buffer::new().format(int).as_bytes().to_vec())
    }
    /// An LZF-compressed string: compressed length, plain length, data.
    fn lzf(&mut self) -> Result<Vec<u8>, RdbError> {
        let clen = self.len()?;
        let ulen = self.len()?;
        // LZF expands at most ~100x (a 3-byte back reference copies 264 bytes): a larger
        // claim is corrupt, and must not size an allocation.
        if clen == 0 || ulen == 0 || ulen > clen.saturating_mul(100).saturating_add(64) {
            return Err(self.err(format!("bad LZF lengths (compressed {clen}, plain {ulen})")));
        }
        let data = self.bytes(clen)?;
        match lzf::decompress(&data, ulen as usize) {
            Ok(v) if v.len() as u64 == ulen => Ok(v),
            _ => Err(self.err("invalid LZF compressed string")),
        }
    }
    /// A string-encoded double of old sorted sets (`rdbLoadDoubleValue`).
    fn text_double(&mut self) -> Result<f64, RdbError> {
        match self.u8()? {
            253 => Ok(f64::NAN),
            254 => Ok(f64::INFINITY),
            255 => Ok(f64::NEG_INFINITY),
            n => {
                let b = self.bytes(n as u64)?;
                let (v, used, _) = strtod(&b);
                if used == 0 {
                    return Err(self.err("invalid double value"));
                }
                Ok(v)
            }
        }
    }
    fn binary_double(&mut self) -> Result<f64, RdbError> {
        Ok(f64::from_le_bytes(self.array()?))
    }
}

/// A streaming reader of an RDB file (or of a DUMP payload's body).
pub struct Reader<R: Read> {
    src: Source<R>,
    limits: EncodingLimits,
    /// The file's RDB version (10 for DUMP bodies read with [`Reader::raw`]).
    pub version: u16,
    /// Current database (SELECTDB).
    pub db: usize,
    /// Keys skipped because their collection was empty (Redis logs and skips them).
    pub empty_keys_skipped: u64,
    done: bool,
}

impl<R: Read> Reader<R> {
    /// A reader over a whole file: checks the `REDIS` magic and the version (1..=12).
    pub fn new(r: R, limits: EncodingLimits) -> Result<Reader<R>, RdbError> {
        let mut rd = Reader::raw(r, limits);
        let mut head = [0u8; 9];
        rd.src.fill(&mut head).map_err(|_| {
            rd.src
                .err("not an RDB file (shorter than its 9-byte header)")
        })?;
        if &head[..5] != b"REDIS" {
            return Err(RdbError {
                message: "not an RDB file (wrong signature)".into(),
                offset: 0,
            });
        }
        let version = std::str::from_utf8(&head[5..])
            .ok()
            .filter(|s| s.bytes().all(|c| c.is_ascii_digit()))
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| RdbError {
                message: "not an RDB file (bad version field)".into(),
                offset: 5,
            })?;
        if !(MIN_READ_VERSION..=MAX_READ_VERSION).contains(&version) {
            return Err(RdbError {
                message: format!(
                    "can't handle RDB format version {version} (this server reads up to {MAX_READ_VERSION})"
                ),
                offset: 5,
            });
        }
        rd.version = version;
        Ok(rd)
    }

    /// A reader with no header: a DUMP payload's type and value.
    pub fn raw(r: R, limits: EncodingLimits) -> Reader<R> {
        Reader {
            src: Source {
                inner: BufReader::new(r),
                crc: Crc64::default(),
                offset: 0,
            },
            limits,
            version: super::encode::RDB_VERSION,
            db: 0,
            empty_keys_skipped: 0,
            done: false,
        }
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.src.offset
    }

    /// The next item, or `None` after EOF (whose checksum has then been verified).
    /// (Not an `Iterator`: each step can fail, and a failure ends the read.)
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Item>, RdbError> {
        if self.done {
            return Ok(None);
        }
        let mut expire_ms = None;
        let mut idle = None;
        let mut freq = None;
        loop {
            let at = self.src.offset;
            let op = self.src.u8()?;
            match op {
                opcode::EOF => {
                    self.verify_checksum()?;
                    self.done = true;
                    return Ok(None);
                }
                opcode::AUX => {
                    let key = self.src.string()?;
                    let value = self.src.string()?;
                    return Ok(Some(Item::Aux {
                        key: key.into(),
                        value: value.into(),
                    }));
                }
                opcode::SELECTDB => {
                    let db = self.src.len()?;
                    self.db = usize::try_from(db)
                        .map_err(|_| self.src.err(format!("database {db} out of range")))?;
                    return Ok(Some(Item::SelectDb(self.db)));
                }
                opcode::RESIZEDB => {
                    let keys = self.src.len()?;
                    let expires = self.src.len()?;
                    return Ok(Some(Item::ResizeDb { keys, expires }));
                }
                opcode::EXPIRETIME_MS => expire_ms = Some(u64::from_le_bytes(self.src.array()?)),
                opcode::EXPIRETIME => {
                    expire_ms = Some(u32::from_le_bytes(self.src.array()?) as u64 * 1000)
                }
                opcode::IDLE => idle = Some(self.src.len()?),
                opcode::FREQ => freq = Some(self.src.u8()?),
                opcode::FUNCTION2 => {
                    return Ok(Some(Item::Function(self.src.string()?.into())));
                }
                opcode::FUNCTION_PRE_GA => {
                    return Err(RdbError {
                        message: "pre-release function format (opcode 246) is not supported".into(),
                        offset: at,
                    })
                }
                opcode::MODULE_AUX => {
                    return Err(RdbError {
                        message: "module type/aux: modules are not supported".into(),
                        offset: at,
                    })
                }
                ty => {
                    let key = self.src.string()?;
                    match self.value_of(ty, &key) {
                        Ok(value) => {
                            return Ok(Some(Item::Entry {
                                db: self.db,
                                key: key.into(),
                                value,
                                expire_ms,
                                idle,
                                freq,
                            }))
                        }
                        Err(ValueError::Empty) => {
                            self.empty_keys_skipped += 1;
                            expire_ms = None;
                            idle = None;
                            freq = None;
                        }
                        Err(ValueError::Bad(mut e)) => {
                            if e.offset == u64::MAX {
                                e.offset = at;
                            }
                            return Err(e);
                        }
                    }
                }
            }
        }
    }

    /// One value of type `ty` (a DUMP payload's body); an empty collection is an error.
    pub fn read_object(&mut self, ty: u8) -> Result<Value, RdbError> {
        match self.value_of(ty, b"") {
            Ok(v) => Ok(v),
            Err(ValueError::Empty) => Err(self.src.err("empty collection")),
            Err(ValueError::Bad(mut e)) => {
                if e.offset == u64::MAX {
                    e.offset = 0;
                }
                Err(e)
            }
        }
    }

    /// Read one byte (a DUMP payload's type).
    pub fn read_type(&mut self) -> Result<u8, RdbError> {
        self.src.u8()
    }

    /// Read one string in any encoding (a FUNCTION DUMP payload's library code).
    pub fn read_string(&mut self) -> Result<Vec<u8>, RdbError> {
        self.src.string()
    }

    fn verify_checksum(&mut self) -> Result<(), RdbError> {
        if self.version < 5 {
            return Ok(());
        }
        let computed = self.src.crc.value();
        let at = self.src.offset;
        let stored = u64::from_le_bytes(self.src.array()?);
        if stored != 0 && stored != computed {
            return Err(RdbError {
                message: format!(
                    "RDB CRC error: wrong RDB checksum (file says {stored:016x}, contents give {computed:016x})"
                ),
                offset: at,
            });
        }
        Ok(())
    }

    /// A value of type `ty` (`rdbLoadObject`), built with our encoding limits.
    fn value_of(&mut self, ty: u8, key: &[u8]) -> VResult<Value> {
        let limits = self.limits;
        let src = &mut self.src;
        let key_name = || String::from_utf8_lossy(&key[..key.len().min(128)]).into_owned();
        let at_start = |message: String| {
            ValueError::Bad(RdbError {
                message,
                offset: u64::MAX,
            })
        };
        Ok(match ty {
            rdb_type::STRING => Value::Str(StrValue::from_set(&src.string()?)),
            rdb_type::LIST => {
                let n = src.count()?;
                let mut list = List::new(limits.list_max_listpack_size);
                for _ in 0..n {
                    list.push(&src.string()?, End::Tail);
                }
                non_empty(Value::List(Box::new(list)), n)?
            }
            rdb_type::LIST_ZIPLIST => {
                let blob = src.string()?;
                let items =
                    ziplist_entries(&blob).ok_or_else(|| src.err("invalid ziplist (list)"))?;
                let mut list = List::new(limits.list_max_listpack_size);
                for it in &items {
                    list.push(it, End::Tail);
                }
                non_empty(Value::List(Box::new(list)), items.len())?
            }
            rdb_type::LIST_QUICKLIST | rdb_type::LIST_QUICKLIST_2 => {
                let nodes = src.count()?;
                let mut ql = Quicklist::new(limits.list_max_listpack_size);
                for _ in 0..nodes {
                    let container = if ty == rdb_type::LIST_QUICKLIST_2 {
                        src.len()?
                    } else {
                        super::encode::CONTAINER_PACKED
                    };
                    let blob = src.string()?;
                    let lp = match container {
                        super::encode::CONTAINER_PLAIN => {
                            let mut lp = Listpack::new();
                            lp.push_back(&blob);
                            lp
                        }
                        super::encode::CONTAINER_PACKED if ty == rdb_type::LIST_QUICKLIST => {
                            let items = ziplist_entries(&blob)
                                .ok_or_else(|| src.err("invalid ziplist (quicklist node)"))?;
                            let mut lp = Listpack::new();
                            for it in &items {
                                lp.push_back(it);
                            }
                            lp
                        }
                        super::encode::CONTAINER_PACKED => Listpack::from_bytes(blob)
                            .ok_or_else(|| src.err("invalid listpack (quicklist node)"))?,
                        c => {
                            return Err(src.err(format!("unknown quicklist container {c}")).into())
                        }
                    };
                    ql.append_listpack(lp);
                }
                let n = ql.len();
                non_empty(Value::List(Box::new(List::from_quicklist(ql))), n)?
            }
            rdb_type::SET => {
                let n = src.count()?;
                let max = limits.set_max_intset_entries;
                let mut set = if n > max {
                    Set::Table(Box::default())
                } else {
                    Set::default()
                };
                for _ in 0..n {
                    let m = src.string()?;
                    if !set.add(&m, max) {
                        return Err(src.err("duplicate set member").into());
                    }
                }
                non_empty(Value::Set(set), n)?
            }
            rdb_type::SET_INTSET => {
                let blob = src.string()?;
                let is = Intset::from_bytes(&blob).ok_or_else(|| src.err("invalid intset"))?;
                let mut set = Set::Intset(is);
                if set.len() > limits.set_max_intset_entries {
                    set.convert_to_table();
                }
                Value::Set(set)
            }
            rdb_type::SET_LISTPACK => {
                let blob = src.string()?;
                let lp =
                    Listpack::from_bytes(blob).ok_or_else(|| src.err("invalid listpack (set)"))?;
                let mut members = lp.iter().map(|e| e.to_vec());
                let Some(first) = members.next() else {
                    return Err(ValueError::Empty);
                };
                let mut set = Set::for_member(&first);
                set.add(&first, limits.set_max_intset_entries);
                for m in members {
                    if !set.add(&m, limits.set_max_intset_entries) {
                        return Err(src.err("duplicate set member").into());
                    }
                }
                Value::Set(set)
            }
            rdb_type::HASH => {
                let n = src.count()?;
                let mut h = if n > limits.hash_max_listpack_entries {
                    Hash::Table(Box::default())
                } else {
                    Hash::new()
                };
                for _ in 0..n {
                    let f = src.string()?;
                    let v = src.string()?;
                    if h.set(&f, &v, &limits) == SetOutcome::Updated {
                        return Err(src.err("duplicate hash field").into());
                    }
                }
                non_empty(Value::Hash(h), n)?
            }
            rdb_type::HASH_ZIPMAP | rdb_type::HASH_ZIPLIST => {
                let blob = src.string()?;
                let pairs = if ty == rdb_type::HASH_ZIPMAP {
                    zipmap_pairs(&blob).ok_or_else(|| src.err("invalid zipmap"))?
                } else {
                    let items =
                        ziplist_entries(&blob).ok_or_else(|| src.err("invalid ziplist (hash)"))?;
                    if !items.len().is_multiple_of(2) {
                        return Err(src.err("odd number of entries in a hash ziplist").into());
                    }
                    let mut it = items.into_iter();
                    std::iter::from_fn(|| Some((it.next()?, it.next()?))).collect()
                };
                let n = pairs.len();
                let mut h = Hash::new();
                for (f, v) in &pairs {
                    if h.set(f, v, &limits) == SetOutcome::Updated {
                        return Err(src.err("duplicate hash field").into());
                    }
                }
                non_empty(Value::Hash(h), n)?
            }
            rdb_type::HASH_LISTPACK => {
                let blob = src.string()?;
                let lp =
                    Listpack::from_bytes(blob).ok_or_else(|| src.err("invalid listpack (hash)"))?;
                if !lp.len().is_multiple_of(2) {
                    return Err(src.err("odd number of entries in a hash listpack").into());
                }
                if lp.is_empty() {
                    return Err(ValueError::Empty);
                }
                let mut fields = std::collections::HashSet::new();
                {
                    let mut it = lp.iter();
                    while let (Some(f), Some(_)) = (it.next(), it.next()) {
                        if !fields.insert(f.to_vec()) {
                            return Err(src.err("duplicate hash field").into());
                        }
                    }
                }
                // By entry count only, as Redis 7.0 (values longer than the limit stay,
                // as after a CONFIG SET).
                if lp.len() / 2 > limits.hash_max_listpack_entries {
                    let mut t: Dict<CompactBytes, CompactBytes> = Dict::new();
                    let mut it = lp.iter();
                    while let (Some(f), Some(v)) = (it.next(), it.next()) {
                        t.insert(
                            CompactBytes::new(&f.to_vec()),
                            CompactBytes::new(&v.to_vec()),
                        );
                    }
                    Value::Hash(Hash::Table(Box::new(t)))
                } else {
                    Value::Hash(Hash::Listpack(lp.into()))
                }
            }
            rdb_type::ZSET | rdb_type::ZSET_2 => {
                let n = src.count()?;
                let mut z = SkipListZSet::default();
                let (mut max_len, mut total) = (0usize, 0usize);
                for _ in 0..n {
                    let m = src.string()?;
                    let score = if ty == rdb_type::ZSET_2 {
                        src.binary_double()?
                    } else {
                        src.text_double()?
                    };
                    if score.is_nan() {
                        return Err(src.err("sorted set with a NaN score").into());
                    }
                    if z.contains(&m[..]) {
                        return Err(src.err("duplicate sorted set member").into());
                    }
                    max_len = max_len.max(m.len());
                    total = total.saturating_add(m.len());
                    z.insert_new(score, &m);
                }
                if n == 0 {
                    return Err(ValueError::Empty);
                }
                let mut zs = ZSet::SkipList(Box::new(z));
                zs.convert_to_listpack_if_needed(Limits::of(&limits), max_len, total);
                Value::ZSet(Box::new(zs))
            }
            rdb_type::ZSET_ZIPLIST | rdb_type::ZSET_LISTPACK => {
                let blob = src.string()?;
                let lp = if ty == rdb_type::ZSET_ZIPLIST {
                    let items = ziplist_entries(&blob)
                        .ok_or_else(|| src.err("invalid ziplist (sorted set)"))?;
                    let mut lp = Listpack::new();
                    for it in &items {
                        lp.push_back(it);
                    }
                    lp
                } else {
                    Listpack::from_bytes(blob)
                        .ok_or_else(|| src.err("invalid listpack (sorted set)"))?
                };
                zset_from_listpack(lp, Limits::of(&limits))
                    .map_err(|e| match e {
                        Some(msg) => ValueError::Bad(src.err(msg)),
                        None => ValueError::Empty,
                    })
                    .map(|z| Value::ZSet(Box::new(z)))?
            }
            rdb_type::MODULE_PRE_GA | rdb_type::MODULE_2 => {
                return Err(at_start(format!(
                    "module type (key '{}'): modules are not supported",
                    key_name()
                )))
            }
            rdb_type::STREAM_LISTPACKS
            | rdb_type::STREAM_LISTPACKS_2
            | rdb_type::STREAM_LISTPACKS_3 => Value::Stream(Box::new(read_stream(src, ty)?)),
            rdb_type::HASH_METADATA_PRE_GA
            | rdb_type::HASH_LISTPACK_EX_PRE_GA
            | rdb_type::HASH_METADATA
            | rdb_type::HASH_LISTPACK_EX => {
                return Err(at_start(format!(
                    "hashes with field expiration (RDB type {ty}, key '{}') are not supported",
                    key_name()
                )))
            }
            other => return Err(at_start(format!("unknown RDB type or opcode {other}"))),
        })
    }
}

/// A stream of RDB type 15, 19 or 21 (`rdbLoadObject`): nodes, counters, groups with
/// their PELs and consumers; checked whole before it is used ([`Stream::validate`]).
fn read_stream<R: Read>(src: &mut Source<R>, ty: u8) -> Result<Stream, RdbError> {
    let mut s = Stream::new();
    let nodes = src.count()?;
    for _ in 0..nodes {
        let key = src.string()?;
        let master = StreamId::from_be_bytes(&key)
            .ok_or_else(|| src.err("stream node key entry is not the size of a stream ID"))?;
        let lp = Listpack::from_bytes(src.string()?)
            .ok_or_else(|| src.err("stream listpack integrity check failed"))?;
        if lp.is_empty() {
            return Err(src.err("empty listpack inside stream"));
        }
        if !s.load_node(master, lp) {
            return Err(src.err("stream listpack re-added with existing key"));
        }
    }
    s.set_loaded_length(src.len()?);
    s.last_id = StreamId::new(src.len()?, src.len()?);
    if ty == rdb_type::STREAM_LISTPACKS {
        s.entries_added = s.len();
    } else {
        s.first_id = StreamId::new(src.len()?, src.len()?);
        s.max_deleted_id = StreamId::new(src.len()?, src.len()?);
        s.entries_added = src.len()?;
    }
    if !s.is_empty() && s.node_count() == 0 {
        return Err(src.err("stream length inconsistent with its nodes"));
    }
    s.validate_nodes().map_err(|why| src.err(why))?;
    if ty == rdb_type::STREAM_LISTPACKS {
        s.first_id = s.edge_id(true, true).unwrap_or(StreamId::MIN);
    }
    let groups = src.count()?;
    for _ in 0..groups {
        let name = src.string()?.into_boxed_slice();
        let last_id = StreamId::new(src.len()?, src.len()?);
        let entries_read = if ty == rdb_type::STREAM_LISTPACKS {
            None
        } else {
            Some(src.len()? as i64)
        };
        let mut g = Group::new(last_id, entries_read.unwrap_or(0));
        let pel = src.count()?;
        for _ in 0..pel {
            let id = StreamId::from_be_bytes(&src.array::<16>()?).expect("16 bytes");
            let delivery_time = u64::from_le_bytes(src.array()?);
            let delivery_count = src.len()?;
            let nack = Nack {
                delivery_time,
                delivery_count,
                consumer: Box::default(),
            };
            if g.pel.insert(id, nack).is_some() {
                return Err(src.err("duplicated global PEL entry loading stream consumer group"));
            }
        }
        let consumers = src.count()?;
        for _ in 0..consumers {
            let cname = src.string()?.into_boxed_slice();
            let seen_time = u64::from_le_bytes(src.array()?);
            if ty == rdb_type::STREAM_LISTPACKS_3 {
                // 7.4's active-time: 7.0 has no such field.
                let _active_time: [u8; 8] = src.array()?;
            }
            let mut c = Consumer {
                seen_time,
                pel: Default::default(),
            };
            let n = src.count()?;
            for _ in 0..n {
                let id = StreamId::from_be_bytes(&src.array::<16>()?).expect("16 bytes");
                match g.pel.get_mut(&id) {
                    Some(nack) if nack.consumer.is_empty() => nack.consumer = cname.clone(),
                    _ => return Err(src.err("consumer entry not found in group global PEL")),
                }
                c.pel.insert(id);
            }
            if g.consumers.insert(cname, c).is_some() {
                return Err(src.err("duplicate stream consumer detected"));
            }
        }
        let groups = s.groups.get_or_insert_with(Default::default);
        if groups.contains_key(&name) {
            return Err(src.err("duplicated consumer group name"));
        }
        groups.insert(name.clone(), g);
        if entries_read.is_none() {
            let read = s.estimate_distance(last_id);
            s.group_mut(&name).expect("inserted").entries_read = read;
        }
    }
    s.validate_groups().map_err(|why| src.err(why))?;
    Ok(s)
}

/// `Err(Empty)` for a collection with no elements.
fn non_empty(v: Value, n: usize) -> VResult<Value> {
    if n == 0 || v.elements() == 0 {
        Err(ValueError::Empty)
    } else {
        Ok(v)
    }
}

/// A sorted set from a listpack of member, score pairs: checked (pairs, no duplicate
/// members, scores that parse, not NaN, in order) and converted to a skiplist when over
/// the limits. `Err(None)` when empty, `Err(Some(why))` when malformed.
fn zset_from_listpack(lp: Listpack, limits: Limits) -> Result<ZSet, Option<&'static str>> {
    if lp.is_empty() {
        return Err(None);
    }
    if !lp.len().is_multiple_of(2) {
        return Err(Some("odd number of entries in a sorted set listpack"));
    }
    let mut seen = std::collections::HashSet::new();
    let mut prev: Option<(f64, Vec<u8>)> = None;
    let mut it = lp.iter();
    while let (Some(m), Some(s)) = (it.next(), it.next()) {
        let member = m.to_vec();
        let score = match s {
            LpEntry::Int(i) => i as f64,
            LpEntry::Str(t) => {
                let (v, used, _) = strtod(&t[..t.len().min(127)]);
                if used == 0 || used != t.len() {
                    return Err(Some("invalid score in a sorted set listpack"));
                }
                v
            }
        };
        if score.is_nan() {
            return Err(Some("sorted set with a NaN score"));
        }
        if let Some((ps, pm)) = &prev {
            if cmp_entries(*ps, pm, score, &member) != std::cmp::Ordering::Less {
                return Err(Some("sorted set listpack out of order"));
            }
        }
        if !seen.insert(member.clone()) {
            return Err(Some("duplicate sorted set member"));
        }
        prev = Some((score, member));
    }
    drop(it);
    // Redis 7.0 converts a listpack from the file by its entry count only (a member
    // longer than zset-max-listpack-value stays, as after a CONFIG SET).
    let mut z = ZSet::Listpack(lp);
    if z.len() > limits.entries {
        z.convert_to_skiplist();
    }
    Ok(z)
}

#[cfg(test)]
mod tests {
    use super::super::crc64::crc64;
    use super::super::encode::{self, Options};
    use super::*;
    use crate::storage::zset::AddFlags;

    fn limits() -> EncodingLimits {
        EncodingLimits::default()
    }

    fn list(items: &[Vec<u8>]) -> Value {
        let mut l = List::new(-2);
        for it in items {
            l.push(it, End::Tail);
        }
        Value::List(Box::new(l))
    }
    fn set(items: &[Vec<u8>]) -> Value {
        let mut s = Set::for_member(&items[0]);
        for it in items {
            s.add(it, 512);
        }
        Value::Set(s)
    }
    fn hash(pairs: &[(Vec<u8>, Vec<u8>)]) -> Value {
        let mut h = Hash::new();
        for (f, v) in pairs {
            h.set(f, v, &limits());
        }
        Value::Hash(h)
    }
    fn zset(pairs: &[(Vec<u8>, f64)]) -> Value {
        let mut z = ZSet::new_for(Limits::of(&limits()), pairs[0].0.len());
        for (m, s) in pairs {
            z.add(*s, m, AddFlags::default(), Limits::of(&limits()));
        }
        Value::ZSet(Box::new(z))
    }
    fn strs(n: usize, f: impl Fn(usize) -> String) -> Vec<Vec<u8>> {
        (0..n).map(|i| f(i).into_bytes()).collect()
    }

    /// One value of every type and encoding.
    /// A stream with two nodes, differing fields, a tombstone, and a group with a
    /// PEL and two consumers.
    fn stream_sample() -> Value {
        use crate::storage::stream::NodeLimits;
        let limits = NodeLimits {
            max_bytes: 4096,
            max_entries: 3,
        };
        let mut st = Stream::new();
        for i in 1..=5u64 {
            let v = i.to_string();
            let fields: [&str; 2] = if i == 4 { ["o", &v] } else { ["f", &v] };
            st.append(StreamId::new(i, 1), &fields, limits);
        }
        st.delete(StreamId::new(2, 1));
        st.max_deleted_id = StreamId::new(2, 1);
        st.create_group(b"grp", StreamId::new(3, 1), 3);
        let g = st.group_mut(b"grp").unwrap();
        g.consumer(b"alice", 1000, false);
        g.consumer(b"bob", 2000, false);
        g.assign(StreamId::new(1, 1), b"alice", 1500).delivery_count = 2;
        g.assign(StreamId::new(3, 1), b"bob", 2500).delivery_count = 1;
        Value::Stream(Box::new(st))
    }

    fn samples() -> Vec<(&'static str, Value)> {
        vec![
            ("int", Value::Str(StrValue::from_set(b"12345"))),
            (
                "bigint",
                Value::Str(StrValue::from_set(b"-9223372036854775808")),
            ),
            ("notint", Value::Str(StrValue::from_set(b"0123"))),
            ("emb", Value::Str(StrValue::from_set(b"hello world"))),
            ("raw", Value::Str(StrValue::from_set(&[b'a'; 300]))),
            ("rawbin", Value::Str(StrValue::raw((0..=255u8).collect()))),
            ("empty", Value::Str(StrValue::from_set(b""))),
            ("list-small", list(&strs(5, |i| format!("e{i}")))),
            ("stream", stream_sample()),
            (
                "list-ints",
                list(&strs(50, |i| format!("{}", i as i64 * 1_000_003 - 7))),
            ),
            (
                "list-big",
                list(&strs(3000, |i| {
                    format!("element-{i}-{}", "x".repeat(i % 40))
                })),
            ),
            ("list-huge-elem", list(&[vec![b'q'; 20000], b"1".to_vec()])),
            ("set-intset", set(&strs(100, |i| format!("{}", i * 3)))),
            (
                "set-intset64",
                set(&[b"1".to_vec(), b"9223372036854775807".to_vec()]),
            ),
            ("set-table", set(&strs(100, |i| format!("m{i}")))),
            ("set-table-ints", set(&strs(600, |i| format!("{i}")))),
            (
                "hash-lp",
                hash(
                    &(0..10)
                        .map(|i| (format!("f{i}").into_bytes(), format!("{i}").into_bytes()))
                        .collect::<Vec<_>>(),
                ),
            ),
            (
                "hash-table",
                hash(
                    &(0..1000)
                        .map(|i| (format!("f{i}").into_bytes(), format!("v{i}").into_bytes()))
                        .collect::<Vec<_>>(),
                ),
            ),
            ("hash-longval", hash(&[(b"f".to_vec(), vec![b'v'; 100])])),
            (
                "zset-lp",
                zset(&[
                    (b"a".to_vec(), 1.5),
                    (b"b".to_vec(), -2.0),
                    (b"c".to_vec(), 1e300),
                    (b"d".to_vec(), f64::INFINITY),
                ]),
            ),
            (
                "zset-skiplist",
                zset(
                    &(0..300)
                        .map(|i| (format!("m{i}").into_bytes(), (i % 17) as f64 / 3.0))
                        .collect::<Vec<_>>(),
                ),
            ),
        ]
    }

    fn file(entries: &[(&str, Value)], compress: bool) -> Vec<u8> {
        let mut out = Vec::new();
        encode::header(&mut out, false, 12345, &[("shardis", "1")], &[]);
        encode::select_db(&mut out, 0);
        encode::resize_db(&mut out, entries.len() as u64, 1);
        for (i, (k, v)) in entries.iter().enumerate() {
            let exp = (i == 2).then_some(4_000_000_000_000u64);
            encode::entry(&mut out, k.as_bytes(), v, exp, Options { compress });
        }
        encode::select_db(&mut out, 7);
        encode::entry(&mut out, b"in7", &entries[0].1, None, Options { compress });
        encode::eof(&mut out);
        let crc = crc64(0, &out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    fn read_all(bytes: &[u8]) -> Result<Vec<Item>, RdbError> {
        let mut r = Reader::new(bytes, limits())?;
        let mut items = Vec::new();
        while let Some(it) = r.next()? {
            items.push(it);
        }
        Ok(items)
    }

    #[test]
    fn round_trip_every_encoding() {
        let samples = samples();
        for compress in [false, true] {
            let bytes = file(&samples, compress);
            let items = read_all(&bytes).expect("reads back");
            let entries: Vec<_> = items
                .iter()
                .filter_map(|it| match it {
                    Item::Entry {
                        db,
                        key,
                        value,
                        expire_ms,
                        ..
                    } => Some((*db, key.clone(), value, *expire_ms)),
                    _ => None,
                })
                .collect();
            assert_eq!(entries.len(), samples.len() + 1);
            for (i, (name, v)) in samples.iter().enumerate() {
                let (db, key, value, exp) = &entries[i];
                assert_eq!((*db, &key[..]), (0, name.as_bytes()));
                assert_eq!(*value, v, "{name} (compress {compress})");
                assert_eq!(value.encoding(), v.encoding(), "{name}");
                assert_eq!(exp.is_some(), i == 2);
            }
            assert_eq!(entries[samples.len()].0, 7);
            let aux: Vec<_> = items
                .iter()
                .filter_map(|it| match it {
                    Item::Aux { key, .. } => Some(String::from_utf8_lossy(key).into_owned()),
                    _ => None,
                })
                .collect();
            assert_eq!(
                aux,
                [
                    "redis-ver",
                    "redis-bits",
                    "ctime",
                    "used-mem",
                    "shardis",
                    "aof-base"
                ]
            );
        }
    }

    #[test]
    fn dump_payloads_round_trip() {
        for (name, v) in samples() {
            let p = super::super::dump::payload(&v, Options { compress: true });
            assert_eq!(
                super::super::dump::restore(&p, &limits()).as_ref(),
                Ok(&v),
                "{name}"
            );
        }
    }

    #[test]
    fn lower_limits_convert_on_load() {
        let small = EncodingLimits {
            hash_max_listpack_entries: 2,
            zset_max_listpack_entries: 2,
            set_max_intset_entries: 2,
            ..EncodingLimits::default()
        };
        for (name, v) in samples() {
            let p = super::super::dump::payload(&v, Options { compress: false });
            let got = super::super::dump::restore(&p, &small).expect(name);
            match name {
                "hash-lp" => assert_eq!(got.encoding(), "hashtable"),
                "zset-lp" => assert_eq!(got.encoding(), "skiplist"),
                "set-intset" => assert_eq!(got.encoding(), "hashtable"),
                _ => {}
            }
            assert_eq!(got.elements(), v.elements());
        }
    }

    #[test]
    fn checksum_and_header_checked() {
        let bytes = file(&samples(), true);
        let mut bad = bytes.clone();
        let n = bad.len();
        bad[n - 1] ^= 1;
        let e = read_all(&bad).unwrap_err();
        assert!(e.message.contains("checksum"), "{e}");
        // A zero checksum means "not computed".
        let mut zero = bytes.clone();
        zero[n - 8..].fill(0);
        assert!(read_all(&zero).is_ok());
        let mut newer = bytes.clone();
        newer[5..9].copy_from_slice(b"0013");
        assert!(read_all(&newer).unwrap_err().message.contains("version 13"));
        assert!(read_all(b"GARBAGE0010").is_err());
    }

    #[test]
    fn corruption_never_panics() {
        let small: Vec<_> = samples()
            .into_iter()
            .filter(|(n, _)| !matches!(*n, "list-big" | "hash-table" | "list-huge-elem" | "raw"))
            .collect();
        let bytes = file(&small, true);
        for cut in 0..bytes.len() {
            assert!(read_all(&bytes[..cut]).is_err(), "truncated at {cut}");
        }
        let n = bytes.len();
        for i in 9..n - 8 {
            for x in [0x01u8, 0x40, 0xff] {
                let mut b = bytes.clone();
                b[i] ^= x;
                // With the checksum: refused.
                assert!(read_all(&b).is_err(), "flip at {i}");
                // Without it (zero trailer), the value checks alone: never a panic.
                b[n - 8..].fill(0);
                let _ = read_all(&b);
            }
        }
    }

    #[test]
    fn old_encodings_load() {
        use super::super::ziplist::build_ziplist;
        let mut body = Vec::new();
        // list as ziplist (type 10)
        body.push(rdb_type::LIST_ZIPLIST);
        encode::string(&mut body, b"l", false);
        encode::string(&mut body, &build_ziplist(&[b"a", b"1", b"bb"]), false);
        // quicklist of ziplists (type 14): two nodes
        body.push(rdb_type::LIST_QUICKLIST);
        encode::string(&mut body, b"q", false);
        encode::len(&mut body, 2);
        encode::string(&mut body, &build_ziplist(&[b"x", b"2"]), false);
        encode::string(&mut body, &build_ziplist(&[b"y"]), false);
        // hash as ziplist (type 13)
        body.push(rdb_type::HASH_ZIPLIST);
        encode::string(&mut body, b"h", false);
        encode::string(&mut body, &build_ziplist(&[b"f", b"v", b"n", b"7"]), false);
        // zset as ziplist (type 12)
        body.push(rdb_type::ZSET_ZIPLIST);
        encode::string(&mut body, b"z", false);
        encode::string(
            &mut body,
            &build_ziplist(&[b"a", b"1", b"b", b"2.5"]),
            false,
        );
        // zset with string doubles (type 3)
        body.push(rdb_type::ZSET);
        encode::string(&mut body, b"z3", false);
        encode::len(&mut body, 2);
        encode::string(&mut body, b"m", false);
        body.extend_from_slice(&[3, b'1', b'.', b'5']);
        encode::string(&mut body, b"n", false);
        body.push(254);
        // zipmap hash (type 9)
        body.push(rdb_type::HASH_ZIPMAP);
        encode::string(&mut body, b"zm", false);
        encode::string(&mut body, &[1, 1, b'a', 1, 0, b'1', 0xff], false);
        // linked list (type 1), expire in seconds
        body.push(opcode::EXPIRETIME);
        body.extend_from_slice(&4_000_000_000u32.to_le_bytes());
        body.push(rdb_type::LIST);
        encode::string(&mut body, b"ll", false);
        encode::len(&mut body, 2);
        encode::string(&mut body, b"p", false);
        encode::string(&mut body, b"q", false);
        // an empty set is skipped
        body.push(rdb_type::SET);
        encode::string(&mut body, b"empty", false);
        encode::len(&mut body, 0);
        for version in [b"0006", b"0009"] {
            let mut f = b"REDIS".to_vec();
            f.extend_from_slice(version);
            f.extend_from_slice(&body);
            f.push(opcode::EOF);
            let crc = crc64(0, &f);
            f.extend_from_slice(&crc.to_le_bytes());
            let items = read_all(&f).expect("old encodings load");
            let got: Vec<(String, Vec<Vec<u8>>, Option<u64>)> = items
                .iter()
                .filter_map(|it| match it {
                    Item::Entry {
                        key,
                        value,
                        expire_ms,
                        ..
                    } => {
                        let els: Vec<Vec<u8>> = match value {
                            Value::List(l) => l.iter().map(|e| e.to_vec()).collect(),
                            Value::Hash(h) => h
                                .iter()
                                .flat_map(|(f, v)| [f.to_vec(), v.to_vec()])
                                .collect(),
                            Value::ZSet(z) => z
                                .iter(false)
                                .flat_map(|(m, s)| [m.to_vec(), s.to_string().into_bytes()])
                                .collect(),
                            _ => vec![],
                        };
                        Some((String::from_utf8_lossy(key).into_owned(), els, *expire_ms))
                    }
                    _ => None,
                })
                .collect();
            let v = |xs: &[&str]| xs.iter().map(|s| s.as_bytes().to_vec()).collect::<Vec<_>>();
            assert_eq!(got[0], ("l".into(), v(&["a", "1", "bb"]), None));
            assert_eq!(got[1], ("q".into(), v(&["x", "2", "y"]), None));
            assert_eq!(got[2], ("h".into(), v(&["f", "v", "n", "7"]), None));
            assert_eq!(got[3], ("z".into(), v(&["a", "1", "b", "2.5"]), None));
            assert_eq!(got[4], ("z3".into(), v(&["m", "1.5", "n", "inf"]), None));
            assert_eq!(got[5], ("zm".into(), v(&["a", "1"]), None));
            assert_eq!(
                got[6],
                ("ll".into(), v(&["p", "q"]), Some(4_000_000_000_000))
            );
            assert_eq!(got.len(), 7);
        }
    }

    #[test]
    fn unsupported_types_name_the_offset() {
        let mut f = b"REDIS0010".to_vec();
        f.push(rdb_type::MODULE_2);
        encode::string(&mut f, b"mymod", false);
        let e = read_all(&f).unwrap_err();
        assert_eq!(
            e.to_string(),
            "module type (key 'mymod'): modules are not supported at offset 9"
        );
        let mut f = b"REDIS0010".to_vec();
        f.push(opcode::MODULE_AUX);
        assert!(read_all(&f)
            .unwrap_err()
            .message
            .contains("modules are not supported"));
        let mut f = b"REDIS0010".to_vec();
        f.push(42);
        encode::string(&mut f, b"k", false);
        assert!(read_all(&f)
            .unwrap_err()
            .message
            .contains("unknown RDB type or opcode 42"));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        #[test]
        fn random_collections_round_trip(
            items in proptest::collection::vec(
                proptest::prelude::prop_oneof![
                    proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80),
                    proptest::prelude::Strategy::prop_map(-100_000i64..100_000, |i| i.to_string().into_bytes()),
                ],
                1..300,
            ),
            compress in proptest::prelude::any::<bool>(),
        ) {
            let mut uniq = items.clone();
            uniq.sort();
            uniq.dedup();
            let values = vec![
                list(&items),
                set(&uniq),
                hash(&uniq.iter().map(|f| (f.clone(), f.repeat(2))).collect::<Vec<_>>()),
                zset(&uniq.iter().enumerate().map(|(i, m)| (m.clone(), (i % 7) as f64 - 2.5)).collect::<Vec<_>>()),
            ];
            for v in values {
                let p = super::super::dump::payload(&v, Options { compress });
                let got = super::super::dump::restore(&p, &limits()).expect("round trip");
                proptest::prop_assert_eq!(&got, &v);
            }
        }
    }
}
