//! `cmsgpack`: lua-cmsgpack 0.4.0, the MessagePack library Redis loads for scripts
//! (BullMQ packs job options with it). Written from its behaviour in Redis 7.0.15:
//! - `pack(v, ...)` concatenates each value's encoding. Numbers with an exact 64-bit
//!   integer value are the smallest integer form, others a float when a float holds
//!   them exactly, else a double; strings are `fixstr`/`str8`/`str16`/`str32`; a table
//!   whose keys are exactly 1..n is an array, any other a map (in `next` order); a
//!   table nested 16 deep, and anything else (functions, nil...), is `nil`.
//! - `unpack(s)` returns every value in `s`; `unpack_one(s [, offset])` and
//!   `unpack_limit(s, limit [, offset])` return the offset after what they read (-1 at
//!   the end) then the values. Unsigned and signed integers of every width, floats,
//!   doubles, `str8`/16/32, arrays and maps; any other byte is a format error.
//! - Lua 5.1's C stack holds 8000 slots: a nesting of about 4000 levels, or about 8000
//!   values at once, fails as it does in Redis (`stack overflow (...)`), so a hostile
//!   payload cannot exhaust our own stack either.

use super::cjson::at;
use super::luaarg::{check_string, type_name};
use mlua::{Lua, Table, Value, Variadic};

/// Deepest table nesting `pack` follows (`LUACMSGPACK_MAX_NESTING`).
const MAX_NESTING: usize = 16;
/// Slots of the Lua C stack a C function may use (`LUAI_MAXCSTACK`).
const MAX_STACK: usize = 8000;

const ARRAY_OVERFLOW: &str = "stack overflow (in function mp_decode_to_lua_array)";
const TYPE_OVERFLOW: &str =
    "stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)";

pub fn install(lua: &Lua, globals: &Table) -> mlua::Result<()> {
    let t = lua.create_table()?;
    t.set(
        "pack",
        lua.create_function(|lua, args: Variadic<Value>| {
            if args.is_empty() {
                return Err(at(
                    lua,
                    "bad argument #0 to 'pack' (MessagePack pack needs input.)",
                ));
            }
            // lua_checkstack(L, nargs), with the arguments already on the stack.
            if 2 * args.len() > MAX_STACK {
                return Err(at(
                    lua,
                    "bad argument #0 to 'pack' (Too many arguments for MessagePack pack.)",
                ));
            }
            let mut out = Vec::new();
            for v in args.iter() {
                encode(v, 0, &mut out)?;
            }
            lua.create_string(&out)
        })?,
    )?;
    t.set(
        "unpack",
        lua.create_function(|lua, args: Variadic<Value>| {
            let s = check_string(lua, &args, 0, "unpack")?;
            unpack(lua, &s, 0, 0)
        })?,
    )?;
    t.set(
        "unpack_one",
        lua.create_function(|lua, args: Variadic<Value>| {
            let offset = opt_integer(lua, &args, 1, "unpack_one")?.unwrap_or(0);
            let s = check_string(lua, &args, 0, "unpack_one")?;
            unpack(lua, &s, 1, offset)
        })?,
    )?;
    t.set(
        "unpack_limit",
        lua.create_function(|lua, args: Variadic<Value>| {
            let Some(limit) = opt_integer(lua, &args, 1, "unpack_limit")? else {
                return Err(at(
                    lua,
                    "bad argument #2 to 'unpack_limit' (number expected, got no value)",
                ));
            };
            let offset = opt_integer(lua, &args, 2, "unpack_limit")?.unwrap_or(0);
            let s = check_string(lua, &args, 0, "unpack_limit")?;
            unpack(lua, &s, limit, offset)
        })?,
    )?;
    t.set("_NAME", "cmsgpack")?;
    t.set("_VERSION", "lua-cmsgpack 0.4.0")?;
    t.set("_COPYRIGHT", "Copyright (C) 2012, Salvatore Sanfilippo")?;
    t.set("_DESCRIPTION", "MessagePack C implementation for Lua")?;
    globals.set("cmsgpack", t)
}

/// `luaL_optinteger(L, i + 1, ...)`: None when absent or nil.
fn opt_integer(lua: &Lua, args: &[Value], i: usize, name: &str) -> mlua::Result<Option<i64>> {
    match args.get(i) {
        None | Some(Value::Nil) => Ok(None),
        Some(v) => match lua.coerce_number(v.clone())? {
            Some(n) => Ok(Some(n as i64)),
            None => Err(at(
                lua,
                &format!(
                    "bad argument #{} to '{name}' (number expected, got {})",
                    i + 1,
                    type_name(Some(v))
                ),
            )),
        },
    }
}

fn encode(v: &Value, level: usize, out: &mut Vec<u8>) -> mlua::Result<()> {
    match v {
        Value::String(s) => bytes(out, &s.as_bytes()),
        Value::Boolean(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Integer(n) => int(out, *n),
        Value::Number(n) => number(out, *n),
        Value::Table(t) if level < MAX_NESTING => table(t, level, out)?,
        _ => out.push(0xc0),
    }
    Ok(())
}

/// A number with an exact 64-bit integer value as an integer, else a float or double.
fn number(out: &mut Vec<u8>, n: f64) {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if n.is_finite() && n.fract() == 0.0 && (-TWO_63..TWO_63).contains(&n) {
        int(out, n as i64);
    } else if (n as f32) as f64 == n {
        out.push(0xca);
        out.extend_from_slice(&(n as f32).to_be_bytes());
    } else {
        out.push(0xcb);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn int(out: &mut Vec<u8>, n: i64) {
    match n {
        0..=127 => out.push(n as u8),
        128..=0xff => out.extend_from_slice(&[0xcc, n as u8]),
        0x100..=0xffff => {
            out.push(0xcd);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(0xce);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
        0x1_0000_0000.. => {
            out.push(0xcf);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
        -32..=-1 => out.push(n as i8 as u8),
        -128..=-33 => out.extend_from_slice(&[0xd0, n as i8 as u8]),
        -32768..=-129 => {
            out.push(0xd1);
            out.extend_from_slice(&(n as i16).to_be_bytes());
        }
        -2_147_483_648..=-32769 => {
            out.push(0xd2);
            out.extend_from_slice(&(n as i32).to_be_bytes());
        }
        _ => {
            out.push(0xd3);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

fn bytes(out: &mut Vec<u8>, s: &[u8]) {
    let n = s.len();
    if n < 32 {
        out.push(0xa0 | n as u8);
    } else if n <= 0xff {
        out.extend_from_slice(&[0xd9, n as u8]);
    } else if n <= 0xffff {
        out.push(0xda);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
    out.extend_from_slice(s);
}

/// A container header: the fix form (`fix | n`) up to 15, else 16 or 32 bits.
fn header(out: &mut Vec<u8>, n: usize, fix: u8, b16: u8) {
    if n <= 15 {
        out.push(fix | n as u8);
    } else if n <= 0xffff {
        out.push(b16);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(b16 + 1);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

fn table(t: &Table, level: usize, out: &mut Vec<u8>) -> mlua::Result<()> {
    // An array when the keys are exactly 1..n (positive numbers with a C `int`
    // value, as many as the largest).
    let (mut count, mut max, mut array) = (0i64, 0i64, true);
    for pair in t.clone().pairs::<Value, Value>() {
        let (k, _) = pair?;
        let n = match k {
            Value::Integer(i) => i as f64,
            Value::Number(n) => n,
            _ => {
                array = false;
                break;
            }
        };
        if n <= 0.0 || n.fract() != 0.0 || n > i32::MAX as f64 {
            array = false;
            break;
        }
        max = max.max(n as i64);
        count += 1;
    }
    if array && max == count {
        let len = t.raw_len();
        header(out, len, 0x90, 0xdc);
        for j in 1..=len {
            encode(&t.get::<Value>(j)?, level + 1, out)?;
        }
    } else {
        // Counted, then written pair by pair: holding every pair at once holds as
        // many Lua references, and past the binding's limit (8000 in Lua 5.1) a map
        // of 100,000 keys failed with "C stack overflow".
        let mut len = 0;
        for pair in t.clone().pairs::<Value, Value>() {
            pair?;
            len += 1;
        }
        header(out, len, 0x80, 0xde);
        for pair in t.clone().pairs::<Value, Value>() {
            let (k, v) = pair?;
            encode(&k, level + 1, out)?;
            encode(&v, level + 1, out)?;
        }
    }
    Ok(())
}

/// Why decoding stopped.
enum Stop {
    Eof,
    BadFormat,
    /// The Lua stack would overflow: the message.
    Overflow(&'static str),
    Lua(mlua::Error),
}

impl From<mlua::Error> for Stop {
    fn from(e: mlua::Error) -> Stop {
        Stop::Lua(e)
    }
}

/// A cursor over the input, with the Lua stack slots the decoding would use.
struct Decoder<'a> {
    lua: &'a Lua,
    s: &'a [u8],
    at: usize,
    /// Slots in use, counted from the function's first argument (which is one).
    top: usize,
}

impl Decoder<'_> {
    fn need(&self, n: usize) -> Result<&[u8], Stop> {
        self.s.get(self.at..self.at + n).ok_or(Stop::Eof)
    }

    fn be(&mut self, skip: usize, n: usize) -> Result<u64, Stop> {
        let b = self.need(skip + n)?[skip..].to_vec();
        self.at += skip + n;
        Ok(b.iter().fold(0u64, |acc, &x| (acc << 8) | x as u64))
    }

    fn check(&self, n: usize, msg: &'static str) -> Result<(), Stop> {
        if self.top + n > MAX_STACK {
            return Err(Stop::Overflow(msg));
        }
        Ok(())
    }

    /// The start of one value (`mp_decode_to_lua_type`): a scalar, or a container
    /// whose table now takes a stack slot and whose elements follow.
    fn start(&mut self) -> Result<Item, Stop> {
        let first = *self.need(1)?.first().ok_or(Stop::Eof)?;
        self.check(1, TYPE_OVERFLOW)?;
        let num = |n: f64| Item::Scalar(Value::Number(n));
        let item = match first {
            0xcc => num(self.be(1, 1)? as f64),
            0xcd => num(self.be(1, 2)? as f64),
            0xce => num(self.be(1, 4)? as f64),
            // (Pushed through a signed lua_Integer in Redis's build: 2^64-1 is -1.)
            0xcf => num(self.be(1, 8)? as i64 as f64),
            0xd0 => num(self.be(1, 1)? as u8 as i8 as f64),
            0xd1 => num(self.be(1, 2)? as u16 as i16 as f64),
            0xd2 => num(self.be(1, 4)? as u32 as i32 as f64),
            0xd3 => num(self.be(1, 8)? as i64 as f64),
            0xc0 => {
                self.at += 1;
                Item::Scalar(Value::Nil)
            }
            0xc2 | 0xc3 => {
                self.at += 1;
                Item::Scalar(Value::Boolean(first == 0xc3))
            }
            0xca => num(f32::from_bits(self.be(1, 4)? as u32) as f64),
            0xcb => num(f64::from_bits(self.be(1, 8)?)),
            0xd9 => {
                let l = self.need(2)?[1] as usize;
                self.string(2, l)?
            }
            0xda => {
                let l = u16::from_be_bytes([self.need(3)?[1], self.need(3)?[2]]) as usize;
                self.string(3, l)?
            }
            0xdb => {
                let l = self.be(1, 4)? as usize;
                self.string(0, l)?
            }
            0xdc => {
                let l = self.be(1, 2)? as usize;
                self.open(false, l)?
            }
            0xdd => {
                let l = self.be(1, 4)? as usize;
                self.open(false, l)?
            }
            0xde => {
                let l = self.be(1, 2)? as usize;
                self.open(true, l)?
            }
            0xdf => {
                let l = self.be(1, 4)? as usize;
                self.open(true, l)?
            }
            b if b & 0x80 == 0 => {
                self.at += 1;
                num(b as f64)
            }
            b if b & 0xe0 == 0xe0 => {
                self.at += 1;
                num(b as i8 as f64)
            }
            b if b & 0xe0 == 0xa0 => self.string(1, (b & 0x1f) as usize)?,
            b if b & 0xf0 == 0x90 => {
                self.at += 1;
                self.open(false, (b & 0xf) as usize)?
            }
            b if b & 0xf0 == 0x80 => {
                self.at += 1;
                self.open(true, (b & 0xf) as usize)?
            }
            _ => return Err(Stop::BadFormat),
        };
        Ok(item)
    }

    fn string(&mut self, skip: usize, len: usize) -> Result<Item, Stop> {
        self.need(skip + len)?;
        let s = self
            .lua
            .create_string(&self.s[self.at + skip..self.at + skip + len])?;
        self.at += skip + len;
        Ok(Item::Scalar(Value::String(s)))
    }

    /// A new table for a container of `len` elements (pairs, for a map).
    fn open(&mut self, map: bool, len: usize) -> Result<Item, Stop> {
        let table = self.lua.create_table()?;
        self.top += 1;
        if len == 0 {
            self.top -= 1;
            return Ok(Item::Scalar(Value::Table(table)));
        }
        if !map {
            // Before the first index is pushed.
            self.check(1, ARRAY_OVERFLOW)?;
            self.top += 1;
        }
        Ok(Item::Open(Open {
            table,
            map,
            len,
            done: 0,
            key: None,
        }))
    }

    /// One whole value, nested containers included, with an explicit stack of the
    /// open ones (a payload nests as deep as the Lua stack allows, ~4000 levels: too
    /// deep for recursion on a shard thread's stack).
    fn value(&mut self) -> Result<Value, Stop> {
        let mut open: Vec<Open> = Vec::new();
        loop {
            let mut v = match self.start()? {
                Item::Scalar(v) => v,
                Item::Open(o) => {
                    open.push(o);
                    continue;
                }
            };
            // Put `v` in its container; close the containers it completes.
            loop {
                let Some(o) = open.last_mut() else {
                    return Ok(v);
                };
                if o.map && o.key.is_none() {
                    o.key = Some(v);
                    self.top += 1;
                    break;
                }
                if o.map {
                    // Lua refuses a nil (or NaN) key, as Redis's settable would.
                    o.table.raw_set(o.key.take(), v)?;
                } else {
                    o.table.raw_set(o.done + 1, v)?;
                }
                self.top -= 1; // the index, or the key
                o.done += 1;
                if o.done < o.len {
                    if !o.map {
                        self.check(1, ARRAY_OVERFLOW)?;
                        self.top += 1;
                    }
                    break;
                }
                let Some(closed) = open.pop() else {
                    return Err(Stop::BadFormat);
                };
                self.top -= 1; // its table
                v = Value::Table(closed.table);
            }
        }
    }
}

/// What starts at the cursor: a whole scalar, or a container still to fill.
enum Item {
    Scalar(Value),
    Open(Open),
}

/// A container being decoded.
struct Open {
    table: Table,
    map: bool,
    len: usize,
    /// Elements (pairs) set so far.
    done: usize,
    /// A map's key waiting for its value.
    key: Option<Value>,
}

/// `mp_unpack_full`: `limit` 0 with `offset` 0 decodes everything and returns only
/// the values; otherwise the next offset (-1 at the end) comes first.
fn unpack(lua: &Lua, s: &[u8], limit: i64, offset: i64) -> mlua::Result<Variadic<Value>> {
    let decode_all = limit == 0 && offset == 0;
    if offset < 0 || limit < 0 {
        return Err(at(
            lua,
            &format!(
                "Invalid request to unpack with offset of {offset} and limit of {}.",
                s.len()
            ),
        ));
    }
    if offset as u64 > s.len() as u64 {
        return Err(at(
            lua,
            &format!(
                "Start offset {offset} greater than input length {}.",
                s.len()
            ),
        ));
    }
    let limit = if decode_all { i64::MAX } else { limit };
    let mut d = Decoder {
        lua,
        s,
        at: offset as usize,
        top: 1,
    };
    let mut values = Variadic::new();
    while d.at < s.len() && (values.len() as i64) < limit {
        match d.value() {
            Ok(v) => {
                values.push(v);
                d.top += 1;
            }
            Err(Stop::Eof) => return Err(at(lua, "Missing bytes in input.")),
            Err(Stop::BadFormat) => return Err(at(lua, "Bad data format in input.")),
            Err(Stop::Overflow(msg)) => return Err(at(lua, msg)),
            Err(Stop::Lua(e)) => return Err(e),
        }
    }
    if !decode_all {
        let next = if d.at >= s.len() { -1 } else { d.at as i64 };
        values.insert(0, Value::Number(next as f64));
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packed(v: Value) -> Vec<u8> {
        let mut out = Vec::new();
        encode(&v, 0, &mut out).unwrap();
        out
    }

    #[test]
    fn numbers_take_redis_forms() {
        // cmsgpack.pack(...) in redis-server 7.0.15.
        let cases: [(f64, &[u8]); 10] = [
            (0.5, &[0xca, 0x3f, 0, 0, 0]),
            (
                1e100,
                &[0xcb, 0x54, 0xb2, 0x49, 0xad, 0x25, 0x94, 0xc3, 0x7d],
            ),
            (-1.0, &[0xff]),
            (-33.0, &[0xd0, 0xdf]),
            (300.0, &[0xcd, 0x01, 0x2c]),
            (70000.0, &[0xce, 0, 1, 0x11, 0x70]),
            (5e9, &[0xcf, 0, 0, 0, 1, 0x2a, 0x05, 0xf2, 0]),
            (-5e9, &[0xd3, 0xff, 0xff, 0xff, 0xfe, 0xd5, 0xfa, 0x0e, 0]),
            (9_223_372_036_854_775_808.0, &[0xca, 0x5f, 0, 0, 0]),
            (127.0, &[0x7f]),
        ];
        for (n, want) in cases {
            assert_eq!(packed(Value::Number(n)), want, "{n}");
        }
    }

    #[test]
    fn values_round_trip() {
        let lua = Lua::new();
        let t = lua
            .load("return {1, 'two', {a = {b = {}}}, true, false, -2.25}")
            .eval::<Value>()
            .unwrap();
        let bytes = packed(t);
        let back = unpack(&lua, &bytes, 0, 0).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(packed(back[0].clone()), bytes);
    }
}
