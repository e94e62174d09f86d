//! EVAL, EVALSHA, EVAL_RO, EVALSHA_RO and SCRIPT (Redis's `eval.c`): argument
//! parsing, the shebang line, the script cache. Running a script is
//! `crate::scripting::run`.

use super::{args, Command, Exec, LocalBoxFuture};
use crate::client::ClientRef;
use crate::protocol::Reply;
use crate::runtime::Shards;
use crate::scripting::{cache, engine, run};
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
    Command::new("eval", -3, EVAL, ACL, Exec::Server(eval)).find_keys(script_keys),
    Command::new("evalsha", -3, EVAL, ACL, Exec::Server(evalsha)).find_keys(script_keys),
    Command::new("eval_ro", -3, EVAL_RO, ACL, Exec::Server(eval_ro)).find_keys(script_keys),
    Command::new("evalsha_ro", -3, EVAL_RO, ACL, Exec::Server(evalsha_ro)).find_keys(script_keys),
    Command::new("script", -2, "", "slow", Exec::Container).subcommands(SCRIPT_SUBCOMMANDS),
];

/// The declared keys: `numkeys` arguments after it.
fn script_keys(argv: &[Bytes]) -> Vec<usize> {
    match argv.get(2).and_then(|n| args::int(n).ok()) {
        Some(n) if n > 0 && 3 + n as usize <= argv.len() => (3..3 + n as usize).collect(),
        _ => Vec::new(),
    }
}

fn eval<'a>(c: &'a ClientRef, s: &'a Shards, argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(eval_generic(c, s, argv, false, false))
}

fn evalsha<'a>(c: &'a ClientRef, s: &'a Shards, argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(eval_generic(c, s, argv, true, false))
}

fn eval_ro<'a>(c: &'a ClientRef, s: &'a Shards, argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(eval_generic(c, s, argv, false, true))
}

fn evalsha_ro<'a>(c: &'a ClientRef, s: &'a Shards, argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(eval_generic(c, s, argv, true, true))
}

async fn eval_generic(
    c: &ClientRef,
    s: &Shards,
    argv: &[Bytes],
    by_sha: bool,
    read_only: bool,
) -> Reply {
    let numkeys = match args::int(&argv[2]) {
        Ok(n) => n,
        Err(e) => return e,
    };
    if numkeys < 0 {
        return Reply::err("ERR Number of keys can't be negative");
    }
    if numkeys as usize > argv.len() - 3 {
        return Reply::err("ERR Number of keys can't be greater than number of args");
    }
    let (sha, body) = if by_sha {
        let sha = String::from_utf8_lossy(&argv[1]).to_ascii_lowercase();
        match cache::get(&sha) {
            Some(body) => (sha, body),
            None => return Reply::err("NOSCRIPT No matching script. Please use EVAL."),
        }
    } else {
        (cache::add(&argv[1]), argv[1].clone())
    };
    let flags = match shebang_flags(&body) {
        Ok(f) => f,
        Err(e) => return e,
    };
    let split = 3 + numkeys as usize;
    let script = run::Script {
        sha,
        body,
        keys: argv[3..split].to_vec(),
        args: argv[split..].to_vec(),
        read_only: read_only || flags.no_writes,
    };
    run::eval(c, s, script).await
}

/// What a `#!lua flags=...` first line declares (Redis 7.0's `evalExtractShebangFlags`).
#[derive(Default, Debug, PartialEq)]
struct ShebangFlags {
    no_writes: bool,
}

fn shebang_flags(body: &[u8]) -> Result<ShebangFlags, Reply> {
    let mut flags = ShebangFlags::default();
    if !body.starts_with(b"#!") {
        return Ok(flags);
    }
    let end = body.iter().position(|&b| b == b'\n').unwrap_or(body.len());
    let line = String::from_utf8_lossy(&body[..end]);
    let mut parts = line.split(' ').filter(|p| !p.is_empty());
    let engine = parts.next().unwrap_or_default();
    if engine != "#!lua" {
        return Err(Reply::error(format!(
            "ERR Unexpected engine in script shebang: {engine}"
        )));
    }
    for part in parts {
        let Some(list) = part.strip_prefix("flags=") else {
            return Err(Reply::error(format!(
                "ERR Unknown lua shebang option: {part}"
            )));
        };
        for flag in list.split(',').filter(|f| !f.is_empty()) {
            match flag {
                "no-writes" => flags.no_writes = true,
                "allow-oom" | "allow-stale" | "no-cluster" | "allow-cross-slot-keys" => {}
                other => {
                    return Err(Reply::error(format!(
                        "ERR Unexpected flag in script shebang: {other}"
                    )))
                }
            }
        }
    }
    Ok(flags)
}

fn script_load<'a>(
    _c: &'a ClientRef,
    _s: &'a Shards,
    argv: &'a [Bytes],
) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        let body = &argv[2];
        if let Err(e) = shebang_flags(body) {
            return e;
        }
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
    _s: &'a Shards,
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
        Reply::ok()
    })
}

fn script_kill<'a>(
    _c: &'a ClientRef,
    _s: &'a Shards,
    _argv: &'a [Bytes],
) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move { run::kill() })
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
        assert_eq!(shebang_flags(b"return 1"), Ok(ShebangFlags::default()));
        assert_eq!(
            shebang_flags(b"#!lua  flags=no-writes,allow-oom\nreturn 1"),
            Ok(ShebangFlags { no_writes: true })
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
