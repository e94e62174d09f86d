//! Bitmap commands on strings (Redis's `bitops.c`): SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP, BITFIELD.
//!
//! A bitmap is a string whose bit 0 is the top bit of byte 0; the bit arithmetic lives
//! in [`crate::storage::bits`]. The one idea to hold: a write grows the string to the
//! highest bit it touches (zero-filled) and leaves it raw, and an offset is refused
//! before anything is allocated once its byte would reach `proto-max-bulk-len`, so a
//! user-given offset can never allocate more than Redis itself would (512MB).

use super::string::{as_str, as_str_mut};
use super::{args, errors, Command, Ctx, Exec, Touch};
use crate::notify;
use crate::protocol::parse::parse_i64;
use crate::protocol::Reply;
use crate::storage::bits::{self, BitOp, Overflow};
use crate::storage::{StrValue, Value};
use bytes::Bytes;
use std::borrow::Cow;

pub static COMMANDS: &[Command] = &[
    Command::new(
        "setbit",
        4,
        "write denyoom",
        "write bitmap slow",
        Exec::Shard(setbit),
    )
    .keys(1, 1, 1)
    .verbatim(),
    Command::new(
        "getbit",
        3,
        "readonly fast",
        "read bitmap fast",
        Exec::Shard(getbit),
    )
    .keys(1, 1, 1),
    Command::new(
        "bitcount",
        -2,
        "readonly",
        "read bitmap slow",
        Exec::Shard(bitcount),
    )
    .keys(1, 1, 1),
    Command::new(
        "bitpos",
        -3,
        "readonly",
        "read bitmap slow",
        Exec::Shard(bitpos),
    )
    .keys(1, 1, 1),
    Command::new(
        "bitop",
        -4,
        "write denyoom",
        "write bitmap slow",
        Exec::Shard(bitop),
    )
    .keys(2, -1, 1)
    .verbatim()
    .touch(Touch::Only(2)),
    Command::new(
        "bitfield",
        -2,
        "write denyoom",
        "write bitmap slow",
        Exec::Shard(bitfield),
    )
    .keys(1, 1, 1)
    .verbatim(),
    Command::new(
        "bitfield_ro",
        -2,
        "readonly fast",
        "read bitmap fast",
        Exec::Shard(bitfield_ro),
    )
    .keys(1, 1, 1),
];

/// Redis's `getBitOffsetFromArgument`: a bit offset, or `#N` meaning `N * bits` when
/// `bits` is given (BITFIELD). Refused once its byte reaches `proto-max-bulk-len`.
fn bit_offset(ctx: &Ctx, arg: &[u8], field_bits: Option<u32>) -> Result<u64, Reply> {
    let hash = field_bits.is_some() && arg.first() == Some(&b'#');
    let digits = if hash { &arg[1..] } else { arg };
    let mut off = parse_i64(digits).ok_or_else(|| Reply::err(errors::BIT_OFFSET_NOT_INTEGER))?;
    if let (true, Some(bits)) = (hash, field_bits) {
        off = off.wrapping_mul(bits as i64);
    }
    if off < 0 || (off >> 3) as u64 >= ctx.shard.config.proto_max_bulk_len as u64 {
        return Err(Reply::err(errors::BIT_OFFSET_NOT_INTEGER));
    }
    Ok(off as u64)
}

/// Redis's `lookupStringForBitCommand`: the string at `key` as raw bytes, created or
/// zero-extended so that bit `max_bit` exists, and whether it was created or grown
/// (which counts as a modification whatever the caller then writes).
fn string_for_bit_write<'c>(
    ctx: &'c mut Ctx,
    key: &[u8],
    max_bit: u64,
) -> Result<(&'c mut Vec<u8>, bool), Reply> {
    let len = (max_bit >> 3) as usize + 1;
    let exists = match ctx.lookup_write(key) {
        None => false,
        Some(e) => as_str(e).map(|_| true)?,
    };
    if !exists {
        // Creating the key is not a change by itself: as Redis's
        // lookupStringForBitCommand, the caller counts one if it writes (`grew`).
        let db = ctx.db();
        let dirty = db.dirty;
        db.set(key, Value::Str(StrValue::raw(vec![0; len])), false);
        db.dirty = dirty;
    }
    let e = ctx.lookup_write(key).ok_or_else(errors::wrongtype)?;
    let raw = as_str_mut(e)?.make_raw();
    let grew = !exists || raw.len() < len;
    if raw.len() < len {
        raw.resize(len, 0);
    }
    Ok((raw, grew))
}

/// The string at `key` for reading: `Ok(None)` if missing, WRONGTYPE if another type.
fn read_bytes<'c>(ctx: &'c mut Ctx, key: &[u8]) -> Result<Option<Cow<'c, [u8]>>, Reply> {
    match ctx.lookup_read(key) {
        None => Ok(None),
        Some(e) => as_str(e).map(|s| Some(s.as_bytes())),
    }
}

/// SETBIT key offset value: the bit's previous value.
fn setbit(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let offset = match bit_offset(ctx, &argv[2], None) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let on = match parse_i64(&argv[3]) {
        Some(0) => false,
        Some(1) => true,
        _ => return Reply::err(errors::BIT_NOT_INTEGER),
    };
    let (old, changed) = match string_for_bit_write(ctx, &argv[1], offset) {
        Ok((raw, grew)) => {
            let old = bits::set_bit(raw, offset, on);
            (old, grew || old != on)
        }
        Err(e) => return e,
    };
    // As Redis 7.0: a SETBIT that leaves the string as it was is not a modification
    // (WATCH is not invalidated).
    if changed {
        ctx.db().dirty += 1;
        ctx.notify(notify::STRING, "setbit", &argv[1]);
    }
    Reply::Int(old as i64)
}

/// GETBIT key offset
fn getbit(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let offset = match bit_offset(ctx, &argv[2], None) {
        Ok(o) => o,
        Err(e) => return e,
    };
    match read_bytes(ctx, &argv[1]) {
        Ok(Some(s)) => Reply::Int(bits::get_bit(&s, offset) as i64),
        Ok(None) => Reply::Int(0),
        Err(e) => e,
    }
}

/// Whether a BYTE / BIT unit argument says BIT.
fn unit_is_bit(arg: &[u8]) -> Result<bool, Reply> {
    if args::eq(arg, "bit") {
        Ok(true)
    } else if args::eq(arg, "byte") {
        Ok(false)
    } else {
        Err(errors::syntax())
    }
}

/// Clamp a `start..=end` range (negative from the end) over `total` units, as
/// BITCOUNT / BITPOS do; `None` when it is empty.
fn clamp_range(mut start: i64, mut end: i64, total: i64) -> Option<(u64, u64)> {
    if start < 0 {
        start = start.wrapping_add(total);
    }
    if end < 0 {
        end = end.wrapping_add(total);
    }
    start = start.max(0);
    end = end.max(0);
    if end >= total {
        end = total - 1;
    }
    (start <= end).then_some((start as u64, end as u64))
}

/// The inclusive bit range for a clamped unit range.
fn bit_span(range: (u64, u64), in_bits: bool) -> (u64, u64) {
    if in_bits {
        range
    } else {
        (range.0 * 8, range.1 * 8 + 7)
    }
}

/// BITCOUNT key [start end [BYTE | BIT]]
fn bitcount(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    // Redis 7.0 looks the key up before it reads the range.
    let s = match read_bytes(ctx, &argv[1]) {
        Ok(Some(s)) => s,
        Ok(None) => return Reply::Int(0),
        Err(e) => return e,
    };
    let len = s.len() as i64;
    let span = match argv.len() {
        2 => (len > 0).then(|| (0, len as u64 * 8 - 1)),
        4 | 5 => {
            let (start, end) = match (args::int(&argv[2]), args::int(&argv[3])) {
                (Ok(a), Ok(b)) => (a, b),
                (Err(e), _) | (_, Err(e)) => return e,
            };
            // Redis 7.0 answers 0 for an empty negative range before it reads BYTE/BIT.
            if start < 0 && end < 0 && start > end {
                return Reply::Int(0);
            }
            let in_bits = match argv.get(4).map(|u| unit_is_bit(u)) {
                Some(Err(e)) => return e,
                Some(Ok(b)) => b,
                None => false,
            };
            let total = if in_bits { len * 8 } else { len };
            clamp_range(start, end, total).map(|r| bit_span(r, in_bits))
        }
        _ => return errors::syntax(),
    };
    match span {
        Some((first, last)) => Reply::Int(bits::count_range(&s, first, last) as i64),
        None => Reply::Int(0),
    }
}

/// BITPOS key bit [start [end [BYTE | BIT]]]
fn bitpos(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let bit = match args::int(&argv[2]) {
        Ok(0) => false,
        Ok(1) => true,
        Ok(_) => return Reply::err(errors::BIT_NOT_0_OR_1),
        Err(e) => return e,
    };
    let s = match read_bytes(ctx, &argv[1]) {
        Ok(Some(s)) => s,
        // A missing key is an infinite run of zeros.
        Ok(None) => return Reply::Int(if bit { -1 } else { 0 }),
        Err(e) => return e,
    };
    let len = s.len() as i64;
    let mut end_given = false;
    let span = match argv.len() {
        3 => (len > 0).then(|| (0, len as u64 * 8 - 1)),
        4..=6 => {
            let start = match args::int(&argv[3]) {
                Ok(v) => v,
                Err(e) => return e,
            };
            let in_bits = match argv.get(5).map(|u| unit_is_bit(u)) {
                Some(Err(e)) => return e,
                Some(Ok(b)) => b,
                None => false,
            };
            let total = if in_bits { len * 8 } else { len };
            let end = match argv.get(4) {
                Some(e) => match args::int(e) {
                    Ok(v) => {
                        end_given = true;
                        v
                    }
                    Err(e) => return e,
                },
                None => total - 1,
            };
            clamp_range(start, end, total).map(|r| bit_span(r, in_bits))
        }
        _ => return errors::syntax(),
    };
    let Some((first, last)) = span else {
        return Reply::Int(-1);
    };
    match bits::find_bit(&s, bit, first, last) {
        Some(p) => Reply::Int(p as i64),
        // Looking for a clear bit with no explicit end: the string continues with
        // zeros, so the answer is the first bit past it.
        None if !bit && !end_given => Reply::Int(last as i64 + 1),
        None => Reply::Int(-1),
    }
}

/// BITOP AND | OR | XOR | NOT destkey key [key ...]: the length of the result.
fn bitop(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let op = match &argv[1][..] {
        o if args::eq(o, "and") => BitOp::And,
        o if args::eq(o, "or") => BitOp::Or,
        o if args::eq(o, "xor") => BitOp::Xor,
        o if args::eq(o, "not") => BitOp::Not,
        _ => return errors::syntax(),
    };
    if op == BitOp::Not && argv.len() != 4 {
        return Reply::err(errors::BITOP_NOT_ONE_SOURCE);
    }
    let mut sources: Vec<Vec<u8>> = Vec::with_capacity(argv.len() - 3);
    for key in &argv[3..] {
        match read_bytes(ctx, key) {
            Ok(Some(s)) => sources.push(s.into_owned()),
            Ok(None) => sources.push(Vec::new()),
            Err(e) => return e,
        }
    }
    let refs: Vec<&[u8]> = sources.iter().map(|s| &s[..]).collect();
    let result = bits::bitop(op, &refs);
    let len = result.len();
    let dest = &argv[2][..];
    if len > 0 {
        ctx.db().set(dest, Value::Str(StrValue::raw(result)), false);
        ctx.notify(notify::STRING, "set", dest);
    } else if ctx.db().delete(dest) {
        ctx.notify(notify::GENERIC, "del", dest);
    }
    Reply::Int(len as i64)
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum FieldOpKind {
    Get,
    Set,
    IncrBy,
}

/// One BITFIELD subcommand, parsed.
#[derive(Clone, Copy, Debug)]
struct FieldOp {
    kind: FieldOpKind,
    signed: bool,
    bits: u32,
    offset: u64,
    /// The SET value or INCRBY increment.
    arg: i64,
    overflow: Overflow,
}

/// `i1`..`i64` or `u1`..`u63`, lower case only (Redis refuses `I8`).
fn field_type(arg: &[u8]) -> Result<(bool, u32), Reply> {
    let signed = match arg.first() {
        Some(b'i') => true,
        Some(b'u') => false,
        _ => return Err(Reply::err(errors::BITFIELD_BAD_TYPE)),
    };
    match parse_i64(&arg[1..]) {
        Some(b) if b >= 1 && b <= if signed { 64 } else { 63 } => Ok((signed, b as u32)),
        _ => Err(Reply::err(errors::BITFIELD_BAD_TYPE)),
    }
}

/// Parse every BITFIELD subcommand, as Redis does before touching the key.
fn parse_field_ops(ctx: &Ctx, argv: &[Bytes]) -> Result<Vec<FieldOp>, Reply> {
    let mut ops = Vec::new();
    let mut overflow = Overflow::Wrap;
    let mut j = 2;
    while j < argv.len() {
        let rem = argv.len() - j - 1;
        let sub = &argv[j][..];
        let kind = if args::eq(sub, "get") && rem >= 2 {
            FieldOpKind::Get
        } else if args::eq(sub, "set") && rem >= 3 {
            FieldOpKind::Set
        } else if args::eq(sub, "incrby") && rem >= 3 {
            FieldOpKind::IncrBy
        } else if args::eq(sub, "overflow") && rem >= 1 {
            let mode = &argv[j + 1][..];
            overflow = if args::eq(mode, "wrap") {
                Overflow::Wrap
            } else if args::eq(mode, "sat") {
                Overflow::Sat
            } else if args::eq(mode, "fail") {
                Overflow::Fail
            } else {
                return Err(Reply::err(errors::BITFIELD_BAD_OVERFLOW));
            };
            j += 2;
            continue;
        } else {
            return Err(errors::syntax());
        };
        let (signed, bits) = field_type(&argv[j + 1])?;
        let offset = bit_offset(ctx, &argv[j + 2], Some(bits))?;
        let arg = if kind == FieldOpKind::Get {
            0
        } else {
            args::int(&argv[j + 3])?
        };
        ops.push(FieldOp {
            kind,
            signed,
            bits,
            offset,
            arg,
            overflow,
        });
        j += if kind == FieldOpKind::Get { 3 } else { 4 };
    }
    Ok(ops)
}

/// Run one SET / INCRBY on `raw` (already long enough): the reply (nil when
/// OVERFLOW FAIL refused the write) and whether the field's value changed.
fn field_write(raw: &mut [u8], op: &FieldOp) -> (Reply, bool) {
    let (offset, nbits) = (op.offset, op.bits);
    if op.signed {
        let old = bits::get_signed(raw, offset, nbits);
        let (new, _) = match op.kind {
            FieldOpKind::IncrBy => bits::signed_add(old, op.arg, nbits, op.overflow),
            _ => bits::signed_add(op.arg, 0, nbits, op.overflow),
        };
        let Some(new) = new else {
            return (Reply::Null, false);
        };
        bits::set_field(raw, offset, nbits, new as u64);
        let reply = Reply::Int(if op.kind == FieldOpKind::IncrBy {
            new
        } else {
            old
        });
        (reply, new != old)
    } else {
        let old = bits::get_unsigned(raw, offset, nbits);
        let (new, _) = match op.kind {
            FieldOpKind::IncrBy => bits::unsigned_add(old, op.arg, nbits, op.overflow),
            _ => bits::unsigned_add(op.arg as u64, 0, nbits, op.overflow),
        };
        let Some(new) = new else {
            return (Reply::Null, false);
        };
        bits::set_field(raw, offset, nbits, new);
        let reply = Reply::Int(if op.kind == FieldOpKind::IncrBy {
            new
        } else {
            old
        } as i64);
        (reply, new != old)
    }
}

fn field_read(s: &[u8], op: &FieldOp) -> Reply {
    if op.signed {
        Reply::Int(bits::get_signed(s, op.offset, op.bits))
    } else {
        Reply::Int(bits::get_unsigned(s, op.offset, op.bits) as i64)
    }
}

/// Redis's `bitfieldGeneric`.
fn bitfield_generic(ctx: &mut Ctx, argv: &[Bytes], read_only: bool) -> Reply {
    let ops = match parse_field_ops(ctx, argv) {
        Ok(ops) => ops,
        Err(e) => return e,
    };
    let highest_write = ops
        .iter()
        .filter(|o| o.kind != FieldOpKind::Get)
        .map(|o| o.offset + o.bits as u64 - 1)
        .max();
    let Some(highest) = highest_write else {
        // Only GETs: a missing key reads as zeros.
        let s = match read_bytes(ctx, &argv[1]) {
            Ok(s) => s.unwrap_or(Cow::Borrowed(&[])),
            Err(e) => return e,
        };
        return Reply::Array(ops.iter().map(|op| field_read(&s, op)).collect());
    };
    if read_only {
        return Reply::err(errors::BITFIELD_RO_GET_ONLY);
    }
    let (raw, grew) = match string_for_bit_write(ctx, &argv[1], highest) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let mut changes = 0;
    let replies = ops
        .iter()
        .map(|op| match op.kind {
            FieldOpKind::Get => field_read(raw, op),
            _ => {
                let (r, changed) = field_write(raw, op);
                // As Redis 7.0: each applied SET / INCRBY counts one change if it
                // changed its field or the command created or grew the string; one
                // refused by OVERFLOW FAIL (nil) counts none.
                changes += (r != Reply::Null && (grew || changed)) as u64;
                r
            }
        })
        .collect();
    // The dirty counter grows by the number of changes (Redis's `server.dirty +=
    // changes`); any change makes the key modified for WATCH.
    ctx.db().dirty += changes;
    if changes > 0 {
        ctx.notify(notify::STRING, "setbit", &argv[1]);
    }
    Reply::Array(replies)
}

/// BITFIELD key [GET type offset | [OVERFLOW WRAP|SAT|FAIL] SET type offset value |
/// [OVERFLOW WRAP|SAT|FAIL] INCRBY type offset increment ...]
fn bitfield(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    bitfield_generic(ctx, argv, false)
}

/// BITFIELD_RO key [GET type offset ...]
fn bitfield_ro(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    bitfield_generic(ctx, argv, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::testing::{run, shard};
    use crate::shard::Shard;
    fn set(s: &mut Shard, key: &str, v: &[u8]) {
        s.dbs[0].set(key.as_bytes(), Value::Str(StrValue::from_set(v)), false);
    }
    fn ints(v: &[i64]) -> Reply {
        Reply::Array(v.iter().map(|&i| Reply::Int(i)).collect())
    }
    fn err(s: &str) -> Reply {
        Reply::error(s.to_string())
    }

    #[test]
    fn setbit_getbit() {
        let mut s = shard();
        assert_eq!(
            run(&mut s, setbit, &["setbit", "k", "7", "1"]),
            Reply::Int(0)
        );
        assert_eq!(
            run(&mut s, setbit, &["setbit", "k", "7", "0"]),
            Reply::Int(1)
        );
        assert_eq!(
            run(&mut s, setbit, &["setbit", "k", "7", "2"]),
            err(errors::BIT_NOT_INTEGER)
        );
        assert_eq!(
            run(&mut s, setbit, &["setbit", "k", "-1", "1"]),
            err(errors::BIT_OFFSET_NOT_INTEGER)
        );
        assert_eq!(
            run(&mut s, setbit, &["setbit", "k", "4294967296", "1"]),
            err(errors::BIT_OFFSET_NOT_INTEGER)
        );
        assert_eq!(
            run(&mut s, getbit, &["getbit", "k", "4294967296"]),
            err(errors::BIT_OFFSET_NOT_INTEGER)
        );
        assert_eq!(
            run(&mut s, getbit, &["getbit", "k", "4294967295"]),
            Reply::Int(0)
        );
        assert_eq!(
            run(&mut s, setbit, &["setbit", "k", "20", "1"]),
            Reply::Int(0)
        );
        assert_eq!(
            s.dbs[0].keys.get(&b"k"[..]).unwrap().value.encoding(),
            "raw"
        );
        assert_eq!(run(&mut s, getbit, &["getbit", "k", "20"]), Reply::Int(1));
        assert_eq!(
            run(&mut s, getbit, &["getbit", "nokey", "20"]),
            Reply::Int(0)
        );
        set(&mut s, "i", b"1"); // '1' = 0x31
        assert_eq!(run(&mut s, getbit, &["getbit", "i", "2"]), Reply::Int(1));
        assert_eq!(run(&mut s, getbit, &["getbit", "i", "4"]), Reply::Int(0));
    }

    #[test]
    fn bitcount_ranges() {
        let mut s = shard();
        set(&mut s, "k", b"foobar");
        let bc = |s: &mut Shard, a: &[&str]| {
            let mut v = vec!["bitcount", "k"];
            v.extend_from_slice(a);
            run(s, bitcount, &v)
        };
        assert_eq!(bc(&mut s, &[]), Reply::Int(26));
        assert_eq!(bc(&mut s, &["0", "0"]), Reply::Int(4));
        assert_eq!(bc(&mut s, &["1", "1"]), Reply::Int(6));
        assert_eq!(bc(&mut s, &["1", "1", "byte"]), Reply::Int(6));
        assert_eq!(bc(&mut s, &["5", "30", "bit"]), Reply::Int(17));
        assert_eq!(bc(&mut s, &["-2", "-1"]), Reply::Int(7));
        assert_eq!(bc(&mut s, &["-1", "-2"]), Reply::Int(0));
        assert_eq!(bc(&mut s, &["-10", "-22", "word"]), Reply::Int(0));
        assert_eq!(bc(&mut s, &["-100", "100"]), Reply::Int(26));
        assert_eq!(bc(&mut s, &["-3", "-1", "bit"]), Reply::Int(1));
        assert_eq!(bc(&mut s, &["0"]), err("ERR syntax error"));
        assert_eq!(bc(&mut s, &["0", "1", "bits"]), err("ERR syntax error"));
        assert_eq!(
            bc(&mut s, &["a", "1"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(
            run(&mut s, bitcount, &["bitcount", "nokey", "a", "b"]),
            Reply::Int(0)
        );
    }

    #[test]
    fn bitpos_ranges() {
        let mut s = shard();
        set(&mut s, "k", b"\xff\xf0\x00");
        let bp = |s: &mut Shard, a: &[&str]| {
            let mut v = vec!["bitpos", "k"];
            v.extend_from_slice(a);
            run(s, bitpos, &v)
        };
        assert_eq!(bp(&mut s, &["0"]), Reply::Int(12));
        assert_eq!(bp(&mut s, &["1", "2"]), Reply::Int(-1));
        assert_eq!(bp(&mut s, &["1", "1"]), Reply::Int(8));
        assert_eq!(bp(&mut s, &["0", "2", "-1", "bit"]), Reply::Int(12));
        assert_eq!(bp(&mut s, &["1", "7", "15", "bit"]), Reply::Int(7));
        assert_eq!(bp(&mut s, &["1", "-8", "-1", "bit"]), Reply::Int(-1));
        assert_eq!(
            bp(&mut s, &["2"]),
            err("ERR The bit argument must be 1 or 0.")
        );
        set(&mut s, "f", b"\xff\xff");
        assert_eq!(run(&mut s, bitpos, &["bitpos", "f", "0"]), Reply::Int(16));
        assert_eq!(
            run(&mut s, bitpos, &["bitpos", "f", "0", "1"]),
            Reply::Int(16)
        );
        assert_eq!(
            run(&mut s, bitpos, &["bitpos", "f", "0", "0", "-1"]),
            Reply::Int(-1)
        );
        assert_eq!(
            run(&mut s, bitpos, &["bitpos", "f", "0", "3", "bit"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(
            run(&mut s, bitpos, &["bitpos", "f", "0", "3", "15", "bit"]),
            Reply::Int(-1)
        );
        assert_eq!(
            run(&mut s, bitpos, &["bitpos", "nokey", "0"]),
            Reply::Int(0)
        );
        assert_eq!(
            run(&mut s, bitpos, &["bitpos", "nokey", "1"]),
            Reply::Int(-1)
        );
        set(&mut s, "e", b"");
        assert_eq!(run(&mut s, bitpos, &["bitpos", "e", "0"]), Reply::Int(-1));
    }

    #[test]
    fn bitop_ops() {
        let mut s = shard();
        set(&mut s, "a", b"abc");
        set(&mut s, "b", b"\xff");
        assert_eq!(
            run(&mut s, bitop, &["bitop", "and", "d", "a", "b"]),
            Reply::Int(3)
        );
        assert_eq!(
            s.dbs[0].keys.get(&b"d"[..]).unwrap().value,
            Value::Str(StrValue::raw(b"a\0\0".to_vec()))
        );
        assert_eq!(
            run(&mut s, bitop, &["bitop", "not", "d", "b"]),
            Reply::Int(1)
        );
        assert_eq!(
            run(&mut s, bitop, &["bitop", "not", "d", "a", "b"]),
            err("ERR BITOP NOT must be called with a single source key.")
        );
        assert_eq!(
            run(&mut s, bitop, &["bitop", "nand", "d", "a"]),
            err("ERR syntax error")
        );
        assert_eq!(
            run(&mut s, bitop, &["bitop", "or", "d", "x", "y"]),
            Reply::Int(0)
        );
        assert!(!s.dbs[0].keys.contains_key(&b"d"[..]));
    }

    #[test]
    fn bitfield_overflow_modes() {
        let mut s = shard();
        let bf = |s: &mut Shard, a: &[&str]| {
            let mut v = vec!["bitfield", "k"];
            v.extend_from_slice(a);
            run(s, bitfield, &v)
        };
        assert_eq!(
            bf(&mut s, &["set", "u8", "0", "255", "get", "u8", "0"]),
            ints(&[0, 255])
        );
        assert_eq!(bf(&mut s, &["incrby", "u8", "0", "10"]), ints(&[9]));
        assert_eq!(
            bf(&mut s, &["overflow", "sat", "incrby", "u8", "0", "300"]),
            ints(&[255])
        );
        assert_eq!(
            bf(&mut s, &["overflow", "fail", "incrby", "u8", "0", "1"]),
            Reply::Array(vec![Reply::Null])
        );
        assert_eq!(bf(&mut s, &["get", "u8", "0"]), ints(&[255]));
        assert_eq!(
            bf(
                &mut s,
                &["set", "i8", "#1", "-128", "incrby", "i8", "#1", "-1"]
            ),
            ints(&[0, 127])
        );
        assert_eq!(
            bf(&mut s, &["overflow", "sat", "incrby", "i8", "8", "-300"]),
            ints(&[-128])
        );
        assert_eq!(
            run(
                &mut s,
                bitfield,
                &["bitfield", "k64", "set", "i64", "0", "-1", "get", "u63", "0"]
            ),
            ints(&[0, i64::MAX])
        );
        assert_eq!(
            bf(&mut s, &["get", "u64", "0"]),
            err(errors::BITFIELD_BAD_TYPE)
        );
        for upper in ["I8", "U8", "I64"] {
            assert_eq!(
                bf(&mut s, &["set", upper, "0", "5"]),
                err(errors::BITFIELD_BAD_TYPE)
            );
        }
        assert_eq!(
            bf(&mut s, &["get", "i65", "0"]),
            err(errors::BITFIELD_BAD_TYPE)
        );
        assert_eq!(
            bf(&mut s, &["get", "x8", "0"]),
            err(errors::BITFIELD_BAD_TYPE)
        );
        assert_eq!(bf(&mut s, &["get", "u8"]), err("ERR syntax error"));
        assert_eq!(
            bf(&mut s, &["overflow", "foo", "get", "u8", "0"]),
            err("ERR Invalid OVERFLOW type specified")
        );
        assert_eq!(
            bf(&mut s, &["get", "u8", "#-1"]),
            err(errors::BIT_OFFSET_NOT_INTEGER)
        );
        assert_eq!(
            bf(&mut s, &["set", "u8", "0", "x"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(bf(&mut s, &[]), Reply::Array(vec![]));
        assert_eq!(
            run(
                &mut s,
                bitfield_ro,
                &["bitfield_ro", "k", "get", "u8", "0", "set", "u8", "0", "1"]
            ),
            err("ERR BITFIELD_RO only supports the GET subcommand")
        );
        assert_eq!(
            run(
                &mut s,
                bitfield_ro,
                &["bitfield_ro", "nokey", "get", "i4", "100"]
            ),
            ints(&[0])
        );
        assert!(!s.dbs[0].keys.contains_key(&b"nokey"[..]));
        assert_eq!(
            run(
                &mut s,
                bitfield,
                &["bitfield", "new", "overflow", "fail", "set", "u2", "100", "9"]
            ),
            Reply::Array(vec![Reply::Null])
        );
        assert_eq!(
            s.dbs[0].keys.get(&b"new"[..]).map(|e| e.value.clone()),
            Some(Value::Str(StrValue::raw(vec![0; 13])))
        );
    }
}
