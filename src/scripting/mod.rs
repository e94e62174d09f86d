//! Lua scripting: EVAL, EVALSHA, their `_RO` forms and SCRIPT, as Redis 7.0 has them.
//!
//! # The plan
//! - **Interpreter** ([`engine`]): Lua 5.1, the version Redis embeds, through `mlua`
//!   with the interpreter built from source (`vendored`), one per core thread, made on
//!   first use. Scripts see Redis's sandbox: the base library without file access or
//!   environment tricks (`dofile`, `loadfile`, `getfenv`, `setfenv`, `require`,
//!   `module`, `newproxy`, `print` are absent, as in 7.0.15), `string`, `table`,
//!   `math`, `coroutine`, `cjson` ([`cjson`]), `bit` ([`bit`]) and `redis`. A script
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
//!   stay there, runs as a job of that shard on its thread, with the shard in hand:
//!   nothing else runs on the shard meanwhile and no other shard is touched, so it is
//!   atomic without claims or waits. Any other script runs as a transaction holding
//!   every shard whole (`runtime::transaction::Tx`), like an EXEC of a server-wide
//!   command, on the core that received EVAL. Either way `redis.call` is executed
//!   *synchronously*: on the shard in hand, or (holding every shard) inline for this
//!   core's shard and as a hop whose answer the thread waits for otherwise. It must
//!   be synchronous: Lua 5.1 cannot yield across `pcall`, metamethods or C callbacks
//!   (`table.sort` comparators, `string.gsub` functions), so a `redis.call` that
//!   suspended the script as a future would fail in ordinary scripts. Waiting cannot
//!   deadlock: a thread only waits while its script holds every shard, so the other
//!   cores are free to serve its hops, and a script on one shard waits for nothing.
//!   The effects go to the transaction's log (or the shard's block), so the AOF and
//!   replicas get them as one MULTI/EXEC (Redis 7.0 replicates effects, not scripts).
//!   Hops per `redis.call` were chosen over moving the script to the keys: moving
//!   is what the one-shard path does, and a script over several shards must hold them
//!   all anyway; measured in `benches/README.md` ("Scripting").
//! - **Conversions** ([`convert`]): a command's reply reaches Lua as its RESP2 (or,
//!   after `redis.setresp(3)`, RESP3) encoding would, through the reply encoder, so
//!   the types a script sees are the types a client would; a script's return value
//!   becomes a reply by Redis's rules (numbers truncated to integers, `false` a null,
//!   a table stops at its first nil, `{ok=}`, `{err=}`, `{double=}`, `{map=}` ...).
//!
//! Not here yet: FUNCTION / FCALL, `cmsgpack` and `struct`, the busy
//! script threshold with `-BUSY` and SCRIPT KILL of a running script, SCRIPT DEBUG
//! (LDB), and `redis.set_repl` (accepted, but effects are always propagated).

pub mod bit;
pub mod cache;
pub mod cjson;
pub mod convert;
pub mod engine;
pub mod run;
