//! `bit`: LuaBitOp 1.0, the bitwise library Redis loads for scripts. Every argument
//! is reduced to a 32-bit integer modulo 2^32 and every result is a signed 32-bit
//! number, as LuaBitOp does on a Lua 5.1 with double numbers.

use mlua::{Lua, Table, Value, Variadic};

/// LuaBitOp's `barg`: a number modulo 2^32, as a signed 32-bit integer.
fn tobit(lua: &Lua, v: &Value, name: &str, n: usize) -> mlua::Result<i32> {
    let x = match v {
        Value::Integer(i) => *i as f64,
        Value::Number(f) => *f,
        Value::String(s) => s
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .ok_or_else(|| bad(lua, name, n, "number expected, got string"))?,
        other => {
            return Err(bad(
                lua,
                name,
                n,
                &format!("number expected, got {}", other.type_name()),
            ))
        }
    };
    // The value modulo 2^32, rounded as LuaBitOp's 2^52 + 2^51 addition rounds.
    let r = x.round_ties_even().rem_euclid(4294967296.0);
    Ok(r as u32 as i32)
}

fn bad(lua: &Lua, name: &str, n: usize, what: &str) -> mlua::Error {
    super::cjson::at(lua, &format!("bad argument #{n} to '{name}' ({what})"))
}

fn arg(lua: &Lua, args: &[Value], i: usize, name: &str) -> mlua::Result<i32> {
    match args.get(i) {
        Some(v) => tobit(lua, v, name, i + 1),
        None => Err(bad(lua, name, i + 1, "number expected, got no value")),
    }
}

pub fn install(lua: &Lua, globals: &Table) -> mlua::Result<()> {
    let bit = lua.create_table()?;
    type Fold = fn(i32, i32) -> i32;
    let folds: [(&str, Fold); 3] = [
        ("band", |a, b| a & b),
        ("bor", |a, b| a | b),
        ("bxor", |a, b| a ^ b),
    ];
    for (name, f) in folds {
        bit.set(
            name,
            lua.create_function(move |lua, args: Variadic<Value>| {
                let mut acc = arg(lua, &args, 0, name)?;
                for i in 1..args.len() {
                    acc = f(acc, arg(lua, &args, i, name)?);
                }
                Ok(acc)
            })?,
        )?;
    }
    type Shift = fn(i32, u32) -> i32;
    let shifts: [(&str, Shift); 5] = [
        ("lshift", |a, n| ((a as u32) << n) as i32),
        ("rshift", |a, n| ((a as u32) >> n) as i32),
        ("arshift", |a, n| a >> n),
        ("rol", |a, n| (a as u32).rotate_left(n) as i32),
        ("ror", |a, n| (a as u32).rotate_right(n) as i32),
    ];
    for (name, f) in shifts {
        bit.set(
            name,
            lua.create_function(move |lua, args: Variadic<Value>| {
                let a = arg(lua, &args, 0, name)?;
                let n = arg(lua, &args, 1, name)? as u32 & 31;
                Ok(f(a, n))
            })?,
        )?;
    }
    bit.set(
        "tobit",
        lua.create_function(|lua, args: Variadic<Value>| arg(lua, &args, 0, "tobit"))?,
    )?;
    bit.set(
        "bnot",
        lua.create_function(|lua, args: Variadic<Value>| Ok(!arg(lua, &args, 0, "bnot")?))?,
    )?;
    bit.set(
        "bswap",
        lua.create_function(|lua, args: Variadic<Value>| {
            Ok(arg(lua, &args, 0, "bswap")?.swap_bytes())
        })?,
    )?;
    bit.set(
        "tohex",
        lua.create_function(|lua, args: Variadic<Value>| {
            let x = arg(lua, &args, 0, "tohex")? as u32;
            let n = match args.get(1) {
                None | Some(Value::Nil) => 8,
                Some(_) => arg(lua, &args, 1, "tohex")?,
            };
            let (upper, width) = (n < 0, n.unsigned_abs().min(8) as usize);
            let digits = if upper {
                format!("{x:08X}")
            } else {
                format!("{x:08x}")
            };
            Ok(digits[8 - width..].to_string())
        })?,
    )?;
    globals.set("bit", bit)?;
    Ok(())
}
