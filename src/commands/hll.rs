//! HyperLogLog commands (Redis's `hyperloglog.c`): PFADD, PFCOUNT, PFMERGE, PFDEBUG,
//! PFSELFTEST.
//!
//! A sketch is an ordinary string value holding Redis's exact bytes (see
//! [`crate::storage::hll`]), so these commands first check that the string is one
//! (`WRONGTYPE Key is not a valid HyperLogLog string value.`), and report a sketch whose
//! registers do not add up as `INVALIDOBJ Corrupted HLL object detected`. The one idea
//! to hold: any command that touches a sketch in place first makes the string raw
//! (Redis's `dbUnshareStringValue`), and single-key PFCOUNT, although flagged read-only,
//! writes the cardinality it computed into the header and counts that as a change.

use super::string::{as_str, as_str_mut};
use super::{errors, traits, Command, Ctx, Exec};
use crate::notify;
use crate::protocol::Reply;
use crate::storage::hll::{self, Corrupt, REGISTERS};
use crate::storage::{StrValue, Value};
use bytes::Bytes;
use std::borrow::Cow;

pub static COMMANDS: &[Command] = &[
    Command::new(
        "pfadd",
        -2,
        "write denyoom fast",
        "write hyperloglog fast",
        Exec::Shard(pfadd),
    )
    .keys(1, 1, 1)
    .verbatim(),
    Command::new(
        "pfcount",
        -2,
        "readonly",
        "read hyperloglog slow",
        Exec::Shard(pfcount),
    )
    .keys(1, -1, 1)
    .traits(traits::TOUCHES_ON_READ | traits::MAY_REPLICATE),
    Command::new(
        "pfmerge",
        -2,
        "write denyoom",
        "write hyperloglog slow",
        Exec::Shard(pfmerge),
    )
    .keys(1, -1, 1)
    .verbatim(),
    Command::new(
        "pfdebug",
        3,
        "write denyoom admin",
        "write hyperloglog admin slow dangerous",
        Exec::Shard(pfdebug),
    )
    .keys(2, 2, 1)
    .verbatim(),
    Command::new(
        "pfselftest",
        1,
        "admin",
        "hyperloglog admin slow dangerous",
        Exec::Shard(pfselftest),
    ),
];

const CORRUPT: &str = "INVALIDOBJ Corrupted HLL object detected";

fn corrupt(_: Corrupt) -> Reply {
    Reply::err(CORRUPT)
}

/// `hll-sparse-max-bytes`: the size past which a sparse sketch becomes dense.
fn sparse_max_bytes(ctx: &Ctx) -> usize {
    ctx.shard
        .config
        .get_int("hll-sparse-max-bytes")
        .clamp(0, isize::MAX as i64) as usize
}

/// Redis's `isHLLObjectOrReply` on the value at `key`: Ok(None) if the key is missing,
/// the sketch's bytes if it holds one, else the error to answer.
fn read_sketch<'c>(
    ctx: &'c mut Ctx,
    key: &[u8],
    write: bool,
) -> Result<Option<Cow<'c, [u8]>>, Reply> {
    let entry = if write {
        ctx.lookup_write(key)
    } else {
        ctx.lookup_read(key)
    };
    let Some(entry) = entry else {
        return Ok(None);
    };
    let s = as_str(entry)?;
    // An int-encoded string is never a sketch (Redis checks for an sds first).
    if matches!(s, StrValue::Int(_)) || !hll::is_valid_header(&s.as_bytes()) {
        return Err(Reply::err(errors::NOT_HLL));
    }
    Ok(Some(s.as_bytes()))
}

/// [`read_sketch`] when only its presence matters.
fn check_sketch(ctx: &mut Ctx, key: &[u8], write: bool) -> Result<bool, Reply> {
    read_sketch(ctx, key, write).map(|s| s.is_some())
}

/// The sketch at `key` (checked by [`check_sketch`]) as a raw byte vector to edit.
fn sketch_mut<'c>(ctx: &'c mut Ctx, key: &[u8]) -> &'c mut Vec<u8> {
    let entry = ctx.lookup_write(key).expect("checked by check_sketch");
    as_str_mut(entry)
        .expect("checked by check_sketch")
        .make_raw()
}

/// PFADD key [element ...]: 1 if the sketch was created or a register grew.
fn pfadd(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let key = &argv[1];
    let sparse_max = sparse_max_bytes(ctx);
    let created = match check_sketch(ctx, key, true) {
        Err(e) => return e,
        Ok(exists) => !exists,
    };
    if created {
        ctx.db()
            .set(key, Value::Str(StrValue::raw(hll::new_sparse())), false);
    }
    let mut updated = created as u64;
    let sketch = sketch_mut(ctx, key);
    for element in &argv[2..] {
        match hll::add(sketch, element, sparse_max) {
            Ok(true) => updated += 1,
            Ok(false) => {}
            Err(e) => return corrupt(e),
        }
    }
    if updated > 0 {
        hll::invalidate_cache(sketch);
        // Redis counts one change per register raised, plus one for the creation,
        // which Db::set has counted already.
        ctx.db().dirty += updated - created as u64;
        ctx.notify(notify::STRING, "pfadd", key);
    }
    Reply::Int((updated > 0) as i64)
}

/// PFCOUNT key [key ...]: one key answers from (or refreshes) the cached cardinality;
/// several keys are merged into a scratch sketch and counted, caching nothing.
fn pfcount(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    if argv.len() > 2 {
        let mut max = [0u8; REGISTERS];
        for key in &argv[1..] {
            match read_sketch(ctx, key, false) {
                Err(e) => return e,
                Ok(None) => {}
                Ok(Some(sketch)) => {
                    if let Err(e) = hll::merge_into(&mut max, &sketch) {
                        return corrupt(e);
                    }
                }
            }
        }
        return Reply::Int(hll::count_registers(&max) as i64);
    }
    let key = &argv[1];
    match check_sketch(ctx, key, false) {
        Err(e) => return e,
        Ok(false) => return Reply::Int(0),
        Ok(true) => {}
    }
    let sketch = sketch_mut(ctx, key);
    if let Some(card) = hll::cached_cardinality(sketch) {
        return Reply::Int(card as i64);
    }
    let card = match hll::count(sketch) {
        Ok(c) => c,
        Err(e) => return corrupt(e),
    };
    hll::set_cached_cardinality(sketch, card);
    ctx.db().dirty += 1;
    Reply::Int(card as i64)
}

/// PFMERGE destkey [sourcekey ...]: the union of all the sketches (the destination's
/// own included) into destkey, dense if any input was dense, else kept sparse while it
/// fits.
fn pfmerge(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let mut max = [0u8; REGISTERS];
    let mut use_dense = false;
    for key in &argv[1..] {
        match read_sketch(ctx, key, false) {
            Err(e) => return e,
            Ok(None) => {}
            Ok(Some(sketch)) => {
                use_dense |= !hll::is_sparse(&sketch);
                if let Err(e) = hll::merge_into(&mut max, &sketch) {
                    return corrupt(e);
                }
            }
        }
    }
    let dest = &argv[1];
    let sparse_max = sparse_max_bytes(ctx);
    let created = ctx.lookup_write(dest).is_none();
    if created {
        ctx.db()
            .set(dest, Value::Str(StrValue::raw(hll::new_sparse())), false);
    }
    let sketch = sketch_mut(ctx, dest);
    if use_dense {
        if let Err(e) = hll::to_dense(sketch) {
            return corrupt(e);
        }
    }
    for (index, &value) in max.iter().enumerate() {
        if value > 0 {
            // The destination was merged above, so it cannot be corrupt here, and
            // Redis ignores the result of each set.
            let _ = hll::set_register(sketch, index, value, sparse_max);
        }
    }
    hll::invalidate_cache(sketch);
    // One change in all, the creation (counted by Db::set) included.
    ctx.db().dirty += 1 - created as u64;
    // As Redis: a merge is a mass PFADD.
    ctx.notify(notify::STRING, "pfadd", dest);
    Reply::ok()
}

/// PFDEBUG GETREG|DECODE|ENCODING|TODENSE key
fn pfdebug(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let sub = &argv[1];
    let key = &argv[2];
    match check_sketch(ctx, key, true) {
        Err(e) => return e,
        Ok(false) => return Reply::err(errors::KEY_DOES_NOT_EXIST),
        Ok(true) => {}
    }
    let sketch = sketch_mut(ctx, key);
    let sub_is = |name: &str| sub.eq_ignore_ascii_case(name.as_bytes());
    if sub_is("getreg") {
        let converted = match hll::to_dense(sketch) {
            Ok(c) => c,
            Err(e) => return corrupt(e),
        };
        let regs = hll::dense_registers(sketch);
        if converted {
            ctx.db().dirty += 1;
        }
        Reply::Array(regs.into_iter().map(|r| Reply::Int(r as i64)).collect())
    } else if sub_is("decode") {
        if !hll::is_sparse(sketch) {
            return Reply::err(errors::HLL_NOT_SPARSE);
        }
        Reply::bulk_str(&hll::decode_sparse(sketch))
    } else if sub_is("encoding") {
        Reply::status(if hll::is_sparse(sketch) {
            "sparse"
        } else {
            "dense"
        })
    } else if sub_is("todense") {
        match hll::to_dense(sketch) {
            Ok(true) => {
                ctx.db().dirty += 1;
                Reply::Int(1)
            }
            Ok(false) => Reply::Int(0),
            Err(e) => corrupt(e),
        }
    } else {
        // Redis prints the name with %s: it ends at a NUL byte.
        let name = sub.split(|&b| b == 0).next().unwrap_or(&[]);
        errors::unknown_pfdebug_subcommand(&String::from_utf8_lossy(name))
    }
}

/// PFSELFTEST: checks the register packing and that sparse and dense sketches fed the
/// same elements agree, as Redis's self test does (with fewer elements).
fn pfselftest(_ctx: &mut Ctx, _argv: &[Bytes]) -> Reply {
    let mut sparse = hll::new_sparse();
    let mut dense = hll::new_sparse();
    if hll::to_dense(&mut dense).is_err() {
        return Reply::err(errors::HLL_TEST_DENSE_CONVERSION);
    }
    for i in 0..10_000u32 {
        let e = i.to_le_bytes();
        if hll::add(&mut sparse, &e, usize::MAX).is_err()
            || hll::add(&mut dense, &e, usize::MAX).is_err()
        {
            return Reply::err(errors::HLL_TEST_CORRUPTED);
        }
    }
    if hll::count(&sparse) != hll::count(&dense) {
        return Reply::err(errors::HLL_TEST_DISAGREE);
    }
    Reply::ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::testing::{argv, run, shard};
    use crate::storage::hll::DENSE_SIZE;

    fn get(s: &mut crate::shard::Shard, key: &str) -> Vec<u8> {
        let mut ctx = Ctx::new(s, 0);
        let e = ctx.lookup_write(key.as_bytes()).expect("key exists");
        as_str(e).unwrap().as_bytes().into_owned()
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn pfadd_sparse_bytes_match_redis() {
        let mut s = shard();
        let mut args = vec!["pfadd".to_string(), "s20".to_string()];
        args.extend((0..20).map(|i| i.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_eq!(run(&mut s, pfadd, &args), Reply::Int(1));
        // `PFADD s20 0 1 ... 19` then `GET s20` on redis-server 7.0.15.
        let want = hex("48594c4c01000000000000000000008041ee8444118044108045228040f58842108044d48045719040db8043558043518c41108045248040928048ca8c43738042d78042128c40b88015844322");
        assert_eq!(get(&mut s, "s20"), want);
        assert_eq!(run(&mut s, pfcount, &["pfcount", "s20"]), Reply::Int(20));
        assert_eq!(run(&mut s, pfadd, &["pfadd", "s20", "3"]), Reply::Int(0));
        assert_eq!(
            s.dbs[0].keys.get(&b"s20"[..]).unwrap().value.encoding(),
            "raw"
        );
    }

    #[test]
    fn pfadd_dense_bytes_match_redis() {
        let mut s = shard();
        let elements: Vec<String> = (0..10_000).map(|i| format!("e{i}")).collect();
        let mut args = vec!["pfadd", "d"];
        args.extend(elements.iter().map(String::as_str));
        assert_eq!(run(&mut s, pfadd, &args), Reply::Int(1));
        let b = get(&mut s, "d");
        assert_eq!(b.len(), DENSE_SIZE);
        // A weighted checksum and the first 20 bytes of Redis's value.
        let sum = b
            .iter()
            .enumerate()
            .fold(0u64, |a, (i, &x)| a.wrapping_add((i as u64 + 1) * x as u64));
        assert_eq!(sum, 1_703_358_901);
        assert_eq!(
            &b[..20],
            &hex("48594c4c000000000000000000000080020000c0")[..]
        );
        assert_eq!(run(&mut s, pfcount, &["pfcount", "d"]), Reply::Int(9973));
        assert_eq!(
            &get(&mut s, "d")[..16],
            &hex("48594c4c00000000f526000000000000")[..]
        );
        assert_eq!(
            run(&mut s, pfmerge, &["pfmerge", "m", "d", "nokey"]),
            Reply::ok()
        );
        assert_eq!(run(&mut s, pfcount, &["pfcount", "m"]), Reply::Int(9973));
        assert_eq!(
            run(&mut s, pfcount, &["pfcount", "m", "d", "nokey"]),
            Reply::Int(9973)
        );
    }

    #[test]
    fn dirty_counts_like_redis() {
        let mut s = shard();
        let dirty = |s: &crate::shard::Shard| s.dbs[0].dirty;
        run(&mut s, pfadd, &["pfadd", "h", "a", "b"]);
        assert_eq!(dirty(&s), 3);
        run(&mut s, pfadd, &["pfadd", "h", "a"]);
        assert_eq!(dirty(&s), 3);
        run(&mut s, pfcount, &["pfcount", "h"]);
        assert_eq!(dirty(&s), 4);
        run(&mut s, pfcount, &["pfcount", "h"]); // cached
        assert_eq!(dirty(&s), 4);
        run(&mut s, pfmerge, &["pfmerge", "new", "h"]);
        assert_eq!(dirty(&s), 5);
    }

    #[test]
    fn errors_match_redis() {
        let mut s = shard();
        let wrong_hll = Reply::err(errors::NOT_HLL);
        s.dbs[0].set(b"str", Value::Str(StrValue::from_set(b"hello")), false);
        s.dbs[0].set(b"int", Value::Str(StrValue::from_set(b"12345")), false);
        assert_eq!(run(&mut s, pfadd, &["pfadd", "str", "a"]), wrong_hll);
        assert_eq!(run(&mut s, pfadd, &["pfadd", "int", "a"]), wrong_hll);
        assert_eq!(run(&mut s, pfcount, &["pfcount", "str"]), wrong_hll);
        assert_eq!(run(&mut s, pfmerge, &["pfmerge", "x", "str"]), wrong_hll);
        assert!(!s.dbs[0].keys.contains_key(&b"x"[..]));
        // Registers covering fewer than 16384 registers.
        let bad = b"HYLL\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80\x7f\xf0";
        s.dbs[0].set(b"bad", Value::Str(StrValue::from_bytes(bad)), false);
        let corrupt = Reply::err(CORRUPT);
        assert_eq!(run(&mut s, pfcount, &["pfcount", "bad"]), corrupt);
        assert_eq!(run(&mut s, pfcount, &["pfcount", "bad", "x"]), corrupt);
        assert_eq!(run(&mut s, pfmerge, &["pfmerge", "x", "bad"]), corrupt);
        // "a" lands in register 8436, inside the covered part: Redis adds it.
        assert_eq!(run(&mut s, pfadd, &["pfadd", "bad", "a"]), Reply::Int(1));
        assert_eq!(
            run(&mut s, pfdebug, &["pfdebug", "getreg", "nokey"]),
            Reply::err(errors::KEY_DOES_NOT_EXIST)
        );
        run(&mut s, pfadd, &["pfadd", "h", "a"]);
        assert_eq!(
            run(&mut s, pfdebug, &["pfdebug", "nope", "h"]),
            errors::unknown_pfdebug_subcommand("nope")
        );
        assert_eq!(
            run(&mut s, pfdebug, &["pfdebug", "encoding", "h"]),
            Reply::status("sparse")
        );
        assert_eq!(
            run(&mut s, pfdebug, &["pfdebug", "todense", "h"]),
            Reply::Int(1)
        );
        assert_eq!(
            run(&mut s, pfdebug, &["pfdebug", "decode", "h"]),
            Reply::err(errors::HLL_NOT_SPARSE)
        );
        assert_eq!(run(&mut s, pfselftest, &["pfselftest"]), Reply::ok());
        let _ = argv(&[]);
    }

    #[test]
    fn all_registers_at_max_count_as_redis() {
        // Every register at 63: Redis's estimate overflows to LLONG_MIN.
        let mut s = shard();
        let mut v = b"HYLL\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80".to_vec();
        v.resize(DENSE_SIZE, 0xff);
        s.dbs[0].set(b"h", Value::Str(StrValue::raw(v)), false);
        assert_eq!(
            run(&mut s, pfcount, &["pfcount", "h"]),
            Reply::Int(i64::MIN)
        );
        assert_eq!(&get(&mut s, "h")[8..16], b"\0\0\0\0\0\0\0\x80");
    }
}
