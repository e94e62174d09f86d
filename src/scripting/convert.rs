//! Conversions between replies and Lua values, by Redis 7.0's rules
//! (`script_lua.c`'s `redisProtocolToLuaType` and `luaReplyToRedisReply`).
//!
//! A reply reaches Lua through its encoding in the script's protocol (RESP2 unless the
//! script called `redis.setresp(3)`): the encoder already knows how every reply
//! variant looks in each protocol (a map flattened in RESP2, a double as a bulk
//! string...), so decoding that is what a client would see, with no second copy of
//! those rules.

use crate::protocol::Reply;
use bytes::{Bytes, BytesMut};
use mlua::{ffi, Lua, Table, Value};
use std::ffi::c_int;

/// `reply` as the Lua value a script gets from `redis.call` in protocol `resp`: its
/// encoding, decoded. (`redis.call` pushes the common single values itself, see
/// `run::push_reply`, and leaves only the others to this.)
pub fn reply_to_lua(lua: &Lua, reply: &Reply, resp: u8) -> mlua::Result<Value> {
    let mut buf = BytesMut::new();
    reply.encode(resp, &mut buf);
    decode(lua, &buf, &mut 0)
}

/// A table `{<field> = value}`: how statuses, errors and typed RESP3 values look.
pub fn tagged(lua: &Lua, field: &str, value: impl mlua::IntoLua) -> mlua::Result<Value> {
    let t = lua.create_table()?;
    t.raw_set(field, value)?;
    Ok(Value::Table(t))
}

fn line<'a>(buf: &'a [u8], pos: &mut usize) -> mlua::Result<&'a [u8]> {
    let start = *pos;
    let rest = &buf[start..];
    let Some(end) = rest.windows(2).position(|w| w == b"\r\n") else {
        return Err(mlua::Error::runtime("truncated reply"));
    };
    *pos = start + end + 2;
    Ok(&rest[..end])
}

fn number(s: &[u8]) -> mlua::Result<i64> {
    std::str::from_utf8(s)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| mlua::Error::runtime("bad length in reply"))
}

fn bulk<'a>(buf: &'a [u8], pos: &mut usize, len: usize) -> &'a [u8] {
    let s = &buf[*pos..*pos + len];
    *pos += len + 2;
    s
}

/// Decode one encoded reply at `pos` into a Lua value.
fn decode(lua: &Lua, buf: &[u8], pos: &mut usize) -> mlua::Result<Value> {
    let kind = buf[*pos];
    *pos += 1;
    let head = line(buf, pos)?;
    Ok(match kind {
        b'+' => tagged(lua, "ok", lua.create_string(head)?)?,
        b'-' => {
            // A command's error, counted already: Redis 7.0 marks its table so.
            let t = lua.create_table()?;
            t.raw_set("err", lua.create_string(head)?)?;
            t.raw_set("ignore_error_stats_update", true)?;
            Value::Table(t)
        }
        b':' => Value::Number(number(head)? as f64),
        b'$' => match number(head)? {
            n if n < 0 => Value::Boolean(false),
            n => Value::String(lua.create_string(bulk(buf, pos, n as usize))?),
        },
        b'*' | b'>' => match number(head)? {
            n if n < 0 => Value::Boolean(false),
            n => {
                let t = lua.create_table_with_capacity(n as usize, 0)?;
                for i in 1..=n {
                    t.raw_set(i, decode(lua, buf, pos)?)?;
                }
                Value::Table(t)
            }
        },
        // RESP3 only (a script that called redis.setresp(3)).
        b'_' => Value::Nil,
        b'#' => Value::Boolean(head == b"t"),
        b',' => {
            let d: f64 = match head {
                b"inf" => f64::INFINITY,
                b"-inf" => f64::NEG_INFINITY,
                other => std::str::from_utf8(other)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(f64::NAN),
            };
            tagged(lua, "double", d)?
        }
        b'(' => tagged(lua, "big_number", lua.create_string(head)?)?,
        b'=' => {
            let s = bulk(buf, pos, number(head)? as usize);
            let (format, text) = s.split_at(s.len().min(4));
            let v = lua.create_table()?;
            v.raw_set("format", lua.create_string(&format[..format.len().min(3)])?)?;
            v.raw_set("string", lua.create_string(text)?)?;
            tagged(lua, "verbatim_string", v)?
        }
        b'%' => {
            let t = lua.create_table()?;
            for _ in 0..number(head)? {
                let k = decode(lua, buf, pos)?;
                let v = decode(lua, buf, pos)?;
                t.raw_set(k, v)?;
            }
            tagged(lua, "map", t)?
        }
        b'~' => {
            let t = lua.create_table()?;
            for _ in 0..number(head)? {
                t.raw_set(decode(lua, buf, pos)?, true)?;
            }
            tagged(lua, "set", t)?
        }
        // An attribute: not shown to scripts (as in Redis 7.0), the reply it precedes is.
        b'|' => {
            for _ in 0..2 * number(head)? {
                decode(lua, buf, pos)?;
            }
            decode(lua, buf, pos)?
        }
        _ => return Err(mlua::Error::runtime("unknown reply type")),
    })
}

/// How deep a returned table may nest before the reply is an error (a table that
/// contains itself would otherwise recurse for ever).
const MAX_DEPTH: usize = 1000;

/// A script's return value as a reply; `resp` is the script's protocol
/// (`redis.setresp`), which decides how booleans look (the client's protocol decides
/// the encoding).
pub fn lua_to_reply(v: &Value, resp: u8) -> Reply {
    to_reply(v, resp, 0)
}

fn to_reply(v: &Value, resp: u8, depth: usize) -> Reply {
    if depth > MAX_DEPTH {
        return Reply::err("ERR reached lua stack limit");
    }
    match v {
        Value::String(s) => Reply::Bulk(Bytes::copy_from_slice(&s.as_bytes())),
        Value::Boolean(true) if resp == 2 => Reply::Int(1),
        Value::Boolean(false) if resp == 2 => Reply::Null,
        Value::Boolean(b) => Reply::Bool(*b),
        // (long long) of the double, as Redis: truncated toward zero.
        Value::Number(n) => Reply::Int(c_long(*n)),
        Value::Integer(n) => Reply::Int(*n),
        Value::Table(t) => table_to_reply(t, resp, depth),
        // What `pcall(redis.call, ...)` caught: the command's error.
        Value::Error(e) => match super::engine::script_error(e) {
            Some(msg) => error_line(msg),
            None => error_line(&format!("ERR {e}")),
        },
        _ => Reply::Null,
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => {
            let bytes = s.as_bytes();
            Some(match std::str::from_utf8(&bytes) {
                Ok(text) => text.to_owned(),
                Err(_) => String::from_utf8_lossy(&bytes).into_owned(),
            })
        }
        _ => None,
    }
}

/// An error message as a reply line: Redis turns line breaks into spaces.
pub fn error_line(msg: &str) -> Reply {
    Reply::error(msg.replace(['\r', '\n'], " "))
}

/// [`error_line`] for error table `t`: one that a `redis.call` got (its
/// `ignore_error_stats_update` set) was counted in the error stats already.
pub fn error_line_of(t: &Table, msg: &str) -> Reply {
    let counted = t
        .raw_get::<bool>("ignore_error_stats_update")
        .unwrap_or(false);
    error_reply(msg, counted)
}

/// An error table's reply: [`error_line`], marked counted if `counted`.
fn error_reply(msg: &str, counted: bool) -> Reply {
    match error_line(msg) {
        Reply::Error(text) if counted => Reply::CountedError(text),
        reply => reply,
    }
}

/// A status table's reply.
fn status_reply(s: String) -> Reply {
    match s.as_str() {
        // The common status, without an allocation.
        "OK" => Reply::ok(),
        _ if s.contains(['\r', '\n']) => Reply::Status(s.replace(['\r', '\n'], " ").into()),
        _ => Reply::Status(s.into()),
    }
}

fn table_to_reply(t: &Table, resp: u8, depth: usize) -> Reply {
    let field = |name: &str| t.raw_get::<Value>(name).unwrap_or(Value::Nil);
    if let Some(e) = text(&field("err")) {
        return error_line_of(t, &e);
    }
    if let Some(s) = text(&field("ok")) {
        return status_reply(s);
    }
    // (mlua hands an integral number over as an Integer.)
    match field("double") {
        Value::Number(d) => return Reply::Double(d),
        Value::Integer(d) => return Reply::Double(d as f64),
        _ => {}
    }
    if let Some(s) = text(&field("big_number")) {
        // Redis blanks line breaks here, so that even RESP2's bulk string has none.
        return Reply::BigNumber(s.replace(['\r', '\n'], " "));
    }
    if let Value::Table(m) = field("map") {
        let pairs = m
            .pairs::<Value, Value>()
            .filter_map(Result::ok)
            .map(|(k, v)| (to_reply(&k, resp, depth + 1), to_reply(&v, resp, depth + 1)))
            .collect();
        return Reply::Map(pairs);
    }
    if let Value::Table(s) = field("set") {
        let members = s
            .pairs::<Value, Value>()
            .filter_map(Result::ok)
            .map(|(k, _)| to_reply(&k, resp, depth + 1))
            .collect();
        return Reply::Set(members);
    }
    if let Value::Table(v) = field("verbatim_string") {
        let format = text(&v.raw_get::<Value>("format").unwrap_or(Value::Nil));
        let body = text(&v.raw_get::<Value>("string").unwrap_or(Value::Nil));
        if let (Some(f), Some(b)) = (format, body) {
            let f: &'static str = match f.as_str() {
                "mkd" => "mkd",
                _ => "txt",
            };
            return Reply::Verbatim(f, Bytes::from(b));
        }
    }
    // An array: elements 1, 2, ... up to the first nil.
    let mut items = Vec::new();
    for i in 1.. {
        match t.raw_get::<Value>(i) {
            Ok(Value::Nil) | Err(_) => break,
            Ok(v) => items.push(to_reply(&v, resp, depth + 1)),
        }
    }
    Reply::Array(items)
}

/// [`lua_to_reply`] for the value at absolute index `idx` of `state`'s stack, read
/// through the C API: mlua's `Table::raw_get` took a registry reference, a stack check
/// and a protected frame per field read, ~550 instructions, two of them for the
/// status a script returns from `redis.call('set', ...)` (`benches/README.md`,
/// "EVALSHA's return value"). It reads nil, booleans, numbers, strings and tables of
/// errors, statuses, doubles and arrays of these, by the same rules; `None` for
/// anything else, anywhere inside (a `map`, `set`, `big_number` or `verbatim_string`
/// table, mlua's error userdata, a function...), which `lua_to_reply` converts whole.
///
/// # Safety
/// `state` is a valid Lua state and `idx` a valid absolute index of its stack. It
/// calls only functions that cannot raise here: type checks and reads, raw table
/// reads (no metamethods), `lua_checkstack` and `lua_pushstring` (they allocate: see
/// `engine::push_arrays` for why that cannot raise). It leaves the stack as it found
/// it.
pub unsafe fn stack_to_reply(state: *mut ffi::lua_State, idx: c_int, resp: u8) -> Option<Reply> {
    // SAFETY: as this function's.
    unsafe { reply_at(state, idx, resp, 0) }
}

/// [`stack_to_reply`] at nesting `depth`.
///
/// # Safety
/// As [`stack_to_reply`].
unsafe fn reply_at(
    state: *mut ffi::lua_State,
    idx: c_int,
    resp: u8,
    depth: usize,
) -> Option<Reply> {
    if depth > MAX_DEPTH {
        return Some(Reply::err("ERR reached lua stack limit"));
    }
    // SAFETY: `idx` is valid (the caller's promise), and the reads below are of the
    // type just checked.
    unsafe {
        match ffi::lua_type(state, idx) {
            ffi::LUA_TNIL => Some(Reply::Null),
            ffi::LUA_TBOOLEAN => Some(match (ffi::lua_toboolean(state, idx) != 0, resp) {
                (true, 2) => Reply::Int(1),
                (false, 2) => Reply::Null,
                (b, _) => Reply::Bool(b),
            }),
            ffi::LUA_TNUMBER => Some(Reply::Int(c_long(ffi::lua_tonumber(state, idx)))),
            ffi::LUA_TSTRING => Some(Reply::Bulk(Bytes::copy_from_slice(string_at(state, idx)))),
            ffi::LUA_TTABLE => table_at(state, idx, resp, depth),
            _ => None,
        }
    }
}

/// The bytes of the string at `idx`, valid while it stays on the stack.
///
/// # Safety
/// The value at `idx` is a string (not a number, which `lua_tolstring` would convert
/// in place).
unsafe fn string_at<'a>(state: *mut ffi::lua_State, idx: c_int) -> &'a [u8] {
    let mut len = 0;
    // SAFETY: a string's pointer and length, kept alive by the stack slot.
    unsafe {
        let p = ffi::lua_tolstring(state, idx, &mut len);
        std::slice::from_raw_parts(p.cast::<u8>(), len)
    }
}

/// A string's text as `text` makes it (invalid UTF-8 replaced).
fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `table_to_reply` for the table at `t`: see [`stack_to_reply`].
///
/// # Safety
/// As [`stack_to_reply`], with a table at `t`.
unsafe fn table_at(state: *mut ffi::lua_State, t: c_int, resp: u8, depth: usize) -> Option<Reply> {
    // SAFETY: room is made for the two values pushed at a time; every push is
    // popped before returning; the fields are read raw.
    unsafe {
        if ffi::lua_checkstack(state, 2) == 0 {
            return None;
        }
        // Pushes field `name` of the table and returns its type.
        let field = |name: &std::ffi::CStr| {
            ffi::lua_pushstring(state, name.as_ptr());
            ffi::lua_rawget(state, t);
            ffi::lua_type(state, -1)
        };
        if field(c"err") == ffi::LUA_TSTRING {
            let msg = lossy(string_at(state, -1));
            field(c"ignore_error_stats_update");
            let counted = ffi::lua_toboolean(state, -1) != 0;
            ffi::lua_pop(state, 2);
            return Some(error_reply(&msg, counted));
        }
        ffi::lua_pop(state, 1);
        if field(c"ok") == ffi::LUA_TSTRING {
            let s = lossy(string_at(state, -1));
            ffi::lua_pop(state, 1);
            return Some(status_reply(s));
        }
        ffi::lua_pop(state, 1);
        if field(c"double") == ffi::LUA_TNUMBER {
            let d = ffi::lua_tonumber(state, -1);
            ffi::lua_pop(state, 1);
            return Some(Reply::Double(d));
        }
        ffi::lua_pop(state, 1);
        // The kinds left to `table_to_reply`, when it would take them.
        for (name, kind) in [
            (c"big_number", ffi::LUA_TSTRING),
            (c"map", ffi::LUA_TTABLE),
            (c"set", ffi::LUA_TTABLE),
            (c"verbatim_string", ffi::LUA_TTABLE),
        ] {
            let found = field(name);
            ffi::lua_pop(state, 1);
            if found == kind {
                return None;
            }
        }
        // An array: elements 1, 2, ... up to the first nil.
        let mut items = Vec::new();
        for i in 1.. {
            ffi::lua_rawgeti(state, t, i);
            if ffi::lua_type(state, -1) == ffi::LUA_TNIL {
                ffi::lua_pop(state, 1);
                break;
            }
            let item = reply_at(state, ffi::lua_gettop(state), resp, depth + 1);
            ffi::lua_pop(state, 1);
            items.push(item?);
        }
        Some(Reply::Array(items))
    }
}

/// C's double to `long long` as x86-64 does it (`cvttsd2si`), which is what Redis's
/// conversions of Lua numbers do: out of range or NaN gives LLONG_MIN (a Rust `as`
/// would saturate instead).
pub fn c_long(n: f64) -> i64 {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if (-TWO_63..TWO_63).contains(&n) {
        n as i64
    } else {
        i64::MIN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(lua: &Lua, r: Reply, resp: u8) -> Reply {
        lua_to_reply(&reply_to_lua(lua, &r, resp).unwrap(), resp)
    }

    #[test]
    fn replies_reach_lua_as_a_client_would_see_them() {
        let lua = Lua::new();
        let s = |x: &str| Reply::Bulk(Bytes::copy_from_slice(x.as_bytes()));
        assert_eq!(roundtrip(&lua, Reply::Int(-7), 2), Reply::Int(-7));
        assert_eq!(roundtrip(&lua, s("a\r\nb"), 2), s("a\r\nb"));
        assert_eq!(roundtrip(&lua, Reply::Null, 2), Reply::Null);
        assert_eq!(roundtrip(&lua, Reply::ok(), 2), Reply::ok());
        // A command's error comes back marked as counted in the error stats already.
        assert_eq!(
            roundtrip(&lua, Reply::err("ERR x"), 2),
            Reply::CountedError("ERR x".into())
        );
        // A map is a flat array in RESP2; a double a bulk string.
        let m = Reply::Map(vec![(s("f"), Reply::Int(1))]);
        assert_eq!(
            roundtrip(&lua, m.clone(), 2),
            Reply::Array(vec![s("f"), Reply::Int(1)])
        );
        assert_eq!(roundtrip(&lua, Reply::Double(1.5), 2), s("1.5"));
        // RESP3 keeps them typed.
        assert_eq!(
            roundtrip(&lua, m, 3),
            Reply::Map(vec![(s("f"), Reply::Int(1))])
        );
        assert_eq!(roundtrip(&lua, Reply::Double(1.5), 3), Reply::Double(1.5));
        assert_eq!(roundtrip(&lua, Reply::Bool(true), 3), Reply::Bool(true));
    }

    #[test]
    fn script_values_become_replies_by_redis_rules() {
        let lua = Lua::new();
        let eval = |src: &str, resp: u8| {
            let v: Value = lua.load(src).eval().unwrap();
            lua_to_reply(&v, resp)
        };
        assert_eq!(eval("return 3.99", 2), Reply::Int(3));
        assert_eq!(eval("return -3.99", 2), Reply::Int(-3));
        assert_eq!(eval("return true", 2), Reply::Int(1));
        assert_eq!(eval("return false", 2), Reply::Null);
        assert_eq!(eval("return false", 3), Reply::Bool(false));
        assert_eq!(
            eval("return {1, 'a', {2}, nil, 5}", 2),
            Reply::Array(vec![
                Reply::Int(1),
                Reply::Bulk(Bytes::from_static(b"a")),
                Reply::Array(vec![Reply::Int(2)])
            ])
        );
        assert_eq!(eval("return {err='E2 x\\ny'}", 2), Reply::err("E2 x y"));
        // A table holding itself ends, as in Redis, with an error at the bottom.
        let mut r = eval("local t = {} t[1] = t return t", 2);
        while let Reply::Array(mut v) = r {
            r = v.pop().unwrap();
        }
        assert!(r.is_error());
    }

    /// `stack_to_reply` gives what `lua_to_reply` gives, or leaves the value to it.
    #[test]
    fn values_read_off_the_stack_convert_as_through_mlua() {
        let lua = Lua::new();
        let cases = [
            "return nil",
            "return true",
            "return false",
            "return 7",
            "return -3.99",
            "return 1e300",
            "return 0/0",
            "return 'a\\r\\nb'",
            "return {ok='OK'}",
            "return {ok='FINE\\r\\nX'}",
            "return {ok='\\255'}",
            "return {ok=1, 2}",
            "return {err='ERR x\\ny'}",
            "return {err='bad', ignore_error_stats_update=true}",
            "return {err='E2 x', ok='OK'}",
            "return {double=1.5}",
            "return {double=3}",
            "return {double='x', 1, 2}",
            "return {big_number='123'}",
            "return {map={a=1}}",
            "return {set={a=true}}",
            "return {verbatim_string={format='txt', string='x'}}",
            "return {verbatim_string={format=1}, 5}",
            "return {1, 'a', {2, {ok='x'}, {err='E y'}}, false, true, nil, 5}",
            "return {}",
            "return {function() end}",
            "return {1, {map={}}}",
            "local t = {} t[1] = t return t",
        ];
        let mut raw_taken = 0;
        for src in cases {
            for resp in [2, 3] {
                let v: Value = lua.load(src).eval().unwrap();
                let expected = lua_to_reply(&v, resp);
                let mut got = None;
                // SAFETY: exec_raw runs the closure on a valid state with `v` at 1.
                unsafe {
                    lua.exec_raw::<()>(&v, |state| {
                        let top = ffi::lua_gettop(state);
                        got = stack_to_reply(state, 1, resp);
                        assert_eq!(ffi::lua_gettop(state), top, "{src}: stack balance");
                    })
                    .unwrap();
                }
                if let Some(got) = got {
                    raw_taken += 1;
                    assert_eq!(got, expected, "{src} in RESP{resp}");
                }
            }
        }
        // The common shapes are read off the stack, the rare ones left to mlua.
        assert_eq!(raw_taken, 2 * 21);
    }
}
