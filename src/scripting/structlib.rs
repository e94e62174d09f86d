//! `struct`: Roberto Ierusalimschy's struct library as Redis 7.0 loads it for scripts
//! (`struct.pack`, `struct.unpack`, `struct.size`), with the sizes of x86-64 Linux,
//! where Redis runs: `b`/`B` 1 byte, `h`/`H` 2, `i`/`I` 4 (or `iN`, N up to 32), `l`/`L`
//! and `T` 8, `f` 4, `d` 8; `cN` a fixed string (`c0` in unpack: the length is the
//! previous number), `s` a zero-terminated string, `x` a pad byte; `<` `>` endianness
//! (little by default), `!N` the maximum alignment (1 by default, `!` alone 8).
//! Integers go through a C `long` and numbers through a double, as there.

use super::cjson::at;
use super::convert::c_long;
use super::luaarg::{bad_arg, check_number, check_string};
use mlua::{Lua, Table, Value, Variadic};

/// `MAXINTSIZE`.
const MAX_INT_SIZE: usize = 32;
/// `MAXALIGN` on x86-64: the alignment a bare `!` sets.
const MAX_ALIGN: usize = 8;

#[derive(Clone, Copy)]
struct Header {
    little: bool,
    align: usize,
}

const DEFAULT: Header = Header {
    little: true,
    align: 1,
};

/// A format string being read.
struct Format<'a> {
    f: &'a [u8],
    at: usize,
}

impl Format<'_> {
    fn next(&mut self) -> Option<u8> {
        let c = *self.f.get(self.at)?;
        self.at += 1;
        Some(c)
    }

    /// `getnum`: the digits that follow, or `default`.
    fn number(&mut self, lua: &Lua, default: usize) -> mlua::Result<usize> {
        if !self.f.get(self.at).is_some_and(u8::is_ascii_digit) {
            return Ok(default);
        }
        let mut a: usize = 0;
        while let Some(&d) = self.f.get(self.at).filter(|d| d.is_ascii_digit()) {
            let d = (d - b'0') as usize;
            if a > i32::MAX as usize / 10 || a * 10 > i32::MAX as usize - d {
                return Err(at(lua, "integral size overflow"));
            }
            a = a * 10 + d;
            self.at += 1;
        }
        Ok(a)
    }

    /// `optsize`: the size of option `opt` (reading its number).
    fn size(&mut self, lua: &Lua, opt: u8) -> mlua::Result<usize> {
        Ok(match opt {
            b'B' | b'b' | b'x' => 1,
            b'H' | b'h' => 2,
            b'L' | b'l' | b'T' | b'd' => 8,
            b'f' => 4,
            b'c' => self.number(lua, 1)?,
            b'i' | b'I' => {
                let sz = self.number(lua, 4)?;
                if sz > MAX_INT_SIZE {
                    return Err(at(
                        lua,
                        &format!("integral size {sz} is larger than limit of {MAX_INT_SIZE}"),
                    ));
                }
                sz
            }
            _ => 0,
        })
    }

    /// `controloptions`: endianness, alignment, spaces; anything else is an error
    /// about argument 1 of `name`.
    fn control(&mut self, lua: &Lua, opt: u8, h: &mut Header, name: &str) -> mlua::Result<()> {
        match opt {
            b' ' => {}
            b'>' => h.little = false,
            b'<' => h.little = true,
            b'!' => {
                let a = self.number(lua, MAX_ALIGN)?;
                if !a.is_power_of_two() {
                    return Err(at(lua, &format!("alignment {a} is not a power of 2")));
                }
                h.align = a;
            }
            _ => {
                return Err(at(
                    lua,
                    &format!(
                        "bad argument #1 to '{name}' (invalid format option '{}')",
                        opt as char
                    ),
                ))
            }
        }
        Ok(())
    }
}

/// `gettoalign`: padding before an item of `size` at `len`.
fn to_align(len: usize, h: &Header, opt: u8, size: usize) -> usize {
    if size == 0 || opt == b'c' {
        return 0;
    }
    let size = size.min(h.align);
    size.wrapping_sub(len & (size - 1)) & (size - 1)
}

/// C's double to `unsigned long` on x86-64, as compilers emit it (2^64 gives 0).
fn c_ulong(n: f64) -> u64 {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if n < TWO_63 {
        c_long(n) as u64
    } else {
        (c_long(n - TWO_63) as u64) ^ (1 << 63)
    }
}

fn pack(lua: &Lua, args: Variadic<Value>) -> mlua::Result<mlua::String> {
    let fmt = check_string(lua, &args, 0, "pack")?;
    // The library then pushes a nil after its arguments: the first missing one is it.
    let mut args = args;
    args.push(Value::Nil);
    let mut f = Format { f: &fmt, at: 0 };
    let mut h = DEFAULT;
    let mut arg = 1; // index into args (Lua's argument arg + 1)
    let mut out: Vec<u8> = Vec::new();
    while let Some(opt) = f.next() {
        let mut size = f.size(lua, opt)?;
        let pad = to_align(out.len(), &h, opt, size);
        out.resize(out.len() + pad, 0);
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let n = check_number(lua, &args, arg, "pack")?;
                arg += 1;
                // Through a C long for negatives, an unsigned long otherwise.
                let mut value = if n < 0.0 {
                    c_long(n) as u64
                } else {
                    c_ulong(n)
                };
                let mut buf = vec![0u8; size];
                for i in 0..size {
                    let at = if h.little { i } else { size - 1 - i };
                    buf[at] = value as u8;
                    value >>= 8;
                }
                out.extend_from_slice(&buf);
            }
            b'x' => out.push(0),
            b'f' => {
                let v = check_number(lua, &args, arg, "pack")? as f32;
                arg += 1;
                out.extend_from_slice(&if h.little {
                    v.to_le_bytes()
                } else {
                    v.to_be_bytes()
                });
            }
            b'd' => {
                let v = check_number(lua, &args, arg, "pack")?;
                arg += 1;
                out.extend_from_slice(&if h.little {
                    v.to_le_bytes()
                } else {
                    v.to_be_bytes()
                });
            }
            b'c' | b's' => {
                let s = check_string(lua, &args, arg, "pack")?;
                arg += 1;
                if size == 0 {
                    size = s.len();
                }
                if s.len() < size {
                    // (The library names the argument after the string.)
                    return Err(bad_arg(lua, arg + 1, "pack", "string too short"));
                }
                out.extend_from_slice(&s[..size]);
                if opt == b's' {
                    out.push(0);
                }
            }
            _ => f.control(lua, opt, &mut h, "pack")?,
        }
    }
    lua.create_string(&out)
}

fn unpack(lua: &Lua, args: Variadic<Value>) -> mlua::Result<Variadic<Value>> {
    let fmt = check_string(lua, &args, 0, "unpack")?;
    let data = check_string(lua, &args, 1, "unpack")?;
    let ld = data.len();
    // A size_t in C: a negative offset wraps around to a huge one.
    let mut pos = match args.get(2) {
        None | Some(Value::Nil) => 1u64,
        Some(_) => check_number(lua, &args, 2, "unpack")? as i64 as u64,
    };
    if pos == 0 {
        return Err(bad_arg(lua, 3, "unpack", "offset must be 1 or greater"));
    }
    pos -= 1;
    let mut f = Format { f: &fmt, at: 0 };
    let mut h = DEFAULT;
    let mut out = Variadic::new();
    let too_short = |lua: &Lua| bad_arg(lua, 2, "unpack", "data string too short");
    while let Some(opt) = f.next() {
        let mut size = f.size(lua, opt)?;
        pos = pos.wrapping_add(to_align(pos as usize, &h, opt, size) as u64);
        if size > ld || pos > (ld - size) as u64 {
            return Err(too_short(lua));
        }
        let p = pos as usize;
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let bytes = &data[p..p + size];
                let mut l: u64 = 0;
                for i in 0..size {
                    let b = if h.little {
                        bytes[size - 1 - i]
                    } else {
                        bytes[i]
                    };
                    l = (l << 8) | b as u64;
                }
                let n = if opt.is_ascii_lowercase() {
                    let mask = (!0u64).wrapping_shl((size * 8 - 1) as u32);
                    if l & mask != 0 {
                        l |= mask;
                    }
                    l as i64 as f64
                } else {
                    l as f64
                };
                out.push(Value::Number(n));
            }
            b'x' => {}
            b'f' => {
                let b: [u8; 4] = data[p..p + 4].try_into().unwrap_or_default();
                let v = if h.little {
                    f32::from_le_bytes(b)
                } else {
                    f32::from_be_bytes(b)
                };
                out.push(Value::Number(v as f64));
            }
            b'd' => {
                let b: [u8; 8] = data[p..p + 8].try_into().unwrap_or_default();
                let v = if h.little {
                    f64::from_le_bytes(b)
                } else {
                    f64::from_be_bytes(b)
                };
                out.push(Value::Number(v));
            }
            b'c' => {
                if size == 0 {
                    let Some(prev) = out.pop().and_then(|v| lua.coerce_number(v).ok().flatten())
                    else {
                        return Err(at(lua, "format 'c0' needs a previous size"));
                    };
                    size = prev as u64 as usize;
                    if size > ld || p > ld - size {
                        return Err(too_short(lua));
                    }
                }
                out.push(Value::String(lua.create_string(&data[p..p + size])?));
            }
            b's' => {
                let Some(end) = data[p..].iter().position(|&b| b == 0) else {
                    return Err(at(lua, "unfinished string in data"));
                };
                size = end + 1;
                out.push(Value::String(lua.create_string(&data[p..p + end])?));
            }
            _ => f.control(lua, opt, &mut h, "unpack")?,
        }
        pos += size as u64;
    }
    out.push(Value::Number((pos + 1) as f64));
    Ok(out)
}

fn size(lua: &Lua, args: Variadic<Value>) -> mlua::Result<f64> {
    let fmt = check_string(lua, &args, 0, "size")?;
    let mut f = Format { f: &fmt, at: 0 };
    let mut h = DEFAULT;
    let mut pos = 0usize;
    while let Some(opt) = f.next() {
        let size = f.size(lua, opt)?;
        pos += to_align(pos, &h, opt, size);
        if opt == b's' {
            return Err(bad_arg(lua, 1, "size", "option 's' has no fixed size"));
        }
        if opt == b'c' && size == 0 {
            return Err(bad_arg(lua, 1, "size", "option 'c0' has no fixed size"));
        }
        if !opt.is_ascii_alphanumeric() {
            f.control(lua, opt, &mut h, "size")?;
        }
        pos += size;
    }
    Ok(pos as f64)
}

pub fn install(lua: &Lua, globals: &Table) -> mlua::Result<()> {
    let t = lua.create_table()?;
    t.set("pack", lua.create_function(pack)?)?;
    t.set("unpack", lua.create_function(unpack)?)?;
    t.set("size", lua.create_function(size)?)?;
    globals.set("struct", t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_and_unpacks_as_redis() {
        let lua = Lua::new();
        install(&lua, &lua.globals()).unwrap();
        // struct.pack(...) in redis-server 7.0.15.
        let bytes: mlua::String = lua
            .load("return struct.pack('>hIc3s!4d', -2, 65536, 'abcd', 'z', 0.5)")
            .eval()
            .unwrap();
        assert_eq!(
            &bytes.as_bytes()[..],
            &b"\xff\xfe\x00\x01\x00\x00abcz\x00\x00\x3f\xe0\x00\x00\x00\x00\x00\x00"[..]
        );
        let back: Vec<Value> = lua
            .load("return {struct.unpack('>hIc3s!4d', ...)}")
            .call::<Table>(bytes)
            .unwrap()
            .sequence_values()
            .collect::<mlua::Result<_>>()
            .unwrap();
        assert_eq!(back.len(), 6);
        assert_eq!(back[5], Value::Number(21.0));
    }
}
