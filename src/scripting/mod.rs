//! Lua scripting: EVAL, EVALSHA, their `_RO` forms and SCRIPT, as Redis 7.0 has them.
//!
//! # The plan
//! - **Interpreter** ([`engine`]): Lua 5.1, the version Redis embeds, through `mlua`
//!   with the interpreter built from source (`vendored`), one per core thread, made on
//!   first use. Scripts see Redis's sandbox: the base library without file access or
//!   environment tricks (`dofile`, `loadfile`, `getfenv`, `setfenv`, `require`,
//!   `module`, `newproxy`, `print` are absent, as in 7.0.15), `string`, `table`,
//!   `math`, `coroutine`, `cjson` ([`cjson`]), `bit` ([`bit`]), `cmsgpack`
//!   ([`cmsgpack`]), `struct` ([`structlib`]) and `redis`. A script
//!   runs with an environment that reads the globals and refuses to create or change
//!   one ("Attempt to modify a readonly table"), and that answers Redis's "Script attempted to access nonexistent global
//!   variable" for a name that does not exist. Errors take Redis's form: the message,
//!   then `script: <sha>, on @user_script:<line>.`, from an error handler that finds
//!   the script's frame.
//! - **Script cache** ([`cache`]): one per process, so a script loaded through any
//!   connection can be EVALSHA'd through every other; each interpreter compiles a
//!   script the first time it runs it there and forgets its compilations when SCRIPT
//!   FLUSH bumps the cache's generation.
//! - **Atomicity across cores** ([`run`]): a script may reach any key, declared or
//!   not (DESIGN §2: refusing undeclared keys is what breaks BullMQ and Sidekiq on
//!   Dragonfly). A script whose declared keys share a shard, and that has been seen to
//!   keep to them (and never to reach beyond them), runs as a job of that shard on its
//!   thread, with the shard in hand: nothing else runs on the shard meanwhile and no
//!   other shard is touched, so it is atomic without claims or waits. A script whose
//!   declared keys span shards, and that has been seen to keep to them (likewise),
//!   runs as a transaction claiming just those keys, beside other work and other
//!   scripts on other keys. Any other script runs
//!   as a transaction holding every shard whole (`runtime::transaction::Tx`), like
//!   an EXEC of a server-wide command. Those two run on the core that received EVAL.
//!   Either way `redis.call` returns its reply to the script as the call's
//!   result: on the shard in hand, or (holding keys or shards) inline for this core's
//!   shard and as a hop otherwise. Lua 5.1 cannot yield across `pcall`, metamethods or
//!   C callbacks (`table.sort` comparators, `string.gsub` functions), so a hop's wait
//!   cannot be a Lua coroutine's yield; the script runs on a stack of its own instead
//!   (`slices`), which a `redis.call` waiting for another core suspends, whatever Lua
//!   frames lie between, while the core serves its other clients (the script keeps
//!   this core's interpreter meanwhile: other scripts here wait for it). A command over
//!   several shards inside a script still blocks the thread, which goes on serving its
//!   own shard's jobs meanwhile, so the other cores' scripts it holds up get their
//!   answers (see `run`).
//!   The effects go to the transaction's log (or the shard's block), so the AOF and
//!   replicas get them as one MULTI/EXEC (Redis 7.0 replicates effects, not scripts).
//!   Hops per `redis.call` were chosen over moving the script to the keys: moving
//!   is what the one-shard path does, and a script over several shards must hold them
//!   all anyway; measured in `benches/README.md` ("Scripting").
//! - **Busy scripts** ([`slices`]): a script's Lua runs on a stack of its own; past
//!   `busy-reply-threshold` the interpreter's hook suspends it every few milliseconds
//!   so that its core serves `-BUSY`, SCRIPT KILL and SHUTDOWN NOSAVE to its other
//!   clients, as Redis does between instructions, while what the script holds keeps
//!   it atomic.
//! - **Conversions** ([`convert`]): a command's reply reaches Lua as its RESP2 (or,
//!   after `redis.setresp(3)`, RESP3) encoding would, through the reply encoder, so
//!   the types a script sees are the types a client would; a script's return value
//!   becomes a reply by Redis's rules (numbers truncated to integers, `false` a null,
//!   a table stops at its first nil, `{ok=}`, `{err=}`, `{double=}`, `{map=}` ...).
//!
//! - **Functions** ([`functions`]): FUNCTION LOAD's libraries live in one process-wide
//!   registry (code, function names, flags); each core runs them in a second
//!   interpreter of its own, which loads every library again when the registry
//!   changes. FCALL runs a function the way EVAL runs a script.
//!
//! - **`redis.set_repl`** marks the records of the script's next commands for the AOF,
//!   the replicas, both or neither (`propagation::Effect::to`, set by the shard that
//!   runs the command, from the script's setting carried with it); each consumer
//!   keeps the records meant for it. A command that spans shards within a script
//!   holding every shard (`multishard::run`) is the exception: its records go
//!   everywhere.
//!
//! Not here yet: SCRIPT DEBUG (LDB).

pub mod bit;
pub mod cache;
pub mod cjson;
pub mod cmsgpack;
pub mod convert;
pub mod engine;
pub mod functions;
pub mod luaarg;
pub mod random;
pub mod run;
pub mod slices;
pub mod structlib;

/// A `#!` first line (without its newline) split as Redis's `sdssplitargs` splits it
/// (`name="lib"` is `name=lib`), as text; `None` if a quote is left open or nothing
/// is there. Both scripts' shebangs and functions' metadata lines are read so.
pub fn shebang_parts(line: &[u8]) -> Option<Vec<String>> {
    let parts = crate::protocol::parse::split_args(line)?;
    (!parts.is_empty()).then(|| {
        parts
            .iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect()
    })
}

/// A script's flags: a `#!lua flags=...` line, or a function's `flags` (Redis's
/// `scripts_flags_def`, in its order).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags(u8);

impl Flags {
    pub const NO_WRITES: Flags = Flags(1);
    pub const ALLOW_OOM: Flags = Flags(2);
    pub const ALLOW_STALE: Flags = Flags(4);
    pub const NO_CLUSTER: Flags = Flags(8);
    pub const ALLOW_CROSS_SLOT: Flags = Flags(16);

    const NAMES: [(Flags, &'static str); 5] = [
        (Flags::NO_WRITES, "no-writes"),
        (Flags::ALLOW_OOM, "allow-oom"),
        (Flags::ALLOW_STALE, "allow-stale"),
        (Flags::NO_CLUSTER, "no-cluster"),
        (Flags::ALLOW_CROSS_SLOT, "allow-cross-slot-keys"),
    ];

    /// The flag named `name` (any case).
    pub fn named(name: &str) -> Option<Flags> {
        Self::NAMES
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(name))
            .map(|(f, _)| *f)
    }

    pub fn has(self, f: Flags) -> bool {
        self.0 & f.0 != 0
    }

    pub fn add(&mut self, f: Flags) {
        self.0 |= f.0;
    }

    /// The names of the flags set, in Redis's order (FUNCTION LIST).
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::NAMES
            .into_iter()
            .filter(move |(f, _)| self.has(*f))
            .map(|(_, n)| n)
    }
}
