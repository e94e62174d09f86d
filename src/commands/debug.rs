//! DEBUG (Redis's `debug.c`): the subcommands tests and operators use. Each one is a
//! line in [`debug`] that calls the module owning the feature (persistence for DIGEST
//! and RELOAD), so this file stays a switchboard.

use super::connection::help_reply;
use super::{args, errors, Command, Exec, LocalBoxFuture};
use crate::client::ClientRef;
use crate::protocol::Reply;
use crate::runtime::Shards;
use bytes::Bytes;

pub static COMMANDS: &[Command] = &[Command::new(
    "debug",
    -2,
    "admin noscript loading stale",
    "admin slow dangerous",
    Exec::Server(debug),
)];

/// The option that protects `cmd` (Redis's `CMD_PROTECTED` commands: DEBUG, MODULE
/// LOAD / LOADEX / UNLOAD) and the refusal when it does not allow the client, checked
/// when the command is admitted, so that inside MULTI it dooms EXEC as in Redis.
pub fn protection(cmd: &Command) -> Option<(&'static str, &'static str)> {
    match cmd.name {
        "debug" => Some(("enable-debug-command", errors::DEBUG_NOT_ALLOWED)),
        "module|load" | "module|loadex" | "module|unload" => {
            Some(("enable-module-command", errors::MODULE_NOT_ALLOWED))
        }
        _ => None,
    }
}

/// An `enable-debug-command` / `enable-module-command` style option (`no`, Redis's
/// default, refuses; `local` allows loopback clients only; `yes` allows everyone):
/// does it let client `c` run its command?
pub fn option_allows(option: &str, c: &ClientRef, s: &Shards) -> bool {
    let setting = s
        .local
        .borrow()
        .config
        .get(option)
        .unwrap_or("no")
        .to_ascii_lowercase();
    match setting.as_str() {
        "yes" => true,
        "local" => c.borrow().addr.ip().is_loopback(),
        _ => false,
    }
}

fn debug<'a>(c: &'a ClientRef, s: &'a Shards, argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        // (`enable-debug-command` was checked at admission: `protection`.)
        let sub = String::from_utf8_lossy(&argv[1]).to_ascii_lowercase();
        match (sub.as_str(), argv.len()) {
            ("sleep", 3) => {
                // C's strtod, as Redis: what does not parse sleeps 0 seconds.
                let secs = crate::storage::zset::strtod(&argv[2]).0;
                let secs = if secs.is_nan() { 0.0 } else { secs };
                // Like Redis, DEBUG SLEEP blocks the server: here, this core's shard.
                let _held = s.local.borrow_mut();
                std::thread::sleep(std::time::Duration::from_secs_f64(secs.clamp(0.0, 3600.0)));
                Reply::ok()
            }
            ("set-active-expire", 3) => {
                let on = args::int(&argv[2]).map(|v| v != 0).unwrap_or(true);
                s.all(move |shard| shard.expire.disabled = !on).await;
                Reply::ok()
            }
            ("object", 3) => {
                let (db, key) = (c.borrow().db, argv[2].clone());
                s.on(s.shard_of(&key), move |shard| object(shard, db, &key))
                    .await
            }
            ("populate", 3..=5) => populate(c, s, &argv[2..]).await,
            ("digest", 2) => crate::persistence::digest::debug_digest(s).await,
            ("digest-value", _) => {
                let db = c.borrow().db;
                crate::persistence::digest::debug_digest_value_in(s, db, &argv[2..]).await
            }
            ("reload", _) => crate::persistence::save::debug_reload(s, &argv[2..]).await,
            ("change-repl-id", 2) => {
                // A new replication history (Redis's changeReplicationId and
                // clearReplicationId2).
                let mut st = crate::replication::of(&s.server).lock();
                st.replid = crate::replication::new_replid();
                st.replid2 = "0".repeat(40);
                st.second_offset = -1;
                Reply::ok()
            }
            ("set-disable-deny-scripts", 3) => {
                let on = args::int(&argv[2]).is_ok_and(|v| v != 0);
                crate::scripting::run::NOSCRIPT_ALLOWED.store(on, std::sync::atomic::Ordering::Relaxed);
                Reply::ok()
            }
            ("protocol", 3) => protocol(c.borrow().resp, &argv[2]),
            ("log", 3) => {
                let msg = String::from_utf8_lossy(&argv[2]);
                crate::log::warning(&format!("DEBUG LOG: {msg}"));
                Reply::ok()
            }
            ("error", 3) => {
                // Sent as it is, with no newline in it; Redis writes the bytes
                // itself, so they count in no error statistic, not even as a failed
                // call of DEBUG.
                let mut line = Vec::with_capacity(argv[2].len() + 3);
                line.push(b'-');
                line.extend(argv[2].iter().map(|&b| match b {
                    b'\r' | b'\n' => b' ',
                    b => b,
                }));
                line.extend_from_slice(b"\r\n");
                Reply::Raw(line.into())
            }
            ("help", 2) => help_reply(
                "DEBUG",
                &[
                    "DIGEST",
                    "    Output a hex signature representing the current DB content.",
                    "DIGEST-VALUE <key> [<key> ...]",
                    "    Output a hex signature of the values of all the specified keys.",
                    "ERROR <string>",
                    "    Return a Redis protocol error with <string> as message. Useful for clients",
                    "    unit tests to simulate Redis errors.",
                    "LOG <message>",
                    "    Write <message> to the server log.",
                    "OBJECT <key>",
                    "    Show low level info about the key and associated value.",
                    "POPULATE <count> [<prefix>] [<size>]",
                    "    Create <count> string keys named key:<num>. If <prefix> is specified then",
                    "    it is used instead of the 'key' prefix. These are not propagated to",
                    "    replicas. Cluster slots are not respected so keys not belonging to the",
                    "    current node can be created in cluster mode.",
                    "PROTOCOL <type>",
                    "    Reply with a test value of the specified type. <type> can be: string,",
                    "    integer, double, bignum, null, array, set, map, attrib, push, verbatim,",
                    "    true, false.",
                    "RELOAD [option ...]",
                    "    Save the RDB on disk and reload it back to memory. Valid <option> values:",
                    "    * MERGE: Merge the content of the RDB instead of flushing the current dataset.",
                    "    * NOFLUSH: Do not flush the current dataset before loading the RDB.",
                    "    * NOSAVE: the database will be loaded from an existing RDB file.",
                    "SLEEP <seconds>",
                    "    Stop the server for <seconds>. Decimals allowed.",
                    "SET-ACTIVE-EXPIRE <0|1>",
                    "    Setting it to 0 disables expiring keys in background when they are not accessed (otherwise the Redis behavior). Setting it to 1 reenables back the default.",
                ],
            ),
            _ => errors::debug_unknown_subcommand(&String::from_utf8_lossy(&argv[1])),
        }
    })
}

/// DEBUG PROTOCOL type: one test value of each RESP type, as Redis sends them (for
/// client libraries' tests). An attribute exists only in RESP3, where it precedes its
/// reply; a push is refused in RESP2.
#[allow(clippy::approx_constant)] // Redis's test double is 3.141, not pi.
fn protocol(resp: u8, name: &[u8]) -> Reply {
    let ints = || (0..3).map(Reply::Int).collect::<Vec<_>>();
    match name.to_ascii_lowercase().as_slice() {
        b"string" => Reply::bulk(b"Hello World"),
        b"integer" => Reply::Int(12345),
        b"double" => Reply::Double(3.141),
        b"bignum" => Reply::BigNumber("1234567999999999999999999999999999999".into()),
        b"null" => Reply::Null,
        b"array" => Reply::Array(ints()),
        b"set" => Reply::Set(ints()),
        b"map" => Reply::Map(
            (0..3)
                .map(|j| (Reply::Int(j), Reply::Bool(j == 1)))
                .collect(),
        ),
        b"attrib" => {
            let real = Reply::bulk(b"Some real reply following the attribute");
            if resp < 3 {
                return real;
            }
            let attribute = b"|1\r\n$14\r\nkey-popularity\r\n*2\r\n$7\r\nkey:123\r\n:90\r\n";
            Reply::Sequence(vec![Reply::Raw(Bytes::from_static(attribute)), real])
        }
        b"push" if resp < 3 => Reply::err("ERR RESP2 is not supported by this command"),
        b"push" => Reply::Sequence(vec![
            Reply::Push(vec![Reply::bulk(b"server-cpu-usage"), Reply::Int(42)]),
            Reply::bulk(b"Some real reply following the push reply"),
        ]),
        b"true" => Reply::Bool(true),
        b"false" => Reply::Bool(false),
        b"verbatim" => Reply::Verbatim("txt", Bytes::from_static(b"This is a verbatim\nstring")),
        _ => Reply::err(
            "ERR Wrong protocol type name. Please use one of the following: \
             string|integer|double|bignum|null|array|set|map|attrib|push|verbatim|true|false",
        ),
    }
}

/// A non-negative integer, or Redis's error (`getPositiveLongFromObjectOrReply`, whose
/// one message covers what does not parse too).
fn non_negative(arg: &[u8]) -> Result<u64, Reply> {
    match args::int(arg) {
        Ok(n) if n >= 0 => Ok(n as u64),
        _ => Err(Reply::err(errors::NOT_POSITIVE)),
    }
}

/// Keys DEBUG POPULATE creates per round of jobs: a large count never holds a shard
/// for long, nor the keys' names all at once in memory.
const POPULATE_BATCH: u64 = 64 * 1024;

/// DEBUG POPULATE count [prefix] [size] (`args`), as Redis's debug.c: string keys
/// `prefix:N` (prefix `key`; the name cut to 127 bytes, the prefix at a NUL byte, as
/// its C buffer does) holding `value:N`, cut or padded with zero bytes to `size` when
/// given and not 0; keys that exist are left alone. Like Redis it propagates nothing
/// and counts no change for the save points; each key raises the `new` keyspace event,
/// and WATCH and client-side caching see it change. Unlike Redis (which blocks while it runs), other clients' commands may run
/// between batches.
async fn populate(c: &ClientRef, s: &Shards, args: &[Bytes]) -> Reply {
    let count = match non_negative(&args[0]) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let size = match args.get(2).map(|a| non_negative(a)) {
        Some(Err(e)) => return e,
        Some(Ok(n)) => n as usize,
        None => 0,
    };
    let prefix = args.get(1).map_or(&b"key"[..], |p| &p[..]);
    let prefix = &prefix[..prefix.iter().position(|&b| b == 0).unwrap_or(prefix.len())];
    let (db, writer) = {
        let c = c.borrow();
        (c.db, c.id)
    };
    let mut from = 0;
    while from < count {
        let to = count.min(from + POPULATE_BATCH);
        let keys = (from..to).map(|j| {
            let mut key = prefix.to_vec();
            key.push(b':');
            key.extend_from_slice(j.to_string().as_bytes());
            key.truncate(127);
            (Bytes::from(key), j)
        });
        for (shard, batch) in s.group_by_shard(keys, |(k, _)| &k[..]) {
            s.on(shard, move |sh: &mut crate::shard::Shard| {
                let now = crate::clock::now_ms();
                let mut added = Vec::new();
                for (key, j) in batch {
                    if sh.dbs[db].contains(&key, now) {
                        continue;
                    }
                    let mut value = format!("value:{j}").into_bytes();
                    if size != 0 {
                        value.resize(size, 0);
                    }
                    let value = crate::storage::value::StrValue::from_bytes(&value);
                    let value = crate::storage::value::Value::Str(value);
                    sh.dbs[db].uncounted(|d| d.set(&key, value, false));
                    sh.watches.touch(db, &key);
                    added.push(key);
                }
                crate::tracking::invalidate(&added, writer);
                crate::runtime::pubsub::publish_events(crate::notify::take());
            })
            .await;
        }
        from = to;
    }
    Reply::ok()
}

/// DEBUG OBJECT: Redis's line about a key's value: where it lives, its encoding, the
/// length of its RDB serialization, and its LRU stamp and idle time. (Redis adds
/// `ql_*` fields for a quicklist, which this leaves out.)
fn object(shard: &mut crate::shard::Shard, db: usize, key: &[u8]) -> Reply {
    use crate::persistence::rdb::encode;
    let compress = shard.config.get_bool("rdbcompression");
    // Redis looks in the dict: a key past its TTL, not yet deleted, is described.
    let Some(entry) = shard.dbs[db].keys.get(key) else {
        return Reply::err("ERR no such key");
    };
    let mut body = Vec::new();
    encode::value_body(&mut body, &entry.value, encode::Options { compress });
    Reply::Status(
        format!(
            "Value at:{:p} refcount:{} encoding:{} serializedlength:{} lru:{} lru_seconds_idle:{}",
            &entry.value,
            super::keys::refcount(&entry.value, &shard.config),
            entry.value.encoding(),
            body.len(),
            entry.lru & 0xFF_FFFF,
            crate::storage::access::idle_seconds(entry.lru),
        )
        .into(),
    )
}
