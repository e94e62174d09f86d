//! One core's Lua interpreter: the sandbox, the `redis` library, the compiled scripts.
//!
//! The sandbox is built by a prelude (Lua, run once per interpreter with the full
//! library) that keeps what scripts may use in a table of *visible* globals, wraps the
//! libraries in read-only proxies, and returns the environment every script runs in:
//! an empty table whose metatable reads the visible globals, raises Redis's error for
//! a name that does not exist, and refuses assignment. The error handler that turns a
//! failure into Redis's `{err=..., source=..., line=...}` is Rust ([`error_handler`]),
//! reading the stack through mlua, so the `debug` library is never loaded.
//!
//! `redis.call` and `redis.pcall` are Lua wrappers over one Rust function that runs
//! the command (`run::call_from_script`) and returns its reply plus whether an error
//! must be raised even under `pcall` (bad arguments), so that errors are raised as
//! Lua tables by Lua's own `error`, as Redis raises them.

use super::cache;
use super::convert;
use super::run;
use bytes::Bytes;
use mlua::{ChunkMode, Function, Lua, StdLib, Table, Value};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The error a script stopped by SCRIPT KILL ends with.
pub const KILLED: &str = "Script killed by user with SCRIPT KILL...";

/// `REDIS_VERSION_NUM` of the version we answer as (7.0.15).
const VERSION_NUM: u32 = (7 << 16) | 15;

const PRELUDE: &str = r#"
local raw, G = ...
local error, type, tostring = error, type, tostring

local function readonly(t)
  return setmetatable({}, {
    __index = t,
    __newindex = function() error('Attempt to modify a readonly table', 2) end,
    __metatable = false,
  })
end

local redis = {
  LOG_DEBUG = 0, LOG_VERBOSE = 1, LOG_NOTICE = 2, LOG_WARNING = 3,
  REPL_NONE = 0, REPL_AOF = 1, REPL_SLAVE = 2, REPL_REPLICA = 2, REPL_ALL = 3,
  REDIS_VERSION = raw.version, REDIS_VERSION_NUM = raw.version_num,
}
redis.call = raw.call
redis.pcall = raw.pcall
for _, name in ipairs({'error_reply', 'status_reply', 'sha1hex', 'log', 'setresp',
    'set_repl', 'acl_check_cmd'}) do
  redis[name] = raw[name]
end
function redis.replicate_commands() return true end
function redis.breakpoint() return false end
function redis.debug() end

-- What scripts see: the base library without file access or environment tricks,
-- and the libraries through read-only proxies.
local visible = {}
for _, name in ipairs({'assert', 'collectgarbage', 'error', 'gcinfo', 'getmetatable',
    'ipairs', 'next', 'pairs', 'pcall', 'rawequal', 'rawget', 'rawset', 'select',
    'setmetatable', 'tonumber', 'tostring', 'type', 'unpack', 'xpcall', '_VERSION'}) do
  visible[name] = G[name]
end
for _, name in ipairs({'string', 'table', 'math', 'coroutine', 'cjson', 'bit'}) do
  visible[name] = readonly(G[name])
end
visible.redis = readonly(redis)
visible.loadstring = raw.loadstring

-- Redis's pcall: an error reply caught from redis.call is its message, a string.
local pcall_, errtext = pcall, raw.errtext
local function caught(ok, ...)
  if ok then return true, ... end
  local e = ...
  local text = errtext(e)
  if text ~= nil then return false, text end
  return false, e
end
visible.pcall = function(f, ...) return caught(pcall_(f, ...)) end

local protected = setmetatable({}, {__mode = 'k'})
for _, t in pairs(visible) do
  if type(t) == 'table' then protected[t] = true end
end
local rawset, setmetatable_ = rawset, setmetatable
visible.rawset = function(t, k, v)
  if protected[t] then error('Attempt to modify a readonly table', 0) end
  return rawset(t, k, v)
end
visible.setmetatable = function(t, mt)
  if protected[t] then error('Attempt to modify a readonly table', 0) end
  return setmetatable_(t, mt)
end

local env = setmetatable({}, {
  __index = function(_, k)
    local v = visible[k]
    if v == nil then
      error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
    end
    return v
  end,
  __newindex = function() error('Attempt to modify a readonly table', 2) end,
  -- Redis's globals have a metatable: getmetatable(_G) is a table (an empty one here).
  __metatable = {},
})
visible._G = env
protected[env] = true

local handler = raw.handler
local function run(f) return xpcall(f, handler) end
return env, visible, run
"#;

/// One thread's interpreter.
pub struct Engine {
    pub lua: Lua,
    /// The environment scripts run in.
    env: Table,
    /// The globals scripts see (KEYS and ARGV are set here).
    visible: Table,
    /// `xpcall(f, handler)`.
    runner: Function,
    compiled: HashMap<String, Function>,
    generation: u64,
    /// What this interpreter last added to `LUA_BYTES`.
    reported: usize,
}

thread_local! {
    static ENGINE: RefCell<Option<Engine>> = const { RefCell::new(None) };
}

/// The memory every core's interpreter holds (INFO's `used_memory_lua`), updated by
/// each interpreter after it compiles or runs a script.
static LUA_BYTES: AtomicUsize = AtomicUsize::new(0);

/// INFO `used_memory_lua` / `used_memory_vm_eval`: all the interpreters' memory.
pub fn lua_memory() -> usize {
    LUA_BYTES.load(Ordering::Relaxed)
}

/// Run `f` with this thread's interpreter, made on first use.
pub fn with<R>(f: impl FnOnce(&mut Engine) -> R) -> R {
    ENGINE.with(|e| {
        let mut e = e.borrow_mut();
        let engine = e.get_or_insert_with(|| Engine::new().expect("the Lua sandbox loads"));
        f(engine)
    })
}

/// How a script ended.
pub enum Outcome {
    Returned(Value),
    /// Redis's error table (`err`, and `source` / `line` when known).
    Failed(Table),
}

impl Engine {
    fn new() -> mlua::Result<Engine> {
        let libs = StdLib::TABLE | StdLib::STRING | StdLib::MATH;
        let lua = Lua::new_with(libs, mlua::LuaOptions::default())?;
        let raw = lua.create_table()?;
        raw.set("version", crate::commands::connection::REDIS_VERSION)?;
        raw.set("version_num", VERSION_NUM)?;
        // Rust (C) functions, not Lua wrappers: a Lua function called as `return f()`
        // is a tail call that drops the script's frame, and with it the line number
        // Redis puts in the error.
        raw.set(
            "call",
            lua.create_function(|lua, args: mlua::MultiValue| {
                match run::call_from_script(lua, args)? {
                    (Value::Table(t), _) if t.raw_get::<Value>("err")? != Value::Nil => {
                        let msg: mlua::String = t.raw_get("err")?;
                        Err(raise(&msg.to_string_lossy()))
                    }
                    (v, _) => Ok(v),
                }
            })?,
        )?;
        raw.set(
            "pcall",
            lua.create_function(|lua, args: mlua::MultiValue| {
                match run::call_from_script(lua, args)? {
                    (Value::Table(t), true) => {
                        let msg: mlua::String = t.raw_get("err")?;
                        Err(raise(&msg.to_string_lossy()))
                    }
                    (v, _) => Ok(v),
                }
            })?,
        )?;
        raw.set("handler", lua.create_function(error_handler)?)?;
        raw.set(
            "errtext",
            lua.create_function(|lua, e: Value| {
                Ok(match e {
                    Value::Error(e) => match (script_error(&e), runtime_error(&e)) {
                        (Some(msg), _) | (None, Some(msg)) => {
                            Value::String(lua.create_string(msg)?)
                        }
                        _ => Value::Nil,
                    },
                    Value::Table(t) => match t.raw_get::<Value>("err")? {
                        s @ Value::String(_) => s,
                        _ => Value::Nil,
                    },
                    _ => Value::Nil,
                })
            })?,
        )?;
        library(&lua, &raw)?;
        // SCRIPT KILL is noticed between instructions.
        lua.set_hook(
            mlua::HookTriggers::new().every_nth_instruction(100_000),
            |_, _| {
                if run::kill_requested() {
                    Err(mlua::Error::runtime(KILLED))
                } else {
                    Ok(mlua::VmState::Continue)
                }
            },
        );
        let globals = lua.globals();
        super::cjson::install(&lua, &globals)?;
        super::bit::install(&lua, &globals)?;
        let (env, visible, runner): (Table, Table, Function) = lua
            .load(PRELUDE)
            .set_name("=prelude")
            .call((raw.clone(), globals))?;
        // loadstring compiles text only, into the same read-only environment.
        let env2 = env.clone();
        raw.set(
            "loadstring",
            lua.create_function(move |lua, (src, name): (mlua::String, Option<String>)| {
                let chunk = lua
                    .load(src.as_bytes().to_vec())
                    .set_name(name.unwrap_or_else(|| "=(load)".into()))
                    .set_mode(ChunkMode::Text)
                    .set_environment(env2.clone());
                match chunk.into_function() {
                    Ok(f) => Ok((Value::Function(f), Value::Nil)),
                    Err(e) => Ok((Value::Nil, Value::String(lua.create_string(e.to_string())?))),
                }
            })?,
        )?;
        visible.raw_set("loadstring", raw.get::<Value>("loadstring")?)?;
        Ok(Engine {
            lua,
            env,
            visible,
            runner,
            compiled: HashMap::new(),
            generation: cache::generation(),
            reported: 0,
        })
    }

    /// Bring `LUA_BYTES` up to date with this interpreter's memory.
    pub fn report_memory(&mut self) {
        let now = self.lua.used_memory();
        if now >= self.reported {
            LUA_BYTES.fetch_add(now - self.reported, Ordering::Relaxed);
        } else {
            LUA_BYTES.fetch_sub(self.reported - now, Ordering::Relaxed);
        }
        self.reported = now;
    }

    /// The compiled script `sha` with `body`, compiling it on first use here; the
    /// compile error as Redis words it otherwise.
    pub fn function(&mut self, sha: &str, body: &Bytes) -> Result<Function, String> {
        let generation = cache::generation();
        if generation != self.generation {
            self.compiled.clear();
            self.generation = generation;
        }
        if let Some(f) = self.compiled.get(sha) {
            return Ok(f.clone());
        }
        let f = self
            .lua
            .load(&without_shebang(body)[..])
            .set_name("@user_script")
            .set_mode(ChunkMode::Text)
            .set_environment(self.env.clone())
            .into_function()
            .map_err(|e| {
                let msg = match &e {
                    mlua::Error::SyntaxError { message, .. } => message.clone(),
                    other => other.to_string(),
                };
                format!("ERR Error compiling script (new function): {msg}")
            })?;
        self.compiled.insert(sha.to_string(), f.clone());
        self.report_memory();
        Ok(f)
    }

    /// Run `f` with `KEYS` and `ARGV` set.
    pub fn call(&mut self, f: &Function, keys: &[Bytes], args: &[Bytes]) -> mlua::Result<Outcome> {
        let list = |items: &[Bytes]| -> mlua::Result<Table> {
            let t = self.lua.create_table_with_capacity(items.len(), 0)?;
            for (i, b) in items.iter().enumerate() {
                t.raw_set(i + 1, self.lua.create_string(b)?)?;
            }
            Ok(t)
        };
        self.visible.raw_set("KEYS", list(keys)?)?;
        self.visible.raw_set("ARGV", list(args)?)?;
        let (ok, v): (bool, Value) = self.runner.call(f.clone())?;
        self.report_memory();
        Ok(match (ok, v) {
            (true, v) => Outcome::Returned(v),
            (false, Value::Table(t)) => Outcome::Failed(t),
            (false, other) => {
                let t = self.lua.create_table()?;
                t.raw_set("err", format!("ERR {other:?}"))?;
                Outcome::Failed(t)
            }
        })
    }
}

/// The rest of the `redis` library, as Rust functions so that errors carry the
/// script's line (see `call` above).
fn library(lua: &Lua, raw: &Table) -> mlua::Result<()> {
    let text = |v: &Value| -> Option<Vec<u8>> {
        match v {
            Value::String(s) => Some(s.as_bytes().to_vec()),
            Value::Integer(n) => Some(n.to_string().into_bytes()),
            Value::Number(n) => Some(run::format_g(*n, 14).into_bytes()),
            _ => None,
        }
    };
    let reply_table = |field: &'static str| {
        lua.create_function(move |lua, msg: Value| match msg {
            Value::String(s) => convert::tagged(lua, field, s),
            // Redis answers a bad argument with an error *reply*, not a raised error.
            _ => convert::tagged(lua, "err", "ERR wrong number or type of arguments"),
        })
    };
    raw.set("error_reply", reply_table("err")?)?;
    raw.set("status_reply", reply_table("ok")?)?;
    raw.set(
        "sha1hex",
        lua.create_function(move |_, args: mlua::MultiValue| match args.len() {
            1 => Ok(cache::sha1_hex(&text(&args[0]).unwrap_or_default())),
            _ => Err(raise("ERR wrong number of arguments")),
        })?,
    )?;
    raw.set(
        "log",
        lua.create_function(move |_, args: mlua::MultiValue| {
            if args.len() < 2 {
                return Err(raise("ERR redis.log() requires two arguments or more."));
            }
            let level = match &args[0] {
                Value::Integer(n) if (0..=3).contains(n) => *n,
                _ => return Err(raise("ERR Invalid debug level.")),
            };
            let mut parts = Vec::new();
            for a in args.iter().skip(1) {
                // Redis skips what is neither a string nor a number.
                if let Some(t) = text(a) {
                    parts.push(String::from_utf8_lossy(&t).into_owned());
                }
            }
            log(level as u8, &parts.join(" "));
            Ok(())
        })?,
    )?;
    raw.set(
        "setresp",
        lua.create_function(|_, v: Value| match v {
            Value::Integer(n @ (2 | 3)) => {
                run::set_resp(n as u8);
                Ok(())
            }
            _ => Err(raise("ERR RESP version must be 2 or 3.")),
        })?,
    )?;
    raw.set(
        "set_repl",
        lua.create_function(|_, v: Value| match v {
            Value::Integer(0..=3) => Ok(()),
            _ => Err(raise(
                "ERR Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.",
            )),
        })?,
    )?;
    raw.set(
        "acl_check_cmd",
        lua.create_function(|_, args: mlua::MultiValue| match args.front() {
            Some(Value::String(name)) if crate::commands::lookup(&name.as_bytes()).is_some() => {
                Ok(true)
            }
            _ => Err(raise("ERR Invalid command passed to redis.acl_check_cmd()")),
        })?,
    )?;
    Ok(())
}

/// An error reply raised from Rust into the script, kept whole (no `ERR ` prefix is
/// added, as Lua's own errors get).
#[derive(Debug)]
pub struct ScriptError(pub String);

impl std::fmt::Display for ScriptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ScriptError {}

fn raise(msg: &str) -> mlua::Error {
    mlua::Error::external(ScriptError(msg.to_string()))
}

/// The error reply a raised Rust error stands for, if it is one of ours.
pub fn script_error(e: &mlua::Error) -> Option<&str> {
    match e {
        mlua::Error::ExternalError(x) => x.downcast_ref::<ScriptError>().map(|s| s.0.as_str()),
        mlua::Error::CallbackError { cause, .. } => script_error(cause),
        _ => None,
    }
}

/// The message of a plain runtime error raised from Rust (cjson's, the kill hook's).
fn runtime_error(e: &mlua::Error) -> Option<&str> {
    match e {
        mlua::Error::RuntimeError(m) => Some(m),
        mlua::Error::CallbackError { cause, .. } => runtime_error(cause),
        _ => None,
    }
}

/// The error handler a script runs under: Redis's error table, `{err=message}`, with
/// the `source` and `line` of the script's innermost frame on the stack.
fn error_handler(lua: &Lua, err: Value) -> mlua::Result<Table> {
    let message = |v: &Value| -> String {
        match v {
            Value::String(s) => String::from_utf8_lossy(&s.as_bytes()).into_owned(),
            Value::Error(e) => match e.as_ref() {
                mlua::Error::RuntimeError(m) => m.clone(),
                mlua::Error::CallbackError { cause, .. } => match cause.as_ref() {
                    mlua::Error::RuntimeError(m) => m.clone(),
                    other => other.to_string(),
                },
                other => other.to_string(),
            },
            Value::Nil => "nil".into(),
            Value::Boolean(b) => b.to_string(),
            Value::Integer(n) => n.to_string(),
            Value::Number(n) => n.to_string(),
            other => other.type_name().to_string(),
        }
    };
    let table = match err {
        Value::Error(e) if script_error(&e).is_some() => {
            let fresh = lua.create_table()?;
            fresh.raw_set("err", script_error(&e).unwrap_or_default())?;
            fresh
        }
        Value::Table(t) if matches!(t.raw_get::<Value>("err")?, Value::String(_)) => t,
        Value::Table(t) => {
            let inner = t.raw_get::<Value>("err")?;
            let fresh = lua.create_table()?;
            fresh.raw_set("err", format!("ERR {}", message(&inner)))?;
            fresh
        }
        other => {
            let fresh = lua.create_table()?;
            fresh.raw_set("err", format!("ERR {}", message(&other)))?;
            fresh
        }
    };
    for level in 0..64 {
        let Some(frame) = lua.inspect_stack(level) else {
            break;
        };
        let source = frame.source();
        if source.what != "C" && source.source.as_deref() == Some("@user_script") {
            table.raw_set("source", "@user_script")?;
            table.raw_set("line", frame.curr_line())?;
            break;
        }
    }
    Ok(table)
}

/// Lua 5.1 compiles no `#!` line: the shebang line is blanked, keeping line numbers.
fn without_shebang(body: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if !body.starts_with(b"#!") {
        return body.into();
    }
    let end = body.iter().position(|&b| b == b'\n').unwrap_or(body.len());
    body[end..].to_vec().into()
}

/// `redis.log`: Redis's level marks, at or above the `notice` verbosity we log at.
fn log(level: u8, msg: &str) {
    match level {
        3 => crate::log::warning(msg),
        2 => crate::log::log(msg),
        _ => {}
    }
}

/// The reply for a script that failed with `err` (Redis's error table).
pub fn failure_reply(err: &Table, sha: &str) -> crate::protocol::Reply {
    let msg: String = err
        .raw_get::<mlua::String>("err")
        .map(|s| String::from_utf8_lossy(&s.as_bytes()).into_owned())
        .unwrap_or_else(|_| "ERR unknown error".into());
    let source: Option<String> = err.raw_get("source").ok();
    let line: Option<i64> = err.raw_get("line").ok();
    let text = match (source, line) {
        (Some(s), Some(l)) => format!("{msg} script: {sha}, on {s}:{l}."),
        _ => format!("{msg} script: {sha}"),
    };
    convert::error_line(&text)
}
