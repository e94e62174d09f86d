//! Arguments of the Rust functions scripts call, checked as Lua's C API checks them
//! (`luaL_checklstring`, `luaL_checknumber`), with the same error texts.

use super::cjson::at;
use mlua::{Lua, Value};

/// `luaL_argerror`: "bad argument #n to 'name' (msg)", at the caller's line.
pub fn bad_arg(lua: &Lua, n: usize, name: &str, msg: &str) -> mlua::Error {
    at(lua, &format!("bad argument #{n} to '{name}' ({msg})"))
}

/// `luaL_checklstring`: a string, or a number as Lua writes it.
pub fn check_string(lua: &Lua, args: &[Value], i: usize, name: &str) -> mlua::Result<Vec<u8>> {
    match args.get(i) {
        Some(Value::String(s)) => Ok(s.as_bytes().to_vec()),
        Some(v @ (Value::Integer(_) | Value::Number(_))) => Ok(lua
            .coerce_string(v.clone())?
            .map(|s| s.as_bytes().to_vec())
            .unwrap_or_default()),
        other => Err(bad_arg(
            lua,
            i + 1,
            name,
            &format!("string expected, got {}", type_name(other)),
        )),
    }
}

/// `luaL_checknumber`: a number, or a string that reads as one.
pub fn check_number(lua: &Lua, args: &[Value], i: usize, name: &str) -> mlua::Result<f64> {
    let n = match args.get(i) {
        Some(v) => lua.coerce_number(v.clone())?,
        None => None,
    };
    n.ok_or_else(|| {
        bad_arg(
            lua,
            i + 1,
            name,
            &format!("number expected, got {}", type_name(args.get(i))),
        )
    })
}

/// Lua's name for a value's type, `no value` for a missing argument.
pub fn type_name(v: Option<&Value>) -> &'static str {
    match v {
        None => "no value",
        Some(Value::Integer(_) | Value::Number(_)) => "number",
        Some(Value::LightUserData(_) | Value::UserData(_)) => "userdata",
        Some(v) => v.type_name(),
    }
}
