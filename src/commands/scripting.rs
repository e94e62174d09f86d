//! EVAL, EVALSHA, EVAL_RO, EVALSHA_RO and SCRIPT (Redis's `eval.c`): argument
//! parsing, the shebang line, the script cache. Running a script is
//! `crate::scripting::run`.

use super::{args, Command, Exec, LocalBoxFuture};
use crate::client::ClientRef;
use crate::protocol::Reply;
use crate::runtime::Shards;
use crate::scripting::run::Built;
use crate::scripting::{cache, engine, run, Flags};
use bytes::Bytes;

const EVAL: &str = "noscript stale skip_monitor no_mandatory_keys movablekeys";
const EVAL_RO: &str = "readonly noscript stale skip_monitor no_mandatory_keys movablekeys";
const ACL: &str = "slow scripting";

static SCRIPT_SUBCOMMANDS: &[Command] = &[
    Command::new(
        "script|load",
        3,
        "noscript stale",
        ACL,
        Exec::Server(script_load),
    ),
    Command::new(
        "script|exists",
        -3,
        "noscript",
        ACL,
        Exec::Server(script_exists),
    ),
    Command::new(
        "script|flush",
        -2,
        "noscript",
        ACL,
        Exec::Server(script_flush),
    ),
    Command::new(
        "script|kill",
        2,
        "noscript allow_busy",
        ACL,
        Exec::Server(script_kill),
    ),
    Command::new(
        "script|help",
        2,
        "loading stale",
        ACL,
        Exec::Server(script_help),
    ),
];

pub static COMMANDS: &[Command] = &[
    Command::new("eval", -3, EVAL, ACL, Exec::Server(eval))
        .find_keys(script_keys)
        .runs_script(eval_script),
    Command::new("evalsha", -3, EVAL, ACL, Exec::Server(evalsha))
        .find_keys(script_keys)
        .runs_script(evalsha_script),
    Command::new("eval_ro", -3, EVAL_RO, ACL, Exec::Server(eval_ro))
        .find_keys(script_keys)
        .runs_script(eval_ro_script),
    Command::new("evalsha_ro", -3, EVAL_RO, ACL, Exec::Server(evalsha_ro))
        .find_keys(script_keys)
        .runs_script(evalsha_ro_script),
    Command::new("script", -2, "", "slow", Exec::Container).subcommands(SCRIPT_SUBCOMMANDS),
];

/// The declared keys: `numkeys` arguments after it.
pub(super) fn script_keys(argv: &[Bytes]) -> Vec<usize> {
    match argv.get(2).and_then(|n| args::int(n).ok()) {
        Some(n) if n > 0 && 3 + n as usize <= argv.len() => (3..3 + n as usize).collect(),
        _ => Vec::new(),
    }
}

fn eval<'a>(c: &'a ClientRef, s: &'a Shards, argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    run::handle(c, s, eval_script(c, s, argv))
}

fn evalsha<'a>(c: &'a ClientRef, s: &'a Shards, argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    run::handle(c, s, evalsha_script(c, s, argv))
}

fn eval_ro<'a>(c: &'a ClientRef, s: &'a Shards, argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    run::handle(c, s, eval_ro_script(c, s, argv))
}

fn evalsha_ro<'a>(c: &'a ClientRef, s: &'a Shards, argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    run::handle(c, s, evalsha_ro_script(c, s, argv))
}

fn eval_script(c: &ClientRef, s: &Shards, argv: &[Bytes]) -> Built {
    script(c, s, argv, false, false)
}

fn evalsha_script(c: &ClientRef, s: &Shards, argv: &[Bytes]) -> Built {
    script(c, s, argv, true, false)
}

fn eval_ro_script(c: &ClientRef, s: &Shards, argv: &[Bytes]) -> Built {
    script(c, s, argv, false, true)
}

fn evalsha_ro_script(c: &ClientRef, s: &Shards, argv: &[Bytes]) -> Built {
    script(c, s, argv, true, true)
}

/// The script an EVAL, EVALSHA, EVAL_RO or EVALSHA_RO runs (`argv` checked, the body
/// in the cache), or the error it gets instead.
fn script(c: &ClientRef, s: &Shards, argv: &[Bytes], by_sha: bool, read_only: bool) -> Built {
    let numkeys = args::int(&argv[2])?;
    if numkeys < 0 {
        return Err(Reply::err("ERR Number of keys can't be negative"));
    }
    if numkeys as usize > argv.len() - 3 {
        return Err(Reply::err(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    let (sha, body) = if by_sha {
        let sha = match std::str::from_utf8(&argv[1]) {
            Ok(text) => text.to_ascii_lowercase(),
            Err(_) => String::from_utf8_lossy(&argv[1]).to_ascii_lowercase(),
        };
        match cache::get(&sha) {
            Some(body) => (sha, body),
            None => return Err(Reply::err("NOSCRIPT No matching script. Please use EVAL.")),
        }
    } else {
        (cache::sha1_hex(&argv[1]), argv[1].clone())
    };
    let flags = shebang_flags(&body)?;
    // (Forgotten again if it does not compile: `run`.)
    if !by_sha {
        cache::insert(&sha, &body);
    }
    let read_only = prepare(c, s, flags, read_only)?;
    let split = 3 + numkeys as usize;
    // A script without a shebang line may not start writing while the server is
    // out of memory (Redis's `script_oom`, taken when it starts).
    let compat = flags.is_none() && !c.borrow().repl.is_master;
    let oom = compat && {
        let local = s.local.borrow();
        crate::shard::evict::out_of_memory(&local.config)
    };
    let writes_refused = if compat { writes_refused(s) } else { None };
    // A script without a shebang line runs as before 7.0, free to cross slots.
    let cross_slot = flags.is_none_or(|f| f.has(Flags::ALLOW_CROSS_SLOT));
    let script = run::Script {
        cluster: run::ClusterCheck::for_caller(c, &argv[3..split], cross_slot),
        name: sha,
        kind: run::Kind::Eval(body),
        keys: argv[3..split].to_vec(),
        args: argv[split..].to_vec(),
        read_only,
        oom,
        writes_refused,
        command: Vec::new(),
        monitor: None,
        tracker: None,
        acl: None,
    };
    Ok(Box::new(script))
}

/// What a script without a shebang line gets for a write command, if the server
/// refuses writes now (Redis's `scriptVerifyWriteCommandAllow`, in its order): a
/// read-only replica's `-READONLY`, a failed save's `-MISCONF`, too few good replicas'
/// `-NOREPLICAS`. (A script with flags was refused before it started: `prepare`.)
fn writes_refused(s: &Shards) -> Option<Reply> {
    let server = &s.server;
    let local = s.local.borrow();
    let cfg = &local.config;
    if crate::replication::is_replica(server) && cfg.get_bool("replica-read-only") {
        return Some(Reply::err(super::errors::READONLY_REPLICA));
    }
    if let Some(misconf) = server.durability.writes_refused(cfg) {
        return Some(misconf);
    }
    crate::replication::too_few_good_replicas(server, cfg)
        .then(|| Reply::err(super::errors::NOREPLICAS))
}

/// Before a script runs (Redis's `scriptPrepareForRun`): refuse it where its flags
/// say it cannot run (`flags` is `None` for a script without a shebang line, which
/// runs as before 7.0). Whether it runs read-only.
pub(super) fn prepare(
    c: &ClientRef,
    s: &Shards,
    flags: Option<Flags>,
    ro: bool,
) -> Result<bool, Reply> {
    let server = &s.server;
    let replica = crate::replication::is_replica(server);
    if flags.is_none() && !replica {
        // The common case, a plain EVAL on a master: nothing to check.
        return Ok(ro);
    }
    let local = s.local.borrow();
    let cfg = &local.config;
    let stale = replica
        && !crate::replication::link_up(server)
        && !cfg.get_bool("replica-serve-stale-data");
    let Some(flags) = flags else {
        if stale {
            return Err(Reply::err(super::errors::MASTERDOWN));
        }
        return Ok(ro);
    };
    if flags.has(Flags::NO_CLUSTER) && crate::cluster::enabled() {
        return Err(Reply::err(
            "ERR Can not run script on cluster, 'no-cluster' flag is set.",
        ));
    }
    // Redis refuses these before the script as it would a write command (its flags
    // make the call one: `scriptFlagsToCmdFlags`), with the same errors.
    let from_master = c.borrow().repl.is_master;
    if !flags.has(Flags::NO_WRITES) && replica && cfg.get_bool("replica-read-only") && !from_master
    {
        return Err(Reply::err(super::errors::READONLY_REPLICA));
    }
    if stale && !flags.has(Flags::ALLOW_STALE) {
        return Err(Reply::err(super::errors::MASTERDOWN));
    }
    if !flags.has(Flags::NO_WRITES) {
        if ro {
            return Err(Reply::err(
                "ERR Can not execute a script with write flag using *_ro command.",
            ));
        }
        // A script that may write and lacks `allow-oom` is a `denyoom` command.
        if !flags.has(Flags::ALLOW_OOM) && !from_master && crate::shard::evict::out_of_memory(cfg) {
            return Err(Reply::err(super::errors::OOM));
        }
        if !replica && crate::replication::too_few_good_replicas(server, cfg) {
            return Err(Reply::err(super::errors::NOREPLICAS));
        }
    }
    Ok(flags.has(Flags::NO_WRITES))
}

/// True if EVAL / EVALSHA / FCALL `argv` counts as a command that may write, as
/// Redis's `getCommandFlags` judges it before running (for CLIENT PAUSE WRITE): a
/// script without flags may replicate; one with flags writes unless it says
/// `no-writes`; an unknown script or function, or a bad shebang, keeps the command's
/// own flags (may replicate). The `_RO` forms never write.
pub fn may_write(name: &str, argv: &[Bytes]) -> bool {
    let flags = match (name, argv.get(1)) {
        ("eval", Some(body)) => shebang_flags(body).ok().flatten(),
        ("evalsha", Some(sha)) => {
            let sha = String::from_utf8_lossy(sha).to_ascii_lowercase();
            crate::scripting::cache::get(&sha).and_then(|body| shebang_flags(&body).ok().flatten())
        }
        ("fcall", Some(f)) => crate::scripting::functions::find(f).map(|(_, f)| f.flags),
        _ => return false,
    };
    flags.is_none_or(|f| !f.has(Flags::NO_WRITES))
}

/// What a `#!lua flags=...` first line declares (Redis 7.0's
/// `evalExtractShebangFlags`); `None` without a shebang line.
fn shebang_flags(body: &[u8]) -> Result<Option<Flags>, Reply> {
    let mut flags = Flags::default();
    if !body.starts_with(b"#!") {
        return Ok(None);
    }
    let Some(end) = body.iter().position(|&b| b == b'\n') else {
        return Err(Reply::err("ERR Invalid script shebang"));
    };
    let Some(parts) = crate::scripting::shebang_parts(&body[..end]) else {
        return Err(Reply::err("ERR Invalid engine in script shebang"));
    };
    let engine = &parts[0];
    if engine != "#!lua" {
        return Err(Reply::error(format!(
            "ERR Unexpected engine in script shebang: {engine}"
        )));
    }
    for part in &parts[1..] {
        let Some(list) = part.strip_prefix("flags=") else {
            return Err(Reply::error(format!(
                "ERR Unknown lua shebang option: {part}"
            )));
        };
        // Redis's sdssplitlen: no flag in an empty list, an empty one between commas.
        for flag in list.split(',').filter(|_| !list.is_empty()) {
            // Exact case here; function flags are matched in any case (as Redis).
            match Flags::named(flag).filter(|f| f.names().eq([flag])) {
                Some(f) => flags.add(f),
                None => {
                    return Err(Reply::error(format!(
                        "ERR Unexpected flag in script shebang: {flag}"
                    )))
                }
            }
        }
    }
    Ok(Some(flags))
}

fn script_load<'a>(
    c: &'a ClientRef,
    _s: &'a Shards,
    argv: &'a [Bytes],
) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        let body = &argv[2];
        if let Err(e) = shebang_flags(body) {
            return e;
        }
        if let Some(busy) = crate::scripting::run::busy_here(c).await {
            return busy;
        }
        crate::scripting::slices::interpreter_free().await;
        // Compiled here first: a script that does not compile is not cached.
        let sha = cache::sha1_hex(body);
        if let Err(msg) = engine::with(|e| e.function(&sha, body)) {
            return crate::scripting::convert::error_line(&msg);
        }
        cache::add(body);
        Reply::Bulk(Bytes::from(sha))
    })
}

fn script_exists<'a>(
    _c: &'a ClientRef,
    _s: &'a Shards,
    argv: &'a [Bytes],
) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        Reply::Array(
            argv[2..]
                .iter()
                .map(|sha| Reply::Int(cache::contains(sha) as i64))
                .collect(),
        )
    })
}

fn script_flush<'a>(
    _c: &'a ClientRef,
    s: &'a Shards,
    argv: &'a [Bytes],
) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        let ok = match argv.len() {
            2 => true,
            3 => args::eq(&argv[2], "sync") || args::eq(&argv[2], "async"),
            _ => false,
        };
        if !ok {
            return Reply::err("ERR SCRIPT FLUSH only support SYNC|ASYNC option");
        }
        cache::flush();
        run::forget_where_scripts_run();
        // Every core's interpreter is reset, as Redis resets its one.
        s.all(|_| crate::scripting::engine::retire_if_flushed())
            .await;
        Reply::ok()
    })
}

fn script_kill<'a>(
    _c: &'a ClientRef,
    _s: &'a Shards,
    _argv: &'a [Bytes],
) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move { run::kill(true) })
}

fn script_help<'a>(
    _c: &'a ClientRef,
    _s: &'a Shards,
    _argv: &'a [Bytes],
) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        super::config::help_reply(
            "SCRIPT",
            &[
                "DEBUG (YES|SYNC|NO)",
                "    Set the debug mode for subsequent scripts executed.",
                "EXISTS <sha1> [<sha1> ...]",
                "    Return information about the existence of the scripts in the script cache.",
                "FLUSH [ASYNC|SYNC]",
                "    Flush the Lua scripts cache. Very dangerous on replicas.",
                "    When called without the optional mode argument, the behavior is determined by the",
                "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
                "    * ASYNC: Asynchronously flush the scripts cache.",
                "    * SYNC: Synchronously flush the scripts cache.",
                "KILL",
                "    Kill the currently executing Lua script.",
                "LOAD <script>",
                "    Load a script into the scripts cache without executing it.",
            ],
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shebang_lines_as_redis_reads_them() {
        assert_eq!(shebang_flags(b"return 1"), Ok(None));
        let mut both = Flags::NO_WRITES;
        both.add(Flags::ALLOW_OOM);
        assert_eq!(
            shebang_flags(b"#!lua  flags=no-writes,allow-oom\nreturn 1"),
            Ok(Some(both))
        );
        assert_eq!(
            shebang_flags(b"#!lua\nreturn 1"),
            Ok(Some(Flags::default()))
        );
        assert_eq!(
            shebang_flags(b"#!python\nreturn 1"),
            Err(Reply::error(
                "ERR Unexpected engine in script shebang: #!python".into()
            ))
        );
        assert_eq!(
            shebang_flags(b"#!lua flags=bogus\n"),
            Err(Reply::error(
                "ERR Unexpected flag in script shebang: bogus".into()
            ))
        );
    }
}
