//! `cjson`: the JSON library Redis loads for scripts (lua-cjson 2.1.0's behaviour with
//! its default settings), written against mlua.
//!
//! Encoding follows lua-cjson: a table whose keys are exactly the integers 1..n (holes
//! allowed unless the array is "excessively sparse": max index > 2 × items and > 10)
//! is an array, any other table an object (number keys written as strings), an empty
//! table `{}`; numbers as C's `%.14g`; `/` escaped as `\/`; control characters as
//! `\u00XX`; bytes ≥ 0x80 as they are; nesting beyond 1000 an error. Decoding gives
//! Lua numbers, strings (with `\u` escapes, surrogate pairs included, as UTF-8),
//! tables, and `cjson.null` (a NULL light userdata) for `null`. Errors carry
//! lua-cjson's words ("Expected value but found T_END at character 4").

use mlua::{LightUserData, Lua, Table, Value};

const MAX_DEPTH: usize = 1000;

/// Install `cjson` into `globals`.
pub fn install(lua: &Lua, globals: &Table) -> mlua::Result<()> {
    let cjson = lua.create_table()?;
    cjson.set("null", null())?;
    cjson.set("_NAME", "cjson")?;
    cjson.set("_VERSION", "2.1.0")?;
    cjson.set(
        "encode",
        lua.create_function(|lua, args: mlua::MultiValue| {
            if args.len() != 1 {
                return Err(at(lua, "bad argument #1 to 'encode' (expected 1 argument)"));
            }
            let mut out = Vec::new();
            encode(lua, &args[0], 0, &mut out)?;
            lua.create_string(out)
        })?,
    )?;
    cjson.set(
        "decode",
        lua.create_function(|lua, args: mlua::MultiValue| {
            let text = match (args.len(), args.front()) {
                (1, Some(Value::String(s))) => s.as_bytes().to_vec(),
                (1, Some(Value::Integer(n))) => n.to_string().into_bytes(),
                (1, Some(Value::Number(n))) => super::run::format_g(*n, 14).into_bytes(),
                (1, _) => {
                    return Err(at(lua, "bad argument #1 to 'decode' (string expected)"));
                }
                _ => return Err(at(lua, "bad argument #1 to 'decode' (expected 1 argument)")),
            };
            let mut p = Parser {
                s: &text,
                pos: 0,
                lua,
            };
            let v = p.value(0)?;
            p.skip_ws();
            if p.pos < text.len() {
                return Err(p.error("the end", &p.token_name()));
            }
            Ok(v)
        })?,
    )?;
    globals.set("cjson", cjson)?;
    Ok(())
}

fn null() -> Value {
    Value::LightUserData(LightUserData(std::ptr::null_mut()))
}

/// A runtime error with the calling script's position, as `luaL_error` words it.
pub fn at(lua: &Lua, msg: &str) -> mlua::Error {
    let place = lua.inspect_stack(1).and_then(|frame| {
        let line = frame.curr_line();
        let src = frame.source().short_src.map(|s| s.into_owned());
        match (src, line) {
            (Some(src), line) if line > 0 => Some(format!("{src}:{line}: ")),
            _ => None,
        }
    });
    mlua::Error::RuntimeError(format!("{}{msg}", place.unwrap_or_default()))
}

fn encode(lua: &Lua, v: &Value, depth: usize, out: &mut Vec<u8>) -> mlua::Result<()> {
    match v {
        Value::Nil => out.extend_from_slice(b"null"),
        Value::LightUserData(u) if u.0.is_null() => out.extend_from_slice(b"null"),
        Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        // Lua 5.1 has only doubles: cjson prints every number with `%.14g`
        // (123456789012345 is 1.2345678901234e+14).
        Value::Integer(n) => out.extend_from_slice(super::run::format_g(*n as f64, 14).as_bytes()),
        Value::Number(n) => {
            if !n.is_finite() {
                return Err(at(lua, "Cannot serialise number: must not be NaN or Inf"));
            }
            out.extend_from_slice(super::run::format_g(*n, 14).as_bytes());
        }
        Value::String(s) => escape(&s.as_bytes(), out),
        Value::Table(t) => {
            if depth + 1 > MAX_DEPTH {
                return Err(at(
                    lua,
                    &format!("Cannot serialise, excessive nesting ({})", depth + 1),
                ));
            }
            match array_length(lua, t)? {
                Some(n) => {
                    out.push(b'[');
                    for i in 1..=n {
                        if i > 1 {
                            out.push(b',');
                        }
                        encode(lua, &t.raw_get::<Value>(i)?, depth + 1, out)?;
                    }
                    out.push(b']');
                }
                None => {
                    out.push(b'{');
                    let mut first = true;
                    for pair in t.clone().pairs::<Value, Value>() {
                        let (k, v) = pair?;
                        if !first {
                            out.push(b',');
                        }
                        first = false;
                        match &k {
                            Value::String(s) => escape(&s.as_bytes(), out),
                            Value::Integer(n) => {
                                escape(super::run::format_g(*n as f64, 14).as_bytes(), out)
                            }
                            Value::Number(n) => {
                                escape(super::run::format_g(*n, 14).as_bytes(), out)
                            }
                            other => {
                                return Err(at(
                                    lua,
                                    &format!(
                                        "Cannot serialise {}: table key must be a number or string",
                                        other.type_name()
                                    ),
                                ))
                            }
                        }
                        out.push(b':');
                        encode(lua, &v, depth + 1, out)?;
                    }
                    out.push(b'}');
                }
            }
        }
        other => {
            return Err(at(
                lua,
                &format!("Cannot serialise {}: type not supported", other.type_name()),
            ))
        }
    }
    Ok(())
}

/// `Some(n)` if the table is an array of length n (lua-cjson's `lua_array_length`
/// with `encode_sparse_array(false, 2, 10)`), `None` for an object.
fn array_length(lua: &Lua, t: &Table) -> mlua::Result<Option<usize>> {
    let (mut max, mut items) = (0usize, 0usize);
    for pair in t.clone().pairs::<Value, Value>() {
        let (k, _) = pair?;
        let index = match k {
            Value::Integer(n) if n >= 1 => n as usize,
            Value::Number(n) if n >= 1.0 && n.fract() == 0.0 => n as usize,
            _ => return Ok(None),
        };
        max = max.max(index);
        items += 1;
    }
    if items == 0 {
        return Ok(None);
    }
    if max > items * 2 && max > 10 {
        return Err(at(lua, "Cannot serialise table: excessively sparse array"));
    }
    Ok(Some(max))
}

fn escape(s: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &b in s {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'/' => out.extend_from_slice(b"\\/"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            0..=0x1f | 0x7f => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    lua: &'a Lua,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.pos < self.s.len() && matches!(self.s[self.pos], b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
    }

    /// lua-cjson's name for the token at the current position.
    fn token_name(&self) -> String {
        match self.s.get(self.pos) {
            None => "T_END".into(),
            Some(b'{') => "T_OBJ_BEGIN".into(),
            Some(b'}') => "T_OBJ_END".into(),
            Some(b'[') => "T_ARR_BEGIN".into(),
            Some(b']') => "T_ARR_END".into(),
            Some(b',') => "T_COMMA".into(),
            Some(b':') => "T_COLON".into(),
            Some(b'"') => "T_STRING".into(),
            Some(b'-' | b'0'..=b'9') => "T_NUMBER".into(),
            Some(_) if self.s[self.pos..].starts_with(b"true") => "T_BOOLEAN".into(),
            Some(_) if self.s[self.pos..].starts_with(b"false") => "T_BOOLEAN".into(),
            Some(_) if self.s[self.pos..].starts_with(b"null") => "T_NULL".into(),
            Some(_) => "invalid token".into(),
        }
    }

    fn error(&self, expected: &str, found: &str) -> mlua::Error {
        at(
            self.lua,
            &format!(
                "Expected {expected} but found {found} at character {}",
                self.pos + 1
            ),
        )
    }

    fn value(&mut self, depth: usize) -> mlua::Result<Value> {
        self.skip_ws();
        let Some(&c) = self.s.get(self.pos) else {
            return Err(self.error("value", "T_END"));
        };
        match c {
            b'{' | b'[' if depth + 1 > MAX_DEPTH => Err(at(
                self.lua,
                &format!(
                    "Found too many nested data structures ({}) at character {}",
                    depth + 1,
                    self.pos + 1
                ),
            )),
            b'{' => self.object(depth),
            b'[' => self.array(depth),
            b'"' => Ok(Value::String(self.lua.create_string(self.string()?)?)),
            b'-' | b'0'..=b'9' => self.number(),
            _ if self.s[self.pos..].starts_with(b"true") => {
                self.pos += 4;
                Ok(Value::Boolean(true))
            }
            _ if self.s[self.pos..].starts_with(b"false") => {
                self.pos += 5;
                Ok(Value::Boolean(false))
            }
            _ if self.s[self.pos..].starts_with(b"null") => {
                self.pos += 4;
                Ok(null())
            }
            _ => Err(self.error("value", &self.token_name())),
        }
    }

    fn number(&mut self) -> mlua::Result<Value> {
        let start = self.pos;
        while self.pos < self.s.len()
            && matches!(
                self.s[self.pos],
                b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'
            )
        {
            self.pos += 1;
        }
        let text = std::str::from_utf8(&self.s[start..self.pos]).unwrap_or("");
        match text.parse::<f64>() {
            Ok(n) => Ok(Value::Number(n)),
            Err(_) => {
                self.pos = start;
                Err(self.error("value", "invalid number"))
            }
        }
    }

    fn string(&mut self) -> mlua::Result<Vec<u8>> {
        self.pos += 1; // the opening quote
        let mut out = Vec::new();
        loop {
            let Some(&c) = self.s.get(self.pos) else {
                return Err(self.error("value", "invalid token"));
            };
            self.pos += 1;
            match c {
                b'"' => return Ok(out),
                b'\\' => {
                    let Some(&e) = self.s.get(self.pos) else {
                        return Err(self.error("value", "invalid token"));
                    };
                    self.pos += 1;
                    match e {
                        b'"' | b'\\' | b'/' => out.push(e),
                        b'b' => out.push(0x08),
                        b'f' => out.push(0x0c),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let mut cp = self.hex4()?;
                            if (0xd800..0xdc00).contains(&cp)
                                && self.s[self.pos..].starts_with(b"\\u")
                            {
                                self.pos += 2;
                                let low = self.hex4()?;
                                cp = 0x10000
                                    + ((cp - 0xd800) << 10)
                                    + (low.wrapping_sub(0xdc00) & 0x3ff);
                            }
                            let ch = char::from_u32(cp).unwrap_or('\u{fffd}');
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        _ => return Err(self.error("value", "invalid escape code")),
                    }
                }
                _ => out.push(c),
            }
        }
    }

    fn hex4(&mut self) -> mlua::Result<u32> {
        let digits = self.s.get(self.pos..self.pos + 4).unwrap_or_default();
        let text = std::str::from_utf8(digits).unwrap_or("");
        match u32::from_str_radix(text, 16) {
            Ok(v) if text.len() == 4 => {
                self.pos += 4;
                Ok(v)
            }
            _ => Err(self.error("value", "invalid unicode escape code")),
        }
    }

    fn array(&mut self, depth: usize) -> mlua::Result<Value> {
        self.pos += 1;
        let t = self.lua.create_table()?;
        self.skip_ws();
        if self.s.get(self.pos) == Some(&b']') {
            self.pos += 1;
            return Ok(Value::Table(t));
        }
        let mut i = 1;
        loop {
            let v = self.value(depth + 1)?;
            t.raw_set(i, v)?;
            i += 1;
            self.skip_ws();
            match self.s.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::Table(t));
                }
                _ => return Err(self.error("comma or array end", &self.token_name())),
            }
        }
    }

    fn object(&mut self, depth: usize) -> mlua::Result<Value> {
        self.pos += 1;
        let t = self.lua.create_table()?;
        self.skip_ws();
        if self.s.get(self.pos) == Some(&b'}') {
            self.pos += 1;
            return Ok(Value::Table(t));
        }
        loop {
            self.skip_ws();
            if self.s.get(self.pos) != Some(&b'"') {
                return Err(self.error("object key string", &self.token_name()));
            }
            let key = self.string()?;
            self.skip_ws();
            if self.s.get(self.pos) != Some(&b':') {
                return Err(self.error("colon", &self.token_name()));
            }
            self.pos += 1;
            let v = self.value(depth + 1)?;
            t.raw_set(self.lua.create_string(key)?, v)?;
            self.skip_ws();
            match self.s.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Value::Table(t));
                }
                _ => return Err(self.error("comma or object end", &self.token_name())),
            }
        }
    }
}
