//! The command table and the context commands run in.
//!
//! Every command is one [`Command`] entry in its family's file (`string.rs`, `keys.rs`,
//! `connection.rs`, `server.rs` ...), registered in [`table`]. The entry drives
//! everything else: arity errors, COMMAND INFO / GETKEYS, routing to the shard that owns
//! the keys, stats, and what the call path (`runtime::call`) must know of it: which keys
//! a write signals for WATCH ([`Touch`]), how its effect is propagated to the AOF and
//! replicas ([`Propagation`], rules in [`propagate`]), how it blocks ([`Blocking`]), and
//! the runtime [`traits`] Redis's flags do not carry; the runtime never matches a
//! command by name. What is only documentary (COMMAND DOCS, tips, key specs) is
//! Redis's own metadata, in [`meta`]. The one idea to hold: a command never touches a socket
//! or a channel. A [`Exec::Shard`] handler gets a [`Ctx`] (one shard, one db) and the
//! argv, and returns a [`Reply`]; the runtime decides where it runs, including running it
//! over a gathered view when its keys live on several shards. [`Exec::Conn`] handlers
//! see only the client's own state, and [`Exec::Server`] handlers reach all shards
//! through the [`Shards`] handle, asynchronously.

pub mod acl;
pub mod aof;
pub mod bitmap;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod debug;
pub mod dump;
pub mod errors;
pub mod expire;
pub mod function;
pub mod geo;
pub mod hash;
pub mod hll;
pub mod info;
pub mod keys;
pub mod list;
pub mod lolwut;
pub mod memory;
pub mod meta;
pub mod migrate;
pub mod module;
pub mod persistence;
pub mod propagate;
pub mod pubsub;
pub mod replication;
pub mod scripting;
pub mod sentinel;
pub mod server;
pub mod set;
pub mod slowlog;
pub mod sort;
pub mod stream;
pub mod stream_groups;
pub mod string;
pub mod transaction;
pub mod zset;

use crate::client::{Client, ClientRef};
use crate::protocol::reply::RawArray;
use crate::protocol::Reply;
use crate::runtime::Shards;
use crate::shard::Shard;
use crate::storage::db::Entry;
use crate::storage::Db;
use bytes::Bytes;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;

pub type LocalBoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// Append a listpack entry to a raw array reply, as the bulk string it stands for.
pub fn push_entry(out: &mut RawArray, e: crate::storage::listpack::LpEntry<'_>) {
    use crate::storage::listpack::LpEntry;
    match e {
        LpEntry::Str(s) => out.push(s),
        LpEntry::Int(i) => out.push_int(i),
    }
}

/// Runs on the shard owning the command's keys (or the local shard if it has none).
pub type ShardFn = fn(&mut Ctx, &[Bytes]) -> Reply;
/// Runs on the connection, with the client's state only (PING, SELECT, HELLO...).
pub type ConnFn = fn(&mut Client, &[Bytes]) -> Reply;
/// Runs on the connection and may reach every shard (INFO, DBSIZE, KEYS, FLUSHALL...).
pub type ServerFn = for<'a> fn(&'a ClientRef, &'a Shards, &'a [Bytes]) -> LocalBoxFuture<'a, Reply>;

#[derive(Clone, Copy)]
pub enum Exec {
    Shard(ShardFn),
    Conn(ConnFn),
    Server(ServerFn),
    /// A container (CLIENT, CONFIG, OBJECT...): the real entry is a subcommand.
    Container,
}

/// How a multi-key [`Exec::Shard`] command is split when its keys span shards.
/// Without a `Merge` it runs once over a gathered view of all its keys instead.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Merge {
    /// Each part returns an integer; the reply is the sum (DEL, EXISTS, TOUCH, UNLINK).
    SumInt,
    /// Each part returns an array, one element per key; reassembled in key order (MGET).
    Ordered,
    /// Each part returns +OK (MSET).
    AllOk,
}

/// Finds a command's key indexes in argv (see [`Command::find_keys`]).
pub type KeyFinder = fn(&[Bytes]) -> Vec<usize>;

/// The script a request runs (its arguments checked, an EVAL's body cached), or the
/// error it gets instead (see [`Command::script`]).
pub type ScriptOf = fn(&ClientRef, &Shards, &[Bytes]) -> crate::scripting::run::Built;

/// Which of its keys a write modifies, for WATCH (and, later, keyspace events): Redis
/// signals exactly these (`signalModifiedKey`), only when the command changed data.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Touch {
    /// Every key it names (most writes).
    Keys,
    /// Only the keys that existed before it ran (DEL, UNLINK).
    Existing,
    /// Only the key at this argv index: the destination of BITOP and the STORE forms.
    Only(usize),
    /// Every key but the one at this argv index (SORT's and GEORADIUS's source).
    AllBut(usize),
    /// Only the key its reply names first: the pops over several keys.
    Popped,
    /// Every key; the key at argv `key` only if the set there did not already hold
    /// argv `member` (SMOVE's destination).
    UnlessMember { key: usize, member: usize },
    /// Only the key at this argv index, in the database its `DB` option names
    /// (COPY's destination).
    OnlyInDbOption(usize),
    /// Every key, in this database and in the one named at this argv index (MOVE).
    AlsoInDbArg(usize),
}

impl Touch {
    /// True if the rule reaches databases other than the client's.
    pub fn crosses_dbs(self) -> bool {
        matches!(self, Touch::OnlyInDbOption(_) | Touch::AlsoInDbArg(_))
    }
}

/// How a write's effect leaves through the propagation hook (AOF, replication).
#[derive(Clone, Copy)]
pub enum Propagation {
    /// Not declared: the metadata test fails for a write command left like this.
    Unset,
    /// As received.
    Verbatim,
    /// Rewritten as Redis 7.0 propagates it (see [`propagate`]): the records to log,
    /// from the state the command left, its argv and its reply.
    Rewrite(propagate::RewriteFn),
    /// A `Server` write whose handler claims only what it touches and propagates its
    /// own effects (MIGRATE, as DEL): the runtime neither holds every shard for it
    /// nor logs it as sent.
    Own,
}

/// Where a blocking command's timeout is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TimeoutArg {
    Last,
    At(usize),
    /// In milliseconds after a BLOCK option; without it the command never blocks
    /// (XREAD).
    BlockOption,
}

/// How a blocking command blocks (its handler is the non-blocking attempt).
#[derive(Clone, Copy, Debug)]
pub struct Blocking {
    pub timeout: TimeoutArg,
    /// Its reply when nothing was served: null array (the pops) or null bulk (BLMOVE).
    pub null_bulk: bool,
    /// It moves an element to its second key (BLMOVE, BRPOPLPUSH): waits on the
    /// first key only, and may have to run over two shards when served.
    pub moves: bool,
    /// It is served from sorted sets (BZPOPMIN...), else from lists.
    pub sorted_set: bool,
    /// Its keys follow a count of them (BLMPOP / BZMPOP's numkeys).
    pub counted_keys: bool,
    /// It reads streams (XREAD): every blocked reader whose ID is below a new entry
    /// is served, none consumes.
    pub stream: bool,
}

impl Blocking {
    /// BLPOP / BRPOP: waits on every key, timeout last, null array when nothing came.
    pub const POP: Blocking = Blocking {
        timeout: TimeoutArg::Last,
        null_bulk: false,
        moves: false,
        sorted_set: false,
        counted_keys: false,
        stream: false,
    };
    /// BZPOPMIN / BZPOPMAX.
    pub const ZPOP: Blocking = Blocking {
        sorted_set: true,
        ..Blocking::POP
    };
    /// BLMPOP: the timeout first, then numkeys.
    pub const MPOP: Blocking = Blocking {
        timeout: TimeoutArg::At(1),
        counted_keys: true,
        ..Blocking::POP
    };
    /// BZMPOP.
    pub const ZMPOP: Blocking = Blocking {
        sorted_set: true,
        ..Blocking::MPOP
    };
    /// XREAD BLOCK.
    pub const STREAM: Blocking = Blocking {
        timeout: TimeoutArg::BlockOption,
        stream: true,
        ..Blocking::POP
    };
    /// BLMOVE / BRPOPLPUSH.
    pub const MOVE: Blocking = Blocking {
        null_bulk: true,
        moves: true,
        ..Blocking::POP
    };
}

/// Facts about a command that Redis's flags do not carry but our runtime needs; each
/// is a bit of [`Command::traits`].
pub mod traits {
    /// Refused with -MISCONF after a failed background save, though not a write
    /// (PING, as Redis's `processCommand`).
    pub const REFUSED_ON_DISK_ERROR: u16 = 1;
    /// Read-only, yet signals its key modified for WATCH (PFCOUNT rewrites its cache).
    pub const TOUCHES_ON_READ: u16 = 1 << 1;
    /// Runs at once inside MULTI instead of being queued (EXEC, DISCARD, MULTI, WATCH,
    /// QUIT, RESET).
    pub const RUNS_IN_MULTI: u16 = 1 << 2;
    /// Ends a transaction: refused, it discards it (EXEC).
    pub const ENDS_MULTI: u16 = 1 << 3;
    /// Forgets the client's watched keys on every shard (RESET).
    pub const UNWATCHES: u16 = 1 << 4;
    /// Changes the client's database (SELECT): EXEC works out the db of what follows.
    pub const SELECTS_DB: u16 = 1 << 5;
    /// Drops every Pub/Sub subscription of the client, on every core (RESET).
    pub const UNSUBSCRIBES: u16 = 1 << 6;
    /// Allowed to a RESP2 client in subscribe mode: (P|S)(UN)SUBSCRIBE, PING, QUIT,
    /// RESET (Redis's `processCommand`).
    pub const SUBSCRIBE_CONTEXT: u16 = 1 << 7;
    /// PUBLISH (argv: name, channel, message): outside MULTI the runtime delivers it
    /// itself, so a read's PUBLISHes cost one job per listening core, not one each.
    pub const PUBLISHES: u16 = 1 << 8;
    /// SPUBLISH: as [`PUBLISHES`], to shard channels.
    pub const PUBLISHES_SHARD: u16 = 1 << 9;
    /// Ends MONITOR mode on the client's core (RESET).
    pub const ENDS_MONITOR: u16 = 1 << 10;
    /// Redis's `may_replicate` flag, which COMMAND INFO does not show (PUBLISH,
    /// SPUBLISH, PFCOUNT): with reads and writes, refused to a monitoring client.
    pub const MAY_REPLICATE: u16 = 1 << 11;
}

/// The indexes of a request's arguments that MONITOR shows as `"(redacted)"`.
pub type RedactFn = fn(&[Bytes]) -> Vec<usize>;

/// A command whose keys may include ones not named by its key spec (SORT's BY / GET
/// patterns) runs its own way when those reach other shards.
#[derive(Clone, Copy)]
pub struct Spread {
    /// True if this invocation reaches keys on shards other than its key's.
    pub reaches: fn(&Shards, &Command, &[Bytes]) -> bool,
    /// Runs it over every shard it reaches, atomically.
    pub run:
        for<'a> fn(&'a Shards, &'static Command, usize, &'a [Bytes]) -> LocalBoxFuture<'a, Reply>,
}

/// Command flags as bits: the admission and call paths test several per command, so
/// they are parsed once, when the table is built (at compile time: `Command::new` is a
/// `const fn`, and a flag name it does not know fails the build).
pub mod flag {
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Flag(pub(super) u64);

    /// Every flag an entry may carry; a flag's bit is its index here.
    const NAMES: &[&str] = &[
        "write",
        "readonly",
        "denyoom",
        "admin",
        "pubsub",
        "noscript",
        "blocking",
        "loading",
        "stale",
        "skip_monitor",
        "skip_slowlog",
        "asking",
        "fast",
        "no_auth",
        "may_replicate",
        "sentinel",
        "only_sentinel",
        "no_mandatory_keys",
        "protected",
        "no_async_loading",
        "no_multi",
        "movablekeys",
        "allow_busy",
        "module",
        "touches_arbitrary_keys",
    ];

    const fn same(a: &[u8], b: &[u8]) -> bool {
        if a.len() != b.len() {
            return false;
        }
        let mut i = 0;
        while i < a.len() {
            if a[i] != b[i] {
                return false;
            }
            i += 1;
        }
        true
    }

    const fn bit(name: &[u8]) -> u64 {
        let mut i = 0;
        while i < NAMES.len() {
            if same(NAMES[i].as_bytes(), name) {
                return 1 << i;
            }
            i += 1;
        }
        panic!("a command flag missing from commands::flag::NAMES")
    }

    const fn named(name: &str) -> Flag {
        Flag(bit(name.as_bytes()))
    }

    /// The bits of a space-separated flag list.
    pub(super) const fn parse(flags: &str) -> u64 {
        let b = flags.as_bytes();
        let (mut bits, mut start, mut i) = (0, 0, 0);
        while i <= b.len() {
            if i == b.len() || b[i] == b' ' {
                if i > start {
                    let (_, rest) = b.split_at(start);
                    let (word, _) = rest.split_at(i - start);
                    bits |= bit(word);
                }
                start = i + 1;
            }
            i += 1;
        }
        bits
    }

    pub const WRITE: Flag = named("write");
    pub const READONLY: Flag = named("readonly");
    pub const DENYOOM: Flag = named("denyoom");
    pub const ADMIN: Flag = named("admin");
    pub const PUBSUB: Flag = named("pubsub");
    pub const NOSCRIPT: Flag = named("noscript");
    pub const BLOCKING: Flag = named("blocking");
    pub const LOADING: Flag = named("loading");
    pub const STALE: Flag = named("stale");
    pub const SKIP_MONITOR: Flag = named("skip_monitor");
    pub const SKIP_SLOWLOG: Flag = named("skip_slowlog");
    pub const ASKING: Flag = named("asking");
    pub const FAST: Flag = named("fast");
    pub const NO_AUTH: Flag = named("no_auth");
    pub const MAY_REPLICATE: Flag = named("may_replicate");
    pub const NO_MANDATORY_KEYS: Flag = named("no_mandatory_keys");
    pub const NO_MULTI: Flag = named("no_multi");
    pub const ALLOW_BUSY: Flag = named("allow_busy");
}

#[derive(Clone, Copy)]
pub struct Command {
    /// Lower case; subcommands are `container|sub`.
    pub name: &'static str,
    /// Redis's arity: N = exactly N args (name included), -N = at least N.
    pub arity: i32,
    /// Space-separated Redis flags: write readonly denyoom fast admin noscript loading stale ...
    pub flags: &'static str,
    /// The same flags as bits, for [`Command::has_flag`] (made by `new`).
    flag_bits: u64,
    pub first_key: i32,
    pub last_key: i32,
    pub key_step: i32,
    /// Space-separated ACL categories without '@' (`read string fast`).
    pub acl: &'static str,
    pub exec: Exec,
    /// Finds the keys of a command whose keys move (`movablekeys`: ZUNIONSTORE's
    /// numkeys, SORT's STORE...); first/last/step are still COMMAND INFO's legacy range.
    pub find_keys: Option<KeyFinder>,
    pub split: Option<Merge>,
    pub subcommands: &'static [Command],
    /// Which keys a write modifies, for WATCH.
    pub touch: Touch,
    /// How a write's effect is propagated (AOF, replication).
    pub propagation: Propagation,
    /// How it blocks, for commands flagged `blocking`.
    pub blocking: Option<Blocking>,
    /// Bits of [`traits`].
    pub traits: u16,
    /// Its own multi-shard path, for keys its key spec does not name.
    pub spread: Option<Spread>,
    /// Its secret arguments, hidden from MONITOR (AUTH's password).
    pub redact: Option<RedactFn>,
    /// For a command that runs a script or a function (EVAL, EVALSHA, FCALL and their
    /// _RO forms): the script it runs, built from its arguments. In a pipeline such a
    /// request may join its shard's batch (`scripting::run::batchable`).
    pub script: Option<ScriptOf>,
}

/// The indexes of a command's keys (see [`Command::key_index_iter`]).
pub enum KeyIndexes {
    Fixed(std::iter::StepBy<std::ops::Range<usize>>),
    Found(std::vec::IntoIter<usize>),
}

impl Iterator for KeyIndexes {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        match self {
            KeyIndexes::Fixed(r) => r.next(),
            KeyIndexes::Found(v) => v.next(),
        }
    }
}

impl Command {
    /// A command entry; fill in the rest with the builder methods.
    pub const fn new(
        name: &'static str,
        arity: i32,
        flags: &'static str,
        acl: &'static str,
        exec: Exec,
    ) -> Command {
        Command {
            name,
            arity,
            flags,
            flag_bits: flag::parse(flags),
            first_key: 0,
            last_key: 0,
            key_step: 0,
            acl,
            exec,
            find_keys: None,
            split: None,
            subcommands: &[],
            touch: Touch::Keys,
            propagation: Propagation::Unset,
            blocking: None,
            traits: 0,
            spread: None,
            redact: None,
            script: None,
        }
    }
    /// It runs the script `f` builds (see [`Command::script`]).
    pub const fn runs_script(mut self, f: ScriptOf) -> Command {
        self.script = Some(f);
        self
    }
    /// Arguments MONITOR and the slow log must not show, as `f` finds them.
    pub const fn redacts(mut self, f: RedactFn) -> Command {
        self.redact = Some(f);
        self
    }
    /// `argv` as MONITOR and the slow log show it: its secrets (see [`Command::redacts`])
    /// replaced by `(redacted)`.
    pub fn redacted<'a>(&self, argv: &'a [Bytes]) -> std::borrow::Cow<'a, [Bytes]> {
        let secret = self.redact.map(|f| f(argv)).unwrap_or_default();
        if secret.is_empty() {
            return argv.into();
        }
        let mut shown = argv.to_vec();
        for i in secret {
            if let Some(arg) = shown.get_mut(i) {
                *arg = Bytes::from_static(b"(redacted)");
            }
        }
        shown.into()
    }
    /// Which keys it modifies for WATCH, when not all it names.
    pub const fn touch(mut self, t: Touch) -> Command {
        self.touch = t;
        self
    }
    /// Its handler propagates its effects and claims what it touches
    /// ([`Propagation::Own`]).
    pub const fn propagates_itself(mut self) -> Command {
        self.propagation = Propagation::Own;
        self
    }
    /// True for a command whose handler propagates its own effects.
    pub fn owns_its_effects(&self) -> bool {
        matches!(self.propagation, Propagation::Own)
    }
    /// Propagated as received.
    pub const fn verbatim(mut self) -> Command {
        self.propagation = Propagation::Verbatim;
        self
    }
    /// Propagated as `f` rewrites it.
    pub const fn propagate(mut self, f: propagate::RewriteFn) -> Command {
        self.propagation = Propagation::Rewrite(f);
        self
    }
    pub const fn blocking(mut self, b: Blocking) -> Command {
        self.blocking = Some(b);
        self
    }
    /// Add bits of [`traits`].
    pub const fn traits(mut self, t: u16) -> Command {
        self.traits |= t;
        self
    }
    pub const fn spread(mut self, s: Spread) -> Command {
        self.spread = Some(s);
        self
    }
    pub fn has_trait(&self, t: u16) -> bool {
        self.traits & t != 0
    }
    pub const fn keys(mut self, first: i32, last: i32, step: i32) -> Command {
        self.first_key = first;
        self.last_key = last;
        self.key_step = step;
        self
    }
    /// Keys found by `f` over argv (indexes; out-of-range ones are ignored).
    pub const fn find_keys(mut self, f: KeyFinder) -> Command {
        self.find_keys = Some(f);
        self
    }
    pub const fn split(mut self, m: Merge) -> Command {
        self.split = Some(m);
        self
    }
    pub const fn subcommands(mut self, s: &'static [Command]) -> Command {
        self.subcommands = s;
        self
    }
    /// True if the entry carries flag `f` (one of [`flag`]'s constants).
    pub fn has_flag(&self, f: flag::Flag) -> bool {
        self.flag_bits & f.0 != 0
    }
    pub fn is_write(&self) -> bool {
        self.has_flag(flag::WRITE)
    }

    /// Its own multi-shard path, if this invocation reaches keys on shards other than
    /// its key's (SORT's BY / GET patterns: see [`Spread`]).
    pub fn spread_over(&self, shards: &Shards, argv: &[Bytes]) -> Option<Spread> {
        self.spread.filter(|s| (s.reaches)(shards, self, argv))
    }

    /// Indexes into argv of this command's keys: its key finder's, or per
    /// first/last/step.
    pub fn key_indexes(&self, argv: &[Bytes]) -> Vec<usize> {
        match self.find_keys {
            Some(f) => {
                let mut keys = f(argv);
                keys.retain(|&k| k > 0 && k < argv.len());
                keys
            }
            None => self.fixed_key_indexes(argv.len()),
        }
    }

    /// [`Command::key_indexes`], allocating only for a command that finds its keys by
    /// parsing its arguments (most name theirs by position: routing a GET allocated a
    /// vector for its one key).
    pub fn key_index_iter(&self, argv: &[Bytes]) -> KeyIndexes {
        match self.find_keys {
            Some(_) => KeyIndexes::Found(self.key_indexes(argv).into_iter()),
            None => KeyIndexes::Fixed(self.fixed_key_range(argv.len())),
        }
    }

    /// Indexes of the keys per first/last/step for `argc` arguments.
    pub fn fixed_key_indexes(&self, argc: usize) -> Vec<usize> {
        self.fixed_key_range(argc).collect()
    }

    /// [`Command::fixed_key_indexes`] without allocating.
    pub fn fixed_key_range(&self, argc: usize) -> std::iter::StepBy<std::ops::Range<usize>> {
        let step = self.key_step.max(1) as usize;
        let empty = (0..0).step_by(1);
        if self.first_key <= 0 || argc == 0 {
            return empty;
        }
        let first = self.first_key as usize;
        let last = if self.last_key < 0 {
            argc as i32 + self.last_key
        } else {
            self.last_key
        };
        if last < 0 || first >= argc {
            return empty;
        }
        let last = (last as usize).min(argc - 1);
        (first..last + 1).step_by(step)
    }

    /// Arity check as Redis does it.
    pub fn arity_ok(&self, argc: usize) -> bool {
        (self.arity > 0 && argc == self.arity as usize)
            || (self.arity < 0 && argc >= (-self.arity) as usize)
    }
}

/// All top-level commands this process serves, by family (sentinel mode serves its
/// own set: see `sentinel::serves`).
pub fn families() -> impl Iterator<Item = &'static Command> {
    [
        string::COMMANDS,
        acl::COMMANDS,
        bitmap::COMMANDS,
        keys::COMMANDS,
        expire::COMMANDS,
        connection::COMMANDS,
        server::COMMANDS,
        lolwut::COMMANDS,
        debug::COMMANDS,
        module::COMMANDS,
        persistence::COMMANDS,
        aof::COMMANDS,
        dump::COMMANDS,
        migrate::COMMANDS,
        info::COMMANDS,
        memory::COMMANDS,
        config::COMMANDS,
        slowlog::COMMANDS,
        transaction::COMMANDS,
        list::COMMANDS,
        hash::COMMANDS,
        set::COMMANDS,
        zset::COMMANDS,
        hll::COMMANDS,
        geo::COMMANDS,
        stream::COMMANDS,
        stream_groups::COMMANDS,
        sort::COMMANDS,
        cluster::COMMANDS,
        pubsub::COMMANDS,
        replication::COMMANDS,
        scripting::COMMANDS,
        function::COMMANDS,
        sentinel::COMMANDS,
    ]
    .into_iter()
    .flat_map(|f| f.iter())
    .filter(|c| sentinel::serves(c))
}

/// Name -> entry, hashed with foldhash: looked up for every request. Keyed by bytes,
/// so that a lookup need not check that the name it was sent is UTF-8.
pub type CommandMap = HashMap<&'static [u8], &'static Command, foldhash::fast::RandomState>;

/// Lookup table from lower-case name to entry.
pub fn table() -> &'static CommandMap {
    static TABLE: OnceLock<CommandMap> = OnceLock::new();
    TABLE.get_or_init(|| families().map(|c| (c.name.as_bytes(), c)).collect())
}

/// Find a command by name, case-insensitively, without allocating for short names.
pub fn lookup(name: &[u8]) -> Option<&'static Command> {
    let mut buf = [0u8; 32];
    if name.len() > buf.len() {
        return None;
    }
    for (d, s) in buf.iter_mut().zip(name) {
        *d = s.to_ascii_lowercase();
    }
    table().get(&buf[..name.len()]).copied()
}

/// `rename-command` (Redis's: applied once at start, in the file's order): the
/// commands clients reach under another name, and the names they no longer reach.
/// The table itself keeps the real names, which the server's own lookups use.
#[derive(Default)]
struct Renames {
    added: HashMap<String, &'static Command>,
    gone: std::collections::HashSet<String>,
}

static RENAMES: OnceLock<Renames> = OnceLock::new();

/// Apply `rename-command old new` pairs (`new` empty: the command is removed); Err
/// with Redis's text for a name that names no command or a taken new name.
pub fn rename(pairs: &[(String, String)]) -> Result<(), String> {
    let r = renames(pairs)?;
    if !pairs.is_empty() {
        let _ = RENAMES.set(r);
    }
    Ok(())
}

/// Whether `pairs`, applied in order, are valid renames (the configuration checks
/// each `rename-command` line as it reads it, so the error names its line).
pub fn check_renames(pairs: &[(String, String)]) -> Result<(), String> {
    renames(pairs).map(drop)
}

fn renames(pairs: &[(String, String)]) -> Result<Renames, String> {
    let mut r = Renames::default();
    for (old, new) in pairs {
        let (old, new) = (old.to_ascii_lowercase(), new.to_ascii_lowercase());
        let Some(cmd) = reached(&r, old.as_bytes()) else {
            return Err("No such command in rename-command".into());
        };
        r.added.remove(&old);
        r.gone.insert(old);
        if !new.is_empty() {
            if reached(&r, new.as_bytes()).is_some() {
                return Err("Target command name already exists".into());
            }
            r.gone.remove(&new);
            r.added.insert(new, cmd);
        }
    }
    Ok(r)
}

fn reached(r: &Renames, name: &[u8]) -> Option<&'static Command> {
    let lower = String::from_utf8_lossy(name).to_ascii_lowercase();
    if let Some(c) = r.added.get(&lower) {
        return Some(c);
    }
    if r.gone.contains(&lower) {
        return None;
    }
    lookup(name)
}

/// The command a client's name for it finds: [`lookup`] after `rename-command`.
pub fn lookup_named(name: &[u8]) -> Option<&'static Command> {
    match RENAMES.get() {
        None => lookup(name),
        Some(r) => reached(r, name),
    }
}

/// False for a command `rename-command` removed (renamed to ""): COMMAND no longer
/// lists or counts it, as Redis's table no longer holds it.
pub fn reachable(cmd: &Command) -> bool {
    match RENAMES.get() {
        None => true,
        Some(r) => !r.gone.contains(cmd.name) || r.added.values().any(|c| c.name == cmd.name),
    }
}

/// Find a subcommand of `container`, case-insensitively.
pub fn lookup_sub(container: &'static Command, sub: &[u8]) -> Option<&'static Command> {
    let want = String::from_utf8_lossy(sub).to_ascii_lowercase();
    container
        .subcommands
        .iter()
        .find(|c| c.name.rsplit('|').next() == Some(want.as_str()))
}

/// The table's own consistency: every fact the runtime reads from an entry is there.
#[cfg(test)]
mod metadata_tests {
    use super::*;

    fn all() -> impl Iterator<Item = &'static Command> {
        families().flat_map(|c| std::iter::once(c).chain(c.subcommands.iter()))
    }

    /// The bits say what the flag text says, for every entry and every named flag.
    #[test]
    fn flag_bits_follow_the_flag_text() {
        let named = [
            ("write", flag::WRITE),
            ("readonly", flag::READONLY),
            ("denyoom", flag::DENYOOM),
            ("admin", flag::ADMIN),
            ("pubsub", flag::PUBSUB),
            ("noscript", flag::NOSCRIPT),
            ("blocking", flag::BLOCKING),
            ("loading", flag::LOADING),
            ("stale", flag::STALE),
            ("skip_monitor", flag::SKIP_MONITOR),
            ("skip_slowlog", flag::SKIP_SLOWLOG),
            ("asking", flag::ASKING),
            ("fast", flag::FAST),
            ("no_auth", flag::NO_AUTH),
            ("may_replicate", flag::MAY_REPLICATE),
            ("no_mandatory_keys", flag::NO_MANDATORY_KEYS),
            ("no_multi", flag::NO_MULTI),
            ("allow_busy", flag::ALLOW_BUSY),
        ];
        let mut seen = 0;
        for c in all() {
            for (name, f) in named {
                let in_text = c.flags.split(' ').any(|w| w == name);
                assert_eq!(c.has_flag(f), in_text, "{}: flag {name}", c.name);
                seen += usize::from(in_text);
            }
        }
        assert!(seen > 100, "the table names few flags: {seen}");
    }

    #[test]
    fn every_write_declares_how_it_propagates() {
        let missing: Vec<&str> = all()
            .filter(|c| c.is_write() && matches!(c.propagation, Propagation::Unset))
            .map(|c| c.name)
            .collect();
        assert!(
            missing.is_empty(),
            "write commands without a propagation rule: {missing:?}"
        );
        let stray: Vec<&str> = all()
            .filter(|c| !c.is_write() && !matches!(c.propagation, Propagation::Unset))
            .map(|c| c.name)
            .collect();
        assert!(
            stray.is_empty(),
            "read-only commands with a propagation rule: {stray:?}"
        );
    }

    #[test]
    fn every_blocking_command_declares_how_it_blocks() {
        for c in all() {
            assert_eq!(
                c.has_flag(flag::BLOCKING),
                c.blocking.is_some(),
                "{}: the `blocking` flag and the blocking rule disagree",
                c.name
            );
            if let Some(b) = c.blocking {
                if let TimeoutArg::At(i) = b.timeout {
                    assert!(
                        c.arity.unsigned_abs() as usize > i,
                        "{}: timeout past arity",
                        c.name
                    );
                }
            }
        }
    }

    #[test]
    fn touch_rules_name_key_arguments() {
        for c in all() {
            let i = match c.touch {
                Touch::Only(i) | Touch::AllBut(i) | Touch::OnlyInDbOption(i) => i,
                Touch::UnlessMember { key, .. } => key,
                _ => continue,
            };
            assert!(
                c.is_write(),
                "{}: a touch rule on a read-only command",
                c.name
            );
            assert!(
                i >= 1 && (c.first_key as usize <= i || c.find_keys.is_some()),
                "{}",
                c.name
            );
        }
    }
}

/// Helpers for the families' unit tests: a lone shard and argv from strings.
#[cfg(test)]
pub mod testing {
    use super::Ctx;
    use crate::config::{Config, ConfigHandle};
    use crate::protocol::Reply;
    use crate::shard::Shard;
    use bytes::Bytes;

    /// A one-shard server's shard with the default configuration.
    pub fn shard() -> Shard {
        Shard::new(0, 1, ConfigHandle::new(Config::default()))
    }
    pub fn argv(v: &[&str]) -> Vec<Bytes> {
        v.iter()
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect()
    }
    /// Run handler `f` on db 0 of `s` with `args` as argv.
    pub fn run(s: &mut Shard, f: fn(&mut Ctx, &[Bytes]) -> Reply, args: &[&str]) -> Reply {
        f(&mut Ctx::new(s, 0), &argv(args))
    }
    /// A one-shard server's `Shards` handle (its inbox read by nobody), for `Server`
    /// handlers.
    pub fn one_shard() -> crate::runtime::Shards {
        use crate::runtime::hop::ServerInfo;
        use std::sync::Arc;
        let config = ConfigHandle::new(Config::default());
        let local = std::rc::Rc::new(std::cell::RefCell::new(Shard::new(0, 1, config.clone())));
        let (tx, _rx) = flume::unbounded();
        crate::runtime::Shards::new(
            0,
            local,
            Arc::new(vec![tx]),
            Arc::new(crate::runtime::slots::SlotTable::new(1)),
            Arc::new(ServerInfo::new(
                config,
                Box::<crate::persistence::Persistence>::default(),
            )),
            Arc::new(vec![std::sync::atomic::AtomicBool::new(true)]),
        )
    }
    /// A client on loopback with id `id`.
    pub fn client(id: u64) -> crate::client::ClientRef {
        let addr: std::net::SocketAddr = "127.0.0.1:1".parse().expect("address");
        let c = crate::client::Client::new(id, addr, addr, -1, 0);
        std::rc::Rc::new(std::cell::RefCell::new(c))
    }
    /// [`run`], with the reply as a RESP2 client reads it ([`Reply::resp2_view`]).
    pub fn run_resp2(s: &mut Shard, f: fn(&mut Ctx, &[Bytes]) -> Reply, args: &[&str]) -> Reply {
        run(s, f, args).resp2_view()
    }
}

/// What a command runs with on its shard.
pub struct Ctx<'a> {
    pub shard: &'a mut Shard,
    pub db: usize,
    pub now_ms: u64,
    /// CLIENT NO-TOUCH: reads do not update LRU.
    pub no_touch: bool,
}

impl<'a> Ctx<'a> {
    pub fn new(shard: &'a mut Shard, db: usize) -> Ctx<'a> {
        Self::at(shard, db, crate::clock::now_ms())
    }
    /// A context whose clock reads `now_ms` (one clock read serves a whole batch).
    pub fn at(shard: &'a mut Shard, db: usize, now_ms: u64) -> Ctx<'a> {
        Ctx {
            shard,
            db,
            now_ms,
            no_touch: false,
        }
    }
    pub fn db(&mut self) -> &mut Db {
        &mut self.shard.dbs[self.db]
    }
    /// Lookup for reading: counts keyspace hits / misses and touches LRU.
    pub fn lookup_read(&mut self, key: &[u8]) -> Option<&mut Entry> {
        let now = self.now_ms;
        let touch = !self.no_touch;
        let stats = &mut self.shard.stats;
        match self.shard.dbs[self.db].lookup(key, now) {
            Some(e) => {
                stats.keyspace_hits += 1;
                if touch {
                    crate::storage::access::touch(&mut e.lru);
                }
                Some(e)
            }
            None => {
                stats.keyspace_misses += 1;
                crate::notify::raise(crate::notify::KEY_MISS, "keymiss", self.db, key);
                None
            }
        }
    }
    /// Lookup for writing: no hit/miss accounting; an access all the same (Redis's
    /// `lookupKeyWrite` touches LRU and LFU too).
    pub fn lookup_write(&mut self, key: &[u8]) -> Option<&mut Entry> {
        let now = self.now_ms;
        let touch = !self.no_touch;
        let e = self.shard.dbs[self.db].lookup(key, now)?;
        if touch {
            crate::storage::access::touch(&mut e.lru);
        }
        Some(e)
    }
    /// Lookup of an entry the caller is about to change in place (APPEND, INCR,
    /// SETRANGE, SETBIT...): counts as a modification for WATCH.
    pub fn modify(&mut self, key: &[u8]) -> Option<&mut Entry> {
        let now = self.now_ms;
        self.shard.dbs[self.db].lookup_modify(key, now)
    }
    /// Raise keyspace event `name` of `class` on `key` in this database (see
    /// [`crate::notify`]); nothing unless that class is on.
    #[inline]
    pub fn notify(&self, class: u32, name: &'static str, key: &[u8]) {
        crate::notify::raise(class, name, self.db, key);
    }
    /// True if the key exists (expiring it if due), without touching stats.
    pub fn exists(&mut self, key: &[u8]) -> bool {
        let now = self.now_ms;
        self.shard.dbs[self.db].contains(key, now)
    }
}

/// Error replies whose text must match Redis exactly, built in one place.
/// Replies drawn with repetition (SRANDMEMBER, HRANDFIELD, ZRANDMEMBER with a negative
/// count): built as bytes while drawing, a few per element like Redis's output buffer,
/// and capped, since Redis answers any count and one huge count could otherwise take
/// all the memory or keep a shard busy for hours.
pub mod random_reply {
    use crate::protocol::Reply;

    /// Largest reply built.
    pub const MAX_BYTES: usize = 1 << 31;

    pub fn too_large() -> Reply {
        super::errors::reply_too_large(MAX_BYTES)
    }
    /// Refuse, before drawing, `count` elements of at least `min_bytes` each (6 for
    /// `$0\r\n\r\n`) that cannot fit.
    pub fn check(count: u64, min_bytes: u64) -> Result<(), Reply> {
        if count.saturating_mul(min_bytes) > MAX_BYTES as u64 {
            return Err(too_large());
        }
        Ok(())
    }
}

/// Argument helpers shared by every family.
pub mod args {
    use super::errors;
    use crate::protocol::parse::parse_i64;
    use crate::protocol::Reply;

    /// Parse an integer argument with Redis's rules, or the standard error.
    pub fn int(b: &[u8]) -> Result<i64, Reply> {
        parse_i64(b).ok_or_else(errors::not_integer)
    }
    pub fn eq(a: &[u8], lit: &str) -> bool {
        a.eq_ignore_ascii_case(lit.as_bytes())
    }
    /// A blocking command's timeout in seconds (fractions allowed), as Redis's
    /// `getTimeoutFromObjectOrReply`: milliseconds to wait, 0 meaning forever.
    pub fn timeout_ms(b: &[u8]) -> Result<u64, Reply> {
        use crate::storage::long_double::LongDouble;
        if let Some(secs) = parse_i64(b) {
            // Whole seconds exactly (a double would round 9223372036854775 up past
            // the range Redis's long double keeps it in).
            let ms = i128::from(secs) * 1000;
            return match i64::try_from(ms) {
                Ok(ms) if ms >= 0 => Ok(forever_if_past_the_end(ms)),
                _ => Err(Reply::err(errors::TIMEOUT_NEGATIVE)),
            };
        }
        let not_float = || Reply::err(errors::TIMEOUT_NOT_FLOAT);
        let secs: f64 = match LongDouble::parse(b).ok_or_else(not_float)? {
            // Decimal through Rust's parser; what it refuses (hex floats) through C's
            // strtod rules, which the string already passed as a whole.
            LongDouble::Finite { .. } => std::str::from_utf8(b)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| crate::storage::zset::strtod(b).0),
            LongDouble::Inf { neg } => {
                if neg {
                    f64::NEG_INFINITY
                } else {
                    f64::INFINITY
                }
            }
            LongDouble::NaN => return Err(not_float()),
        };
        // (long long)(ftval * 1000.0): truncation toward zero, so -0.0001 is 0; on x86
        // a value beyond the range of long long (inf included) becomes LLONG_MIN,
        // which Redis then reports as negative.
        let ms = (secs * 1000.0).trunc();
        if !(0.0..9.223_372_036_854_776e18).contains(&ms) {
            return Err(Reply::err(errors::TIMEOUT_NEGATIVE));
        }
        Ok(forever_if_past_the_end(ms as i64))
    }
    /// A timeout of `ms` milliseconds from now, or 0 (forever) when the deadline would
    /// pass the end of time: Redis 7.0 adds it to the clock unchecked and the
    /// overflowed deadline never comes.
    pub fn forever_if_past_the_end(ms: i64) -> u64 {
        if ms > i64::MAX - crate::clock::now_ms() as i64 {
            0
        } else {
            ms as u64
        }
    }

    /// Parse a float as Redis's `string2ld`/`strtod` (no spaces, no NaN).
    pub fn float(b: &[u8]) -> Result<f64, Reply> {
        let s = std::str::from_utf8(b).map_err(|_| errors::not_float())?;
        if s.is_empty() || s.starts_with(char::is_whitespace) || s.ends_with(char::is_whitespace) {
            return Err(errors::not_float());
        }
        let v: f64 = match s.to_ascii_lowercase().as_str() {
            "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
            "-inf" | "-infinity" => f64::NEG_INFINITY,
            _ => s.parse().map_err(|_| errors::not_float())?,
        };
        if v.is_nan() {
            return Err(errors::not_float());
        }
        Ok(v)
    }

    /// A SCAN-family cursor, parsed as Redis's `parseScanCursorOrReply` (`strtoul`:
    /// an optional sign, a negative value wrapping around, nothing else around the
    /// digits), or `ERR invalid cursor`.
    pub fn scan_cursor(b: &[u8]) -> Result<u64, Reply> {
        let invalid = || Reply::err(errors::INVALID_CURSOR);
        let (neg, digits) = match b.first() {
            Some(b'-') => (true, &b[1..]),
            Some(b'+') => (false, &b[1..]),
            _ => (false, b),
        };
        if digits.is_empty() {
            // strtoul("") parses nothing and ends at the (empty) end: cursor 0; a lone
            // sign leaves the end on the sign: invalid.
            return if b.is_empty() { Ok(0) } else { Err(invalid()) };
        }
        let mut v: u64 = 0;
        for &c in digits {
            if !c.is_ascii_digit() {
                return Err(invalid());
            }
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add((c - b'0') as u64))
                .ok_or_else(invalid)?;
        }
        Ok(if neg { v.wrapping_neg() } else { v })
    }

    /// SSCAN / HSCAN / ZSCAN options from `argv[3..]` (Redis 7.0's
    /// `scanGenericCommand` on a key): `COUNT n` (n >= 1), `MATCH pattern`; anything
    /// else, TYPE included, is a syntax error. Returns (count, pattern), the pattern
    /// `None` when absent or `*`.
    pub fn collection_scan_options(
        argv: &[bytes::Bytes],
    ) -> Result<(usize, Option<bytes::Bytes>), Reply> {
        let (mut count, mut pattern) = (10usize, None);
        let mut i = 3;
        while i < argv.len() {
            let more = i + 1 < argv.len();
            if eq(&argv[i], "count") && more {
                let n = int(&argv[i + 1])?;
                if n < 1 {
                    return Err(errors::syntax());
                }
                count = usize::try_from(n).unwrap_or(usize::MAX);
            } else if eq(&argv[i], "match") && more {
                let p = argv[i + 1].clone();
                pattern = if p[..] == b"*"[..] { None } else { Some(p) };
            } else {
                return Err(errors::syntax());
            }
            i += 2;
        }
        Ok((count, pattern))
    }
}
