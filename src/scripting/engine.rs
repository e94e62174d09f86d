//! One core's Lua interpreters: the sandbox, the `redis` library, the compiled scripts.
//!
//! Each core has two, as Redis has: one for EVAL ([`with`]) and one for functions
//! ([`with_functions`], [`Mode::Functions`]). The second also runs libraries' code in
//! *load mode* ([`Engine::load_library`]), where the globals are only a `redis` with
//! `register_function`, `log` and the version fields; it reloads every library when
//! the registry's generation moves ([`Engine::named`]).
//!
//! The sandbox is built by a prelude (Lua, run once per interpreter with the full
//! library) that keeps what scripts may use in a table of *visible* globals, wraps the
//! libraries in read-only proxies, and returns the environment every script runs in:
//! an empty table whose metatable reads the visible globals, raises Redis's error for
//! a name that does not exist, and refuses assignment. The error handler that turns a
//! failure into Redis's `{err=..., source=..., line=...}` is Rust ([`error_handler`]),
//! reading the stack through mlua, so the `debug` library is never loaded.
//!
//! `redis.call` and `redis.pcall` are C functions of the interpreter
//! (`run::call_from_lua`): they read their arguments off the Lua stack, run the
//! command, push the common single-value replies themselves (others go through
//! `convert`), and raise an error reply as a `{err=...}` table with Lua's own
//! `lua_error`, as Redis raises it. KEYS and ARGV (a function's keys and arguments)
//! are built through the C API too. Through mlua's value API each argument, reply and
//! array element took a registry reference and a protected frame: a third of a short
//! script's instructions (`benches/README.md`, "EVALSHA's own costs").

use super::cache;
use super::convert;
use super::run;
use bytes::Bytes;
use mlua::{ffi, ChunkMode, Function, Lua, StdLib, Table, Value};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The error a script stopped by SCRIPT KILL ends with.
pub const KILLED: &str = "Script killed by user with SCRIPT KILL...";

/// `REDIS_VERSION_NUM` of the version we answer as (7.0.15).
const VERSION_NUM: u32 = (7 << 16) | 15;

const PRELUDE: &str = r#"
local raw, G, functions = ...
local error, type, tostring = error, type, tostring

-- One function for every read-only table's __newindex (a closure each was ~1 KB of
-- an interpreter's memory in all).
local function refuse() error('Attempt to modify a readonly table', 2) end
local function readonly(t)
  return setmetatable({}, {__index = t, __newindex = refuse, __metatable = false})
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
for _, name in ipairs({'string', 'table', 'math', 'coroutine', 'cjson', 'bit', 'cmsgpack',
    'struct'}) do
  visible[name] = readonly(G[name])
end
visible.redis = readonly(redis)
visible.loadstring = raw.loadstring

-- Strings share one metatable, whose __index is the real string library: handed
-- out as it is, a script could change every later script's strings (Redis's are
-- read-only). Scripts see a read-only view of it, its __index the string proxy.
local getmetatable_ = G.getmetatable
local string_mt = readonly({__index = visible.string})
visible.getmetatable = function(v)
  if type(v) == 'string' then return string_mt end
  return getmetatable_(v)
end

-- Redis's pcall: an error reply caught from redis.call is its message, a string.
-- A killed script's error is not caught: Redis raises it again on every line, so it
-- ends the script through any pcall.
local pcall_, xpcall_, errtext, check_stop = pcall, xpcall, raw.errtext, raw.check_stop
local function caught(ok, ...)
  if ok then return true, ... end
  check_stop()
  local e = ...
  local text = errtext(e)
  if text ~= nil then return false, text end
  return false, e
end
visible.pcall = function(f, ...) return caught(pcall_(f, ...)) end
local function passed(ok, ...)
  if not ok then check_stop() end
  return ok, ...
end
visible.xpcall = function(f, h) return passed(xpcall_(f, h)) end

local protected = setmetatable({}, {__mode = 'k'})
for _, t in pairs(visible) do
  if type(t) == 'table' then protected[t] = true end
end
protected[string_mt] = true
local rawset, setmetatable_ = rawset, setmetatable
visible.rawset = function(t, k, v)
  if protected[t] then error('Attempt to modify a readonly table', 0) end
  return rawset(t, k, v)
end
visible.setmetatable = function(t, mt)
  if protected[t] then error('Attempt to modify a readonly table', 0) end
  return setmetatable_(t, mt)
end

-- An __index that reads `t` and raises Redis's error for a name it lacks (level 3:
-- the line that read the name).
local function missing(k)
  error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 3)
end
local function strict(t)
  return function(_, k)
    local v = t[k]
    if v == nil then missing(k) end
    return v
  end
end

-- A global read goes env (empty) -> visible through a table __index, so a name that
-- exists costs no Lua call; visible's own metatable raises for one it lacks (level 3
-- from `missing`: the line that read the name, as with a function __index on env).
local function absent(_, k) missing(k) end
-- Redis's globals have a read-only metatable: getmetatable(_G) is a table, and
-- changing it raises Redis's error (here a read-only empty view of it).
local env_mt_view = readonly({})
local env_mt = {
  __index = visible,
  __newindex = refuse,
  __metatable = env_mt_view,
}
local env = setmetatable({}, env_mt)
visible._G = env
protected[env] = true
protected[env_mt_view] = true

-- Functions: while a library's code runs (FUNCTION LOAD), the globals are only a
-- `redis` with register_function, log and the version fields, whose missing fields
-- raise the missing-global error; the callbacks it registers share `env`, so they
-- see the full globals when they run.
local library_api = nil
if functions then
  local lredis = {
    LOG_DEBUG = 0, LOG_VERBOSE = 1, LOG_NOTICE = 2, LOG_WARNING = 3,
    REDIS_VERSION = raw.version, REDIS_VERSION_NUM = raw.version_num,
    register_function = raw.register_function, log = raw.log,
  }
  library_api = {redis = setmetatable({}, {
    __index = strict(lredis),
    __newindex = refuse,
    __metatable = false,
  })}
  setmetatable(library_api, {__index = absent})
end
setmetatable(visible, {__index = absent})
local function set_loading(on)
  env_mt.__index = on and library_api or visible
end

local handler = raw.handler
local function run(f) return xpcall(f, handler) end
-- A function's keys and arguments, put here (at 1 and 2) before each call.
local call_args = {}
local function run_function(f)
  local keys, args = call_args[1], call_args[2]
  call_args[1], call_args[2] = nil, nil
  return xpcall(function() return f(keys, args) end, handler)
end
return env, visible, run, run_function, set_loading, call_args
"#;

/// What an interpreter runs: EVAL's scripts, or FUNCTION LOAD's libraries (Redis
/// keeps the two in separate interpreters too).
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Mode {
    Eval,
    Functions,
}

/// One thread's interpreter.
pub struct Engine {
    pub lua: Lua,
    /// For the C API calls of a script's start (see `push_arrays`).
    main: Main,
    mode: Mode,
    /// The environment scripts run in.
    env: Table,
    /// `xpcall(f, handler)`.
    runner: Function,
    /// `xpcall(function() return f(keys, args) end, handler)`, the keys and arguments
    /// taken from the prelude's `call_args` (see `Engine::call`): a function's call.
    run_function: Function,
    /// Switches the globals to the library API while a library's code runs.
    set_loading: Function,
    /// Eval: compiled scripts by sha. Functions: callbacks by lower-case name.
    compiled: HashMap<String, Compiled, foldhash::fast::RandomState>,
    /// Tells this interpreter's [`Compiled`] from another's.
    id: u64,
    /// What `Engine::call` reaches through the C API (see [`Compiled`]): the runners
    /// at [`RUNNER`] and [`RUN_FUNCTION`], what is held for mlua at [`HELD`], the
    /// compiled functions from [`FIRST_SLOT`] on.
    fns: Table,
    /// The key the next compiled function gets in `fns` (keys are never reused).
    next_slot: ffi::lua_Integer,
    /// The script cache's or the function registry's generation `compiled` is of.
    generation: Option<u64>,
    /// What this interpreter last added to its memory total.
    reported: usize,
    /// Calls since the last collection step (see [`GC_PERIOD`]).
    calls: u32,
}

/// A compiled script or function of one interpreter, with its key in that
/// interpreter's `fns` table, from which `Engine::call` pushes it through the C API:
/// mlua's `Function::call` costs a protected frame and a registry reference for the
/// value returned, and reading that value through mlua ~550 instructions a field
/// (`benches/README.md`, "EVALSHA's return value").
#[derive(Clone)]
pub struct Compiled {
    f: Function,
    /// `Engine::id` of the interpreter it is in.
    engine: u64,
    slot: ffi::lua_Integer,
}

/// Keys of an interpreter's `fns` table.
const HELD: ffi::lua_Integer = 0;
const RUNNER: ffi::lua_Integer = 1;
const RUN_FUNCTION: ffi::lua_Integer = 2;
const FIRST_SLOT: ffi::lua_Integer = 3;

/// Gives each interpreter its `Engine::id`.
static NEXT_ENGINE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Every this many calls, a step of the garbage collector of this many kilobytes, as
/// Redis's `luaCallFunction` does: the garbage of small scripts (their KEYS and ARGV
/// tables, strings) is collected steadily, not in a full cycle each time the heap
/// doubles.
const GC_PERIOD: u32 = 50;

thread_local! {
    static ENGINE: RefCell<Option<Engine>> = const { RefCell::new(None) };
    static FUNCTIONS: RefCell<Option<Engine>> = const { RefCell::new(None) };
    /// While a library's code runs: what it has registered so far.
    static REGISTERING: RefCell<Option<Vec<Registered>>> = const { RefCell::new(None) };
    /// While a library's code runs under FUNCTION LOAD: when it must stop.
    static LOAD_DEADLINE: std::cell::Cell<Option<std::time::Instant>> =
        const { std::cell::Cell::new(None) };
}

/// A function registered by a library's code, with its callback.
struct Registered {
    info: super::functions::FunctionInfo,
    callback: Function,
}

/// The memory every core's interpreters hold (INFO's `used_memory_vm_eval` and
/// `used_memory_vm_functions`), updated by each after it compiles or runs something.
static LUA_BYTES: AtomicUsize = AtomicUsize::new(0);
static FUNCTION_BYTES: AtomicUsize = AtomicUsize::new(0);

/// INFO `used_memory_lua` / `used_memory_vm_eval`: all the EVAL interpreters' memory.
pub fn lua_memory() -> usize {
    LUA_BYTES.load(Ordering::Relaxed)
}

/// INFO `used_memory_vm_functions`: all the function interpreters' memory.
pub fn functions_memory() -> usize {
    FUNCTION_BYTES.load(Ordering::Relaxed)
}

/// Run `f` with this thread's EVAL interpreter, made on first use.
pub fn with<R>(f: impl FnOnce(&mut Engine) -> R) -> R {
    retire_if_flushed();
    with_engine(&ENGINE, Mode::Eval, f)
}

/// SCRIPT FLUSH resets the EVAL interpreters, as Redis's resets its own: this thread's
/// is dropped if it predates the last flush and no script is in the middle of it, and
/// made again on its next use. SCRIPT FLUSH calls it on every core, and each use
/// before it runs anything.
pub fn retire_if_flushed() {
    ENGINE.with(|e| {
        if let Ok(mut e) = e.try_borrow_mut() {
            if e.as_ref()
                .is_some_and(|e| e.generation != Some(cache::generation()))
            {
                *e = None;
            }
        }
    });
}

impl Drop for Engine {
    /// Its share leaves the totals with it (an interpreter made for one use while
    /// this thread's own is busy, see `with_engine`).
    fn drop(&mut self) {
        let total = match self.mode {
            Mode::Eval => &LUA_BYTES,
            Mode::Functions => &FUNCTION_BYTES,
        };
        total.fetch_sub(self.reported, Ordering::Relaxed);
        crate::memory::add_outside(-(self.reported as i64));
    }
}

/// Run `f` with this thread's function interpreter, made on first use.
pub fn with_functions<R>(f: impl FnOnce(&mut Engine) -> R) -> R {
    with_engine(&FUNCTIONS, Mode::Functions, f)
}

/// The interpreter in `key` (made on first use), or, while a script suspended on this
/// thread is in the middle of it (see `slices`), a fresh one for `f` alone: what runs
/// scripts answers `-BUSY` then (`run::busy_here`), so only a check of code (a
/// library loaded from an RDB file meanwhile) can get here then.
fn with_engine<R>(
    key: &'static std::thread::LocalKey<RefCell<Option<Engine>>>,
    mode: Mode,
    f: impl FnOnce(&mut Engine) -> R,
) -> R {
    let fresh = || Engine::new(mode).expect("the Lua sandbox loads");
    key.with(|e| match e.try_borrow_mut() {
        Ok(mut e) => f(e.get_or_insert_with(fresh)),
        Err(_) => f(&mut fresh()),
    })
}

/// How a script ended.
pub enum Outcome {
    /// Its return value, converted as it lay on the stack (`convert::stack_to_reply`).
    Replied(crate::protocol::Reply),
    /// Its return value, for `convert::lua_to_reply`.
    Returned(Value),
    /// Redis's error table (`err`, and `source` / `line` when known).
    Failed(Table),
}

impl Engine {
    /// Never set a memory limit on `lua`: the C API calls of `Engine::call` and
    /// `run::call_from_lua` rely on allocations never failing (see `push_arrays`).
    fn new(mode: Mode) -> mlua::Result<Engine> {
        let libs = StdLib::TABLE | StdLib::STRING | StdLib::MATH;
        let lua = Lua::new_with(libs, mlua::LuaOptions::default())?;
        let raw = lua.create_table()?;
        raw.set("version", crate::commands::connection::REDIS_VERSION)?;
        raw.set("version_num", VERSION_NUM)?;
        // Rust (C) functions, not Lua wrappers: a Lua function called as `return f()`
        // is a tail call that drops the script's frame, and with it the line number
        // Redis puts in the error.
        // SAFETY: `run::call_from_lua` is written to be called by the interpreter as a
        // C function (see its safety comment).
        unsafe {
            raw.set("call", lua.create_c_function(redis_call)?)?;
            raw.set("pcall", lua.create_c_function(redis_pcall)?)?;
        }
        lua.set_named_registry_value(
            run::CONVERTER.to_str().unwrap_or_default(),
            lua.create_function(|lua, ()| run::convert_pending(lua))?,
        )?;
        raw.set("handler", lua.create_function(error_handler)?)?;
        // Raises the killed script's error once the script must stop (SCRIPT KILL,
        // shutdown): its pcall and xpcall then end it instead of catching the error.
        raw.set(
            "check_stop",
            lua.create_function(|_, ()| {
                if run::kill_requested() || super::slices::finishing() {
                    Err(mlua::Error::runtime(KILLED))
                } else {
                    Ok(())
                }
            })?,
        )?;
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
        if mode == Mode::Functions {
            raw.set("register_function", lua.create_function(register_function)?)?;
        }
        // SCRIPT KILL, FUNCTION LOAD's time limit and the busy threshold (see `slices`)
        // are noticed between instructions.
        lua.set_hook(
            mlua::HookTriggers::new().every_nth_instruction(100_000),
            |_, _| {
                if LOAD_DEADLINE
                    .get()
                    .is_some_and(|d| std::time::Instant::now() > d)
                {
                    Err(raise("ERR FUNCTION LOAD timeout"))
                } else if run::kill_requested() || super::slices::finishing() {
                    Err(mlua::Error::runtime(KILLED))
                } else {
                    // What waits for the end of the core's turn (the AOF's write)
                    // does not wait for a long script.
                    crate::runtime::backend::run_turn_end();
                    // Past the busy threshold the core serves its other clients
                    // between slices; one of them may have asked for SCRIPT KILL.
                    super::slices::maybe_suspend(run::due_for_pause);
                    if run::kill_requested() {
                        Err(mlua::Error::runtime(KILLED))
                    } else {
                        Ok(mlua::VmState::Continue)
                    }
                }
            },
        );
        let globals = lua.globals();
        super::cjson::install(&lua, &globals, matches!(mode, Mode::Functions))?;
        super::bit::install(&lua, &globals)?;
        super::cmsgpack::install(&lua, &globals)?;
        super::structlib::install(&lua, &globals)?;
        super::random::install(&lua, &globals)?;
        let (env, visible, runner, run_function, set_loading, call_args): (
            Table,
            Table,
            Function,
            Function,
            Function,
            Table,
        ) = lua.load(PRELUDE).set_name("=prelude").call((
            raw.clone(),
            globals,
            mode == Mode::Functions,
        ))?;
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
        let fns = lua.create_table()?;
        fns.raw_set(RUNNER, &runner)?;
        fns.raw_set(RUN_FUNCTION, &run_function)?;
        let mut main = Main {
            state: std::ptr::null_mut(),
            visible: 0,
            call_args: 0,
            fns: 0,
        };
        // SAFETY: the closure runs on the interpreter's main state (exec_raw calls it
        // in a protected call on that state) with `visible` at 1, `call_args` at 2
        // and `fns` at 3: it keeps the state's pointer and a registry reference to
        // each table (luaL_ref pops the copy it refers to).
        unsafe {
            lua.exec_raw::<()>((&visible, &call_args, &fns), |state| {
                main.state = state;
                ffi::lua_pushvalue(state, 1);
                main.visible = ffi::luaL_ref(state, ffi::LUA_REGISTRYINDEX);
                ffi::lua_pushvalue(state, 2);
                main.call_args = ffi::luaL_ref(state, ffi::LUA_REGISTRYINDEX);
                ffi::lua_pushvalue(state, 3);
                main.fns = ffi::luaL_ref(state, ffi::LUA_REGISTRYINDEX);
            })?
        };
        // The prelude's compiled chunk and its temporaries are garbage now: 21 of a
        // new interpreter's 72 KB, which Lua's own pace would keep until many scripts
        // had run (Redis's interpreter starts collected too).
        lua.gc_collect()?;
        Ok(Engine {
            main,
            lua,
            mode,
            env,
            runner,
            run_function,
            set_loading,
            compiled: HashMap::default(),
            id: NEXT_ENGINE.fetch_add(1, Ordering::Relaxed),
            fns,
            next_slot: FIRST_SLOT,
            // An EVAL interpreter is of the script cache's generation (see
            // `retire_if_flushed`); a function one learns the registry's on first use.
            generation: (mode == Mode::Eval).then(cache::generation),
            reported: 0,
            calls: 0,
        })
    }

    /// Bring this interpreter's share of its memory total up to date.
    pub fn report_memory(&mut self) {
        let total = match self.mode {
            Mode::Eval => &LUA_BYTES,
            Mode::Functions => &FUNCTION_BYTES,
        };
        let now = self.lua.used_memory();
        if now >= self.reported {
            total.fetch_add(now - self.reported, Ordering::Relaxed);
        } else {
            total.fetch_sub(self.reported - now, Ordering::Relaxed);
        }
        crate::memory::add_outside(now as i64 - self.reported as i64);
        self.reported = now;
    }

    /// Run a library's code (after its metadata line) in load mode: the functions it
    /// registers, or Redis's error text (without the `ERR ` code).
    pub fn load_library(
        &mut self,
        body: &[u8],
        deadline: Option<std::time::Instant>,
    ) -> Result<Vec<super::functions::FunctionInfo>, String> {
        Ok(self
            .run_library(body, deadline)?
            .into_iter()
            .map(|r| r.info)
            .collect())
    }

    fn run_library(
        &mut self,
        body: &[u8],
        deadline: Option<std::time::Instant>,
    ) -> Result<Vec<Registered>, String> {
        let chunk = self
            .lua
            .load(body)
            .set_name("@user_function")
            .set_mode(ChunkMode::Text)
            .set_environment(self.env.clone())
            .into_function()
            .map_err(|e| format!("Error compiling function: {}", syntax_message(&e)))?;
        REGISTERING.with(|r| *r.borrow_mut() = Some(Vec::new()));
        LOAD_DEADLINE.set(deadline);
        let ran = self
            .set_loading
            .call::<()>(true)
            .and_then(|_| chunk.call::<()>(()));
        let _ = self.set_loading.call::<()>(false);
        LOAD_DEADLINE.set(None);
        let registered = REGISTERING
            .with(|r| r.borrow_mut().take())
            .unwrap_or_default();
        self.report_memory();
        match ran {
            Ok(()) => Ok(registered),
            Err(e) => {
                let msg = match (script_error(&e), runtime_error(&e)) {
                    (Some(m), _) => m.to_string(),
                    (None, Some(m)) => format!("ERR {m}"),
                    _ => format!("ERR {e}"),
                };
                // mlua appends a traceback to errors raised in Lua; Redis has none.
                let msg = match msg.find("\nstack traceback:") {
                    Some(at) => msg[..at].to_string(),
                    None => msg,
                };
                Err(format!("Error registering functions: {msg}"))
            }
        }
    }

    /// The function called `name` (any case), loading every library again first if
    /// the registry changed since this interpreter last did.
    pub fn named(&mut self, name: &str) -> Option<Compiled> {
        // One atomic load per FCALL; the bodies are read only when they changed.
        if self.generation != Some(super::functions::generation()) {
            let (generation, bodies) = super::functions::bodies();
            self.forget_compiled();
            for body in bodies {
                match self.run_library(&body, None) {
                    Ok(registered) => {
                        for r in registered {
                            if let Ok(kept) = self.keep(r.callback) {
                                self.compiled.insert(r.info.name.to_ascii_lowercase(), kept);
                            }
                        }
                    }
                    Err(e) => crate::log::warning(&format!("Failed loading a library: {e}")),
                }
            }
            self.generation = Some(generation);
            // Replaced callbacks are garbage now.
            let _ = self.lua.gc_collect();
            self.report_memory();
        }
        self.compiled.get(&name.to_ascii_lowercase()).cloned()
    }

    /// The compiled script `sha` with `body`, compiling it on first use here; the
    /// compile error as Redis words it otherwise.
    pub fn function(&mut self, sha: &str, body: &Bytes) -> Result<Compiled, String> {
        let generation = cache::generation();
        if self.generation != Some(generation) {
            self.forget_compiled();
            self.generation = Some(generation);
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
                format!(
                    "ERR Error compiling script (new function): {}",
                    syntax_message(&e)
                )
            })?;
        let f = self.keep(f).map_err(|e| format!("ERR {e}"))?;
        self.compiled.insert(sha.to_string(), f.clone());
        self.report_memory();
        Ok(f)
    }

    /// Keep `f` in `fns` for `Engine::call`.
    fn keep(&mut self, f: Function) -> mlua::Result<Compiled> {
        let slot = self.next_slot;
        self.fns.raw_set(slot, &f)?;
        self.next_slot += 1;
        Ok(Compiled {
            f,
            engine: self.id,
            slot,
        })
    }

    /// Drop every compiled function (a [`Compiled`] still held elsewhere is then called
    /// through mlua).
    fn forget_compiled(&mut self) {
        for c in self.compiled.values() {
            let _ = self.fns.raw_set(c.slot, Value::Nil);
        }
        self.compiled.clear();
    }

    /// Run `f`: a script with `KEYS` and `ARGV` set, or a function given the keys and
    /// the arguments.
    pub fn call(&mut self, f: &Compiled, keys: &[Bytes], args: &[Bytes]) -> mlua::Result<Outcome> {
        // SAFETY: `main.state` is this interpreter's main state, alive as long as
        // `self.lua`, and no Lua code runs on it now (a script runs from the call
        // below; this engine is borrowed mutably, so none is in the middle of it on
        // this thread). The stack here is between mlua calls, which leave it
        // balanced; this makes room for the four values it pushes at most (a table,
        // two arrays, a string) and pops them all. None of these calls can raise: see
        // `push_arrays`; `visible` has no `__newindex` (its metatable has `__index`
        // only), so lua_setfield runs no metamethod, and `call_args` no metatable.
        unsafe {
            let state = self.main.state;
            let room = ffi::lua_checkstack(state, 4);
            debug_assert!(room != 0, "the main Lua stack has room for four values");
            let (table, eval) = match self.mode {
                Mode::Eval => (self.main.visible, true),
                Mode::Functions => (self.main.call_args, false),
            };
            ffi::lua_rawgeti(state, ffi::LUA_REGISTRYINDEX, table as ffi::lua_Integer);
            push_arrays(state, keys, args);
            if eval {
                ffi::lua_setfield(state, -3, c"ARGV".as_ptr());
                ffi::lua_setfield(state, -2, c"KEYS".as_ptr());
            } else {
                ffi::lua_rawseti(state, -3, 2);
                ffi::lua_rawseti(state, -2, 1);
            }
            ffi::lua_pop(state, 1);
        }
        // SAFETY: as above; `f` comes from this interpreter when the ids match.
        let raw = if f.engine == self.id {
            unsafe { self.call_raw(f.slot) }
        } else {
            None
        };
        let outcome = match raw {
            Some(outcome) => outcome,
            None => {
                let (ok, v): (bool, Value) = match self.mode {
                    Mode::Eval => self.runner.call(f.f.clone())?,
                    Mode::Functions => self.run_function.call(f.f.clone())?,
                };
                self.ended(ok, v)
            }
        };
        self.calls += 1;
        if self.calls == GC_PERIOD {
            self.calls = 0;
            let _ = self.lua.gc_step_kbytes(GC_PERIOD as std::ffi::c_int);
        }
        self.report_memory();
        outcome
    }

    /// How the script ended, from its runner's results: `ok` and the value returned,
    /// or, on failure, its error handler's table.
    fn ended(&self, ok: bool, v: Value) -> mlua::Result<Outcome> {
        Ok(match v {
            v if ok => Outcome::Returned(v),
            Value::Table(t) => Outcome::Failed(t),
            other => {
                let t = self.lua.create_table()?;
                t.raw_set("err", format!("ERR {other:?}"))?;
                Outcome::Failed(t)
            }
        })
    }

    /// Call the function at `slot` of `fns` through its runner, through the C API,
    /// converting a returned value in place (`convert::stack_to_reply`); a value it
    /// leaves, an error, or a raised error is handed to mlua through `fns[HELD]`.
    /// `None` if `fns` no longer has the function (forgotten since: SCRIPT FLUSH, a
    /// library reload), for the caller to call it through mlua.
    ///
    /// # Safety
    /// `main.state` is this interpreter's main state, with KEYS and ARGV (a function's
    /// `call_args`) set, and no Lua code running on it (see `call`). `lua_pcall` runs
    /// the runner protected, so nothing it raises unwinds past this frame; the other
    /// calls are reads, raw table accesses and `lua_checkstack`, which cannot raise
    /// (see `push_arrays`). The stack is left as it was found.
    unsafe fn call_raw(&mut self, slot: ffi::lua_Integer) -> Option<mlua::Result<Outcome>> {
        let state = self.main.state;
        // SAFETY: see above.
        let held = unsafe {
            let top = ffi::lua_gettop(state);
            if ffi::lua_checkstack(state, 4) == 0 {
                return None;
            }
            ffi::lua_rawgeti(
                state,
                ffi::LUA_REGISTRYINDEX,
                self.main.fns as ffi::lua_Integer,
            );
            let fns = top + 1;
            let runner = match self.mode {
                Mode::Eval => RUNNER,
                Mode::Functions => RUN_FUNCTION,
            };
            ffi::lua_rawgeti(state, fns, runner);
            ffi::lua_rawgeti(state, fns, slot);
            if ffi::lua_type(state, -1) != ffi::LUA_TFUNCTION {
                ffi::lua_settop(state, top);
                return None;
            }
            // The runner's two results, `ok` and the value, from `top + 2`; `None`
            // for an error raised past it, alone there.
            let held = if ffi::lua_pcall(state, 1, 2, 0) != ffi::LUA_OK {
                None
            } else if ffi::lua_toboolean(state, top + 2) != 0 {
                if let Some(reply) = convert::stack_to_reply(state, top + 3, run::script_resp()) {
                    ffi::lua_settop(state, top);
                    return Some(Ok(Outcome::Replied(reply)));
                }
                Some(true)
            } else {
                Some(false)
            };
            ffi::lua_pushvalue(state, -1);
            ffi::lua_rawseti(state, fns, HELD);
            ffi::lua_settop(state, top);
            held
        };
        let v = self.fns.raw_get::<Value>(HELD);
        let _ = self.fns.raw_set(HELD, Value::Nil);
        Some(v.and_then(|v| match held {
            Some(ok) => self.ended(ok, v),
            None => Err(match v {
                Value::Error(e) => *e,
                Value::String(s) => mlua::Error::runtime(s.to_string_lossy()),
                other => mlua::Error::runtime(format!("{other:?}")),
            }),
        }))
    }
}

/// `redis.call` as a C function of the interpreter (see `run::call_from_lua`).
unsafe extern "C-unwind" fn redis_call(state: *mut ffi::lua_State) -> std::ffi::c_int {
    // SAFETY: called by the interpreter as a C function, with its arguments.
    unsafe { run::call_from_lua(state, false) }
}

/// `redis.pcall` as a C function of the interpreter (see `run::call_from_lua`).
unsafe extern "C-unwind" fn redis_pcall(state: *mut ffi::lua_State) -> std::ffi::c_int {
    // SAFETY: as `redis_call`.
    unsafe { run::call_from_lua(state, true) }
}

/// The interpreter's main state and a registry reference to its `visible` globals
/// table, taken once: setting KEYS and ARGV through `Lua::exec_raw` cost as much as
/// the mlua calls it replaced (a protected call each time).
struct Main {
    state: *mut ffi::lua_State,
    visible: std::ffi::c_int,
    /// The prelude's table a function's keys and arguments are passed in.
    call_args: std::ffi::c_int,
    /// `Engine::fns`.
    fns: std::ffi::c_int,
}

/// Push `keys` and `args` as two Lua arrays (a script's KEYS and ARGV), through the
/// C API: mlua's table API took a registry reference and a stack check per element,
/// a fifth of a short script's time (`benches/README.md`, "EVALSHA's own costs").
///
/// # Safety
/// `state` is a valid Lua state with room for three more values (the two arrays and
/// a string); it is left with the two arrays pushed. These calls, like those of
/// `run::push_reply` and `Engine::call` around them, run outside any protected call,
/// so they must not raise; two invariants make sure they cannot:
/// - no memory limit is set on an interpreter (`Engine::new` sets none; a limit would
///   make mlua's allocator return null, and Lua raise, instead of aborting: mlua
///   0.10's `memory.rs` returns null otherwise only for sizes past `isize::MAX`);
/// - no finalizer can raise: Lua 5.1 runs `__gc` unprotected from any allocating
///   call, and the only ones are mlua's userdata collectors (scripts cannot make
///   userdata: `newproxy` is not in the sandbox).
///
/// This function owns nothing to drop in any case.
unsafe fn push_arrays(state: *mut ffi::lua_State, keys: &[Bytes], args: &[Bytes]) {
    for items in [keys, args] {
        ffi::lua_createtable(state, items.len().try_into().unwrap_or(0), 0);
        for (i, b) in items.iter().enumerate() {
            ffi::lua_pushlstring(state, b.as_ptr().cast(), b.len());
            ffi::lua_rawseti(state, -2, (i + 1) as ffi::lua_Integer);
        }
    }
}

/// The text of `redis.error_reply(msg)`'s table, as Redis 7.0 shapes it: an error
/// always has a code, so `oops` and `-oops` become `ERR oops`, `-MY oops` and
/// `MY oops` stay `MY oops`; line ends at the end are dropped.
fn error_text(msg: &[u8]) -> Vec<u8> {
    let body = msg.strip_prefix(b"-").unwrap_or(msg);
    let (code, text) = match body.iter().position(|&b| b == b' ') {
        Some(space) => (&body[..space], &body[space + 1..]),
        None => (&b"ERR"[..], body),
    };
    let end = text
        .iter()
        .rposition(|&b| b != b'\r' && b != b'\n')
        .map_or(0, |i| i + 1);
    let start = text[..end]
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(end);
    [code, b" ", &text[start..end]].concat()
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
            Value::String(s) if field == "err" => {
                convert::tagged(lua, field, lua.create_string(error_text(&s.as_bytes()))?)
            }
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
            Value::Integer(n @ 0..=3) => {
                run::set_repl(n as u8);
                Ok(())
            }
            _ => Err(raise(
                "ERR Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.",
            )),
        })?,
    )?;
    raw.set(
        "acl_check_cmd",
        lua.create_function(|_, args: mlua::MultiValue| {
            let mut argv = Vec::with_capacity(args.len());
            for a in args.iter() {
                match a {
                    Value::String(s) => argv.push(Bytes::copy_from_slice(&s.as_bytes())),
                    Value::Integer(i) => argv.push(Bytes::from(i.to_string())),
                    Value::Number(n) => argv.push(Bytes::from(format!("{n}"))),
                    _ => {
                        return Err(raise(
                            "ERR Lua redis lib command arguments must be strings or integers",
                        ))
                    }
                }
            }
            run::acl_check(&argv)
                .ok_or_else(|| raise("ERR Invalid command passed to redis.acl_check_cmd()"))
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
        let user = matches!(
            source.source.as_deref(),
            Some("@user_script" | "@user_function")
        );
        if source.what != "C" && user {
            table.raw_set("source", source.source.as_deref().unwrap_or_default())?;
            table.raw_set("line", frame.curr_line())?;
            break;
        }
    }
    Ok(table)
}

/// A compile error's message as Lua words it (`user_script:1: ...`).
fn syntax_message(e: &mlua::Error) -> String {
    match e {
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// `redis.register_function(name, callback)` or `redis.register_function{...}`, while a
/// library's code runs (Redis's `luaRegisterFunction`).
fn register_function(lua: &Lua, args: mlua::MultiValue) -> mlua::Result<()> {
    use super::functions::{valid_name, FunctionInfo};
    use super::Flags;
    let fail = |msg: &str| Err(raise(&format!("ERR {msg}")));
    if REGISTERING.with(|r| r.borrow().is_none()) {
        return fail("redis.register_function can only be called on FUNCTION LOAD command");
    }
    let text = |v: &Value| -> Option<Vec<u8>> {
        match v {
            Value::String(s) => Some(s.as_bytes().to_vec()),
            Value::Integer(_) | Value::Number(_) => lua
                .coerce_string(v.clone())
                .ok()
                .flatten()
                .map(|s| s.as_bytes().to_vec()),
            _ => None,
        }
    };
    let (name, description, callback, flags) = match args.len() {
        1 => {
            let Value::Table(t) = &args[0] else {
                return fail("calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).");
            };
            let (mut name, mut desc, mut callback, mut flags) =
                (None, None, None, Flags::default());
            for pair in t.pairs::<Value, Value>() {
                let (k, v) = pair?;
                let Some(key) = text(&k) else {
                    return fail(
                        "named argument key given to redis.register_function is not a string",
                    );
                };
                match key.to_ascii_lowercase().as_slice() {
                    b"function_name" => match text(&v) {
                        Some(n) => name = Some(n),
                        None => {
                            return fail("function_name argument given to redis.register_function must be a string")
                        }
                    },
                    b"description" => match text(&v) {
                        Some(d) => desc = Some(Bytes::from(d)),
                        None => {
                            return fail("description argument given to redis.register_function must be a string")
                        }
                    },
                    b"callback" => match v {
                        Value::Function(f) => callback = Some(f),
                        _ => {
                            return fail("callback argument given to redis.register_function must be a function")
                        }
                    },
                    b"flags" => {
                        let Value::Table(list) = v else {
                            return fail("flags argument to redis.register_function must be a table representing function flags");
                        };
                        for i in 1.. {
                            let flag = list.raw_get::<Value>(i)?;
                            if flag == Value::Nil {
                                break;
                            }
                            match text(&flag).and_then(|f| Flags::named(&String::from_utf8_lossy(&f))) {
                                Some(f) => flags.add(f),
                                None => return fail("unknown flag given"),
                            }
                        }
                    }
                    _ => return fail("unknown argument given to redis.register_function"),
                }
            }
            let Some(name) = name else {
                return fail("redis.register_function must get a function name argument");
            };
            let Some(callback) = callback else {
                return fail("redis.register_function must get a callback argument");
            };
            (name, desc, callback, flags)
        }
        2 => {
            let Some(name) = text(&args[0]) else {
                return fail("first argument to redis.register_function must be a string");
            };
            let Value::Function(callback) = args[1].clone() else {
                return fail("second argument to redis.register_function must be a function");
            };
            (name, None, callback, Flags::default())
        }
        _ => return fail("wrong number of arguments to redis.register_function"),
    };
    if !valid_name(&name) {
        return fail("Library names can only contain letters, numbers, or underscores(_) and must be at least one character long");
    }
    let name = String::from_utf8_lossy(&name).into_owned();
    REGISTERING.with(|r| {
        let mut r = r.borrow_mut();
        let list = r.get_or_insert_with(Vec::new);
        if list.iter().any(|f| f.info.name == name) {
            return fail("Function already exists in the library");
        }
        list.push(Registered {
            info: FunctionInfo {
                name,
                description,
                flags,
            },
            callback,
        });
        Ok(())
    })
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
    convert::error_line_of(err, &text)
}
