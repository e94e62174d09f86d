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

use mlua::{LightUserData, Lua, MultiValue, Table, Value};
use std::sync::{Arc, LazyLock, Mutex};

/// One `cjson` instance's settings (lua-cjson's `json_config_t`), changed by its
/// configuration functions (`cjson.encode_max_depth(5)`) for every later call on
/// that instance; `cjson.new()` makes an instance with the defaults.
#[derive(Clone, Copy, Debug)]
struct Config {
    /// `encode_sparse_array(convert, ratio, safe)`: an array whose largest index is
    /// over `ratio` times its items and over `safe` is excessively sparse: an error,
    /// or an object when `convert` (ratio 0: never).
    sparse_convert: bool,
    sparse_ratio: i64,
    sparse_safe: i64,
    encode_max_depth: i64,
    decode_max_depth: i64,
    /// `encode_invalid_numbers`: NaN and Inf are an error (0), written as `nan` /
    /// `inf` (1), or as `null` (2).
    encode_invalid: i64,
    /// `decode_invalid_numbers`: accept `nan`, `inf`, hex, `+1` and leading zeros.
    decode_invalid: bool,
    encode_precision: i64,
    /// `encode_keep_buffer`: whether lua-cjson reuses its encoding buffer; kept and
    /// reported, with nothing to change here.
    keep_buffer: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            sparse_convert: false,
            sparse_ratio: 2,
            sparse_safe: 10,
            encode_max_depth: 1000,
            decode_max_depth: 1000,
            encode_invalid: 0,
            decode_invalid: true,
            encode_precision: 14,
            keep_buffer: true,
        }
    }
}

/// Settings shared by every core's interpreter of one kind: Redis has one
/// interpreter for scripts and one for functions, so a script's
/// `cjson.encode_max_depth(5)` holds for the scripts after it wherever they run.
type Shared = Arc<Mutex<Config>>;

static SCRIPTS: LazyLock<Shared> = LazyLock::new(Shared::default);
static FUNCTIONS: LazyLock<Shared> = LazyLock::new(Shared::default);

/// Install `cjson` into `globals` of an interpreter for scripts (`functions`
/// false) or functions.
pub fn install(lua: &Lua, globals: &Table, functions: bool) -> mlua::Result<()> {
    let shared = if functions { &FUNCTIONS } else { &SCRIPTS };
    globals.set("cjson", module(lua, Shared::clone(shared))?)
}

/// SCRIPT FLUSH: Redis starts a new interpreter for scripts, with cjson's defaults.
pub fn reset_for_scripts() {
    *SCRIPTS.lock().unwrap_or_else(|e| e.into_inner()) = Config::default();
}

fn get(cfg: &Shared) -> Config {
    *cfg.lock().unwrap_or_else(|e| e.into_inner())
}

/// A `cjson` table whose settings are `cfg`'s.
fn module(lua: &Lua, cfg: Shared) -> mlua::Result<Table> {
    let cjson = lua.create_table()?;
    cjson.set("null", null())?;
    cjson.set("_NAME", "cjson")?;
    cjson.set("_VERSION", "2.1.0")?;
    let c = cfg.clone();
    cjson.set(
        "encode",
        lua.create_function(move |lua, args: MultiValue| {
            if args.len() != 1 {
                return Err(at(lua, "bad argument #1 to 'encode' (expected 1 argument)"));
            }
            let mut out = Vec::new();
            encode(lua, &get(&c), &args[0], 0, &mut out)?;
            lua.create_string(out)
        })?,
    )?;
    let c = cfg.clone();
    cjson.set(
        "decode",
        lua.create_function(move |lua, args: MultiValue| {
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
                cfg: get(&c),
            };
            let v = p.value(0)?;
            p.skip_ws();
            if p.pos < text.len() {
                return Err(p.error("the end", &p.token_name()));
            }
            Ok(v)
        })?,
    )?;
    options(lua, &cjson, &cfg)?;
    cjson.set(
        "new",
        lua.create_function(|lua, ()| module(lua, Shared::default()))?,
    )?;
    Ok(cjson)
}

/// The configuration functions. Each takes its settings (none: only report them),
/// checks them as lua-cjson does, and returns the settings now in force.
fn options(lua: &Lua, cjson: &Table, cfg: &Shared) -> mlua::Result<()> {
    type Apply = fn(&Lua, &'static str, &[Value], &mut Config) -> mlua::Result<MultiValue>;
    let all: [(&'static str, usize, Apply); 7] = [
        ("encode_sparse_array", 3, |lua, name, a, c| {
            Ok(MultiValue::from_iter([
                flag(lua, name, a, 0, &mut c.sparse_convert)?,
                int(lua, name, a, 1, &mut c.sparse_ratio, 0, i32::MAX as i64)?,
                int(lua, name, a, 2, &mut c.sparse_safe, 0, i32::MAX as i64)?,
            ]))
        }),
        ("encode_max_depth", 1, |lua, name, a, c| {
            let v = int(lua, name, a, 0, &mut c.encode_max_depth, 1, i32::MAX as i64)?;
            Ok(MultiValue::from_iter([v]))
        }),
        ("decode_max_depth", 1, |lua, name, a, c| {
            let v = int(lua, name, a, 0, &mut c.decode_max_depth, 1, i32::MAX as i64)?;
            Ok(MultiValue::from_iter([v]))
        }),
        ("encode_number_precision", 1, |lua, name, a, c| {
            let v = int(lua, name, a, 0, &mut c.encode_precision, 1, 14)?;
            Ok(MultiValue::from_iter([v]))
        }),
        ("encode_keep_buffer", 1, |lua, name, a, c| {
            Ok(MultiValue::from_iter([flag(
                lua,
                name,
                a,
                0,
                &mut c.keep_buffer,
            )?]))
        }),
        ("encode_invalid_numbers", 1, |lua, name, a, c| {
            let v = choice(
                lua,
                name,
                a,
                0,
                &mut c.encode_invalid,
                &["off", "on", "null"],
            )?;
            Ok(MultiValue::from_iter([v]))
        }),
        ("decode_invalid_numbers", 1, |lua, name, a, c| {
            Ok(MultiValue::from_iter([flag(
                lua,
                name,
                a,
                0,
                &mut c.decode_invalid,
            )?]))
        }),
    ];
    for (name, max, apply) in all {
        let cfg = cfg.clone();
        let f = lua.create_function(move |lua, args: MultiValue| {
            if args.len() > max {
                return Err(at(
                    lua,
                    &format!(
                        "bad argument #{} to '{name}' (found too many arguments)",
                        max + 1
                    ),
                ));
            }
            let args: Vec<Value> = args.into_iter().collect();
            let mut c = cfg.lock().unwrap_or_else(|e| e.into_inner());
            apply(lua, name, &args, &mut c)
        })?;
        cjson.set(name, f)?;
    }
    Ok(())
}

/// lua-cjson's `json_integer_option`: argument `i` (if given) as an integer within
/// `min..=max`; the setting.
fn int(
    lua: &Lua,
    name: &str,
    args: &[Value],
    i: usize,
    setting: &mut i64,
    min: i64,
    max: i64,
) -> mlua::Result<Value> {
    let value = match args.get(i) {
        None | Some(Value::Nil) => None,
        Some(Value::Integer(n)) => Some(*n),
        Some(Value::Number(n)) => Some(*n as i64),
        Some(Value::String(s)) => {
            match s.to_str().ok().and_then(|t| t.trim().parse::<f64>().ok()) {
                Some(n) => Some(n as i64),
                None => return Err(expected(lua, name, i, "number", "string")),
            }
        }
        Some(other) => return Err(expected(lua, name, i, "number", other.type_name())),
    };
    if let Some(v) = value {
        if !(min..=max).contains(&v) {
            return Err(at(
                lua,
                &format!("bad argument #1 to '{name}' (expected integer between {min} and {max})"),
            ));
        }
        *setting = v;
    }
    Ok(Value::Integer(*setting))
}

/// lua-cjson's `json_enum_option` for an on/off setting: a boolean, or "on" / "off".
fn flag(
    lua: &Lua,
    name: &str,
    args: &[Value],
    i: usize,
    setting: &mut bool,
) -> mlua::Result<Value> {
    let mut n = i64::from(*setting);
    choice(lua, name, args, i, &mut n, &["off", "on"])?;
    *setting = n == 1;
    Ok(Value::Boolean(*setting))
}

/// lua-cjson's `json_enum_option`: argument `i` (if given) as a boolean (off / on) or
/// one of `names`; the setting, as a boolean when off or on, else its name.
fn choice(
    lua: &Lua,
    name: &str,
    args: &[Value],
    i: usize,
    setting: &mut i64,
    names: &[&str],
) -> mlua::Result<Value> {
    match args.get(i) {
        None | Some(Value::Nil) => {}
        Some(Value::Boolean(b)) => *setting = i64::from(*b),
        Some(v @ (Value::String(_) | Value::Integer(_) | Value::Number(_))) => {
            let text = match v {
                Value::String(s) => String::from_utf8_lossy(&s.as_bytes()).into_owned(),
                Value::Integer(n) => n.to_string(),
                Value::Number(n) => super::run::format_g(*n, 14),
                _ => unreachable!("matched above"),
            };
            match names.iter().position(|n| *n == text) {
                Some(p) => *setting = p as i64,
                None => {
                    return Err(at(
                        lua,
                        &format!(
                            "bad argument #{} to '{name}' (invalid option '{text}')",
                            i + 1
                        ),
                    ))
                }
            }
        }
        Some(other) => return Err(expected(lua, name, i, "string", other.type_name())),
    }
    Ok(match *setting {
        0 | 1 => Value::Boolean(*setting == 1),
        n => Value::String(lua.create_string(names[n as usize])?),
    })
}

/// `luaL_typerror`'s words for argument `i`.
fn expected(lua: &Lua, name: &str, i: usize, want: &str, got: &str) -> mlua::Error {
    at(
        lua,
        &format!(
            "bad argument #{} to '{name}' ({want} expected, got {got})",
            i + 1
        ),
    )
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

fn encode(lua: &Lua, cfg: &Config, v: &Value, depth: i64, out: &mut Vec<u8>) -> mlua::Result<()> {
    match v {
        Value::Nil => out.extend_from_slice(b"null"),
        Value::LightUserData(u) if u.0.is_null() => out.extend_from_slice(b"null"),
        Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        // Lua 5.1 has only doubles: cjson prints every number with `%.14g`
        // (123456789012345 is 1.2345678901234e+14).
        Value::Integer(n) => number(lua, cfg, *n as f64, out)?,
        Value::Number(n) => number(lua, cfg, *n, out)?,
        Value::String(s) => escape(&s.as_bytes(), out),
        Value::Table(t) => {
            if depth + 1 > cfg.encode_max_depth {
                return Err(at(
                    lua,
                    &format!("Cannot serialise, excessive nesting ({})", depth + 1),
                ));
            }
            match array_length(lua, cfg, t)? {
                Some(n) => {
                    out.push(b'[');
                    for i in 1..=n {
                        if i > 1 {
                            out.push(b',');
                        }
                        encode(lua, cfg, &t.raw_get::<Value>(i)?, depth + 1, out)?;
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
                            Value::Integer(_) | Value::Number(_) => {
                                let n = match k {
                                    Value::Integer(n) => n as f64,
                                    Value::Number(n) => n,
                                    _ => unreachable!("matched above"),
                                };
                                out.push(b'"');
                                number(lua, cfg, n, out)?;
                                out.push(b'"');
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
                        encode(lua, cfg, &v, depth + 1, out)?;
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

/// lua-cjson's `json_append_number`: `%.<precision>g`; NaN and Inf as
/// `encode_invalid_numbers` says.
fn number(lua: &Lua, cfg: &Config, n: f64, out: &mut Vec<u8>) -> mlua::Result<()> {
    if !n.is_finite() {
        match cfg.encode_invalid {
            0 => return Err(at(lua, "Cannot serialise number: must not be NaN or Inf")),
            1 if n.is_nan() => {
                out.extend_from_slice(b"nan");
                return Ok(());
            }
            1 => {}
            _ => {
                out.extend_from_slice(b"null");
                return Ok(());
            }
        }
    }
    let text = super::run::format_g(n, cfg.encode_precision as i32);
    out.extend_from_slice(text.as_bytes());
    Ok(())
}

/// `Some(n)` if the table is an array of length n (lua-cjson's `lua_array_length`
/// with the instance's `encode_sparse_array` settings), `None` for an object.
fn array_length(lua: &Lua, cfg: &Config, t: &Table) -> mlua::Result<Option<usize>> {
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
    let (ratio, safe) = (cfg.sparse_ratio as usize, cfg.sparse_safe as usize);
    if ratio > 0 && max > items.saturating_mul(ratio) && max > safe {
        if cfg.sparse_convert {
            return Ok(None);
        }
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
    cfg: Config,
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

    fn value(&mut self, depth: i64) -> mlua::Result<Value> {
        self.skip_ws();
        let Some(&c) = self.s.get(self.pos) else {
            return Err(self.error("value", "T_END"));
        };
        match c {
            b'{' | b'[' if depth + 1 > self.cfg.decode_max_depth => Err(at(
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
            _ if self.cfg.decode_invalid && invalid_number(&self.s[self.pos..]) => self.number(),
            _ => Err(self.error("value", &self.token_name())),
        }
    }

    /// A number token (lua-cjson: `strtod`, after refusing what strict JSON does not
    /// allow unless `decode_invalid_numbers` is on: `+1`, `0x1f`, `01`, `nan`,
    /// `inf`).
    fn number(&mut self) -> mlua::Result<Value> {
        let rest = &self.s[self.pos..];
        if !self.cfg.decode_invalid && invalid_number(rest) {
            return Err(self.error("value", "invalid number"));
        }
        match strtod(rest) {
            Some((n, len)) => {
                self.pos += len;
                Ok(Value::Number(n))
            }
            None => Err(self.error("value", "invalid number")),
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

    fn array(&mut self, depth: i64) -> mlua::Result<Value> {
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

    fn object(&mut self, depth: i64) -> mlua::Result<Value> {
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

/// lua-cjson's `json_is_invalid_number`: text `strtod` may read that strict JSON
/// does not allow (a leading `+`, hex, leading zeros, `inf`, `nan`).
fn invalid_number(s: &[u8]) -> bool {
    let s = match s.first() {
        Some(b'+') => return true,
        Some(b'-') => &s[1..],
        _ => s,
    };
    match s.first() {
        Some(b'0') => matches!(s.get(1), Some(b'x' | b'X' | b'0'..=b'9')),
        Some(&c) if c <= b'9' => false,
        _ => starts_ci(s, b"inf") || starts_ci(s, b"nan"),
    }
}

fn starts_ci(s: &[u8], word: &[u8]) -> bool {
    s.len() >= word.len() && s[..word.len()].eq_ignore_ascii_case(word)
}

/// C's `strtod` on the front of `s`: the number and how many bytes it took (decimal,
/// hex with an optional `p` exponent, `inf`, `infinity`, `nan`), or `None` when no
/// number starts there.
fn strtod(s: &[u8]) -> Option<(f64, usize)> {
    let i = usize::from(matches!(s.first(), Some(b'+' | b'-')));
    let negative = s.first() == Some(&b'-');
    let sign = |n: f64| if negative { -n } else { n };
    let rest = &s[i..];
    if starts_ci(rest, b"infinity") {
        return Some((sign(f64::INFINITY), i + 8));
    }
    if starts_ci(rest, b"inf") {
        return Some((sign(f64::INFINITY), i + 3));
    }
    if starts_ci(rest, b"nan") {
        return Some((sign(f64::NAN), i + 3));
    }
    let digits = |from: usize, hex: bool| {
        s[from..]
            .iter()
            .take_while(|c| {
                if hex {
                    c.is_ascii_hexdigit()
                } else {
                    c.is_ascii_digit()
                }
            })
            .count()
    };
    if starts_ci(rest, b"0x") {
        let (int_start, int_len) = (i + 2, digits(i + 2, true));
        let mut j = int_start + int_len;
        let mut frac_len = 0;
        if s.get(j) == Some(&b'.') {
            frac_len = digits(j + 1, true);
            if int_len + frac_len > 0 {
                j += 1 + frac_len;
            }
        }
        if int_len + frac_len > 0 {
            let mut n = 0f64;
            for &c in &s[int_start..int_start + int_len] {
                n = n * 16.0 + f64::from((c as char).to_digit(16)?);
            }
            let frac_start = int_start + int_len + 1;
            let mut scale = 1.0 / 16.0;
            for &c in &s[frac_start.min(j)..j] {
                n += f64::from((c as char).to_digit(16)?) * scale;
                scale /= 16.0;
            }
            if matches!(s.get(j), Some(b'p' | b'P')) {
                let k = j + 1 + usize::from(matches!(s.get(j + 1), Some(b'+' | b'-')));
                let e_len = digits(k, false);
                if e_len > 0 {
                    let e: i32 = std::str::from_utf8(&s[j + 1..k + e_len])
                        .ok()?
                        .parse()
                        .unwrap_or(i32::MAX);
                    n *= 2f64.powi(e);
                    j = k + e_len;
                }
            }
            return Some((sign(n), j));
        }
        // "0x" with no hex digit after: strtod reads the 0.
    }
    let int_len = digits(i, false);
    let mut j = i + int_len;
    let mut frac_len = 0;
    if s.get(j) == Some(&b'.') {
        frac_len = digits(j + 1, false);
        if int_len + frac_len > 0 {
            j += 1 + frac_len;
        }
    }
    if int_len + frac_len == 0 {
        return None;
    }
    if matches!(s.get(j), Some(b'e' | b'E')) {
        let k = j + 1 + usize::from(matches!(s.get(j + 1), Some(b'+' | b'-')));
        let e_len = digits(k, false);
        if e_len > 0 {
            j = k + e_len;
        }
    }
    let text = std::str::from_utf8(&s[..j]).ok()?;
    text.parse::<f64>().ok().map(|n| (n, j))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strtod_reads_what_c_reads() {
        assert_eq!(strtod(b"12,"), Some((12.0, 2)));
        assert_eq!(strtod(b"-1.5e3]"), Some((-1500.0, 6)));
        assert_eq!(strtod(b"1e"), Some((1.0, 1)));
        assert_eq!(strtod(b"+.5"), Some((0.5, 3)));
        assert_eq!(strtod(b"0x1F"), Some((31.0, 4)));
        assert_eq!(strtod(b"0x1.8p1"), Some((3.0, 7)));
        assert_eq!(strtod(b"0xg"), Some((0.0, 1)));
        assert_eq!(strtod(b"-Infinity"), Some((f64::NEG_INFINITY, 9)));
        assert_eq!(strtod(b"inf"), Some((f64::INFINITY, 3)));
        assert!(strtod(b"nan").is_some_and(|(n, l)| n.is_nan() && l == 3));
        assert_eq!(strtod(b"-"), None);
        assert_eq!(strtod(b"."), None);
    }

    #[test]
    fn invalid_numbers_as_lua_cjson_sees_them() {
        for s in ["+1", "0x10", "01", "-01", "nan", "-Inf", "NaN"] {
            assert!(invalid_number(s.as_bytes()), "{s}");
        }
        for s in ["0", "-0.5", "10", "1e5", ".5"] {
            assert!(!invalid_number(s.as_bytes()), "{s}");
        }
    }
}
