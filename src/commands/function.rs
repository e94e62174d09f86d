//! FUNCTION and FCALL / FCALL_RO (Redis's `functions.c`): argument parsing and
//! replies. The libraries are `crate::scripting::functions`; a function runs as a
//! script does (`crate::scripting::run`).
//!
//! FUNCTION LOAD, DELETE, FLUSH and RESTORE are server-wide writes: they run holding
//! every shard and are propagated as sent, so the AOF and the replicas replay them.

use super::scripting::{prepare, script_keys};
use super::{args, errors, Command, Exec, LocalBoxFuture};
use crate::client::ClientRef;
use crate::protocol::Reply;
use crate::runtime::Shards;
use crate::scripting::functions::{self, Policy};
use crate::scripting::run::{self, Built};
use bytes::Bytes;

const ACL: &str = "slow scripting";
const WRITE_ACL: &str = "write slow scripting";

static FUNCTION_SUBCOMMANDS: &[Command] = &[
    Command::new(
        "function|load",
        -3,
        "write denyoom noscript",
        WRITE_ACL,
        Exec::Server(load),
    )
    .verbatim(),
    Command::new(
        "function|delete",
        3,
        "write noscript",
        WRITE_ACL,
        Exec::Server(delete),
    )
    .verbatim(),
    Command::new(
        "function|flush",
        -2,
        "write noscript",
        WRITE_ACL,
        Exec::Server(flush),
    )
    .verbatim(),
    Command::new(
        "function|restore",
        -3,
        "write denyoom noscript",
        WRITE_ACL,
        Exec::Server(restore),
    )
    .verbatim(),
    Command::new("function|list", -2, "noscript", ACL, Exec::Server(list)),
    Command::new("function|dump", 2, "noscript", ACL, Exec::Server(dump)),
    Command::new(
        "function|stats",
        2,
        "noscript allow_busy",
        ACL,
        Exec::Server(stats),
    ),
    Command::new(
        "function|kill",
        2,
        "noscript allow_busy",
        ACL,
        Exec::Server(kill),
    ),
    Command::new("function|help", 2, "loading stale", ACL, Exec::Server(help)),
];

const FCALL: &str = "noscript stale skip_monitor no_mandatory_keys movablekeys";
const FCALL_RO: &str = "readonly noscript stale skip_monitor no_mandatory_keys movablekeys";

pub static COMMANDS: &[Command] = &[
    Command::new("fcall", -3, FCALL, ACL, Exec::Server(fcall))
        .find_keys(script_keys)
        .runs_script(fcall_script),
    Command::new("fcall_ro", -3, FCALL_RO, ACL, Exec::Server(fcall_ro))
        .find_keys(script_keys)
        .runs_script(fcall_ro_script),
    Command::new("function", -2, "", "slow", Exec::Container).subcommands(FUNCTION_SUBCOMMANDS),
];

fn fcall<'a>(c: &'a ClientRef, s: &'a Shards, argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    run::handle(c, s, fcall_script(c, s, argv))
}

fn fcall_ro<'a>(c: &'a ClientRef, s: &'a Shards, argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    run::handle(c, s, fcall_ro_script(c, s, argv))
}

fn fcall_script(c: &ClientRef, s: &Shards, argv: &[Bytes]) -> Built {
    script(c, s, argv, false)
}

fn fcall_ro_script(c: &ClientRef, s: &Shards, argv: &[Bytes]) -> Built {
    script(c, s, argv, true)
}

/// The function FCALL[_RO] function numkeys key... arg... runs (`ro`: FCALL_RO), as
/// a script (`argv` checked), or the error it gets instead.
fn script(c: &ClientRef, s: &Shards, argv: &[Bytes], ro: bool) -> Built {
    let Some((_, f)) = functions::find(&argv[1]) else {
        return Err(Reply::err("ERR Function not found"));
    };
    let Ok(numkeys) = args::int(&argv[2]) else {
        return Err(Reply::err("ERR Bad number of keys provided"));
    };
    if numkeys > argv.len() as i64 - 3 {
        return Err(Reply::err(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    if numkeys < 0 {
        return Err(Reply::err("ERR Number of keys can't be negative"));
    }
    let read_only = prepare(c, s, Some(f.flags), ro)?;
    let split = 3 + numkeys as usize;
    let cross_slot = f.flags.has(crate::scripting::Flags::ALLOW_CROSS_SLOT);
    let script = run::Script {
        cluster: run::ClusterCheck::for_caller(c, &argv[3..split], cross_slot),
        name: f.name,
        kind: run::Kind::Function,
        keys: argv[3..split].to_vec(),
        args: argv[split..].to_vec(),
        read_only,
        // Functions always have flags: `prepare` refused a writing one already.
        oom: false,
        writes_refused: None,
        command: argv.to_vec(),
        monitor: None,
        tracker: None,
        acl: None,
    };
    Ok(Box::new(script))
}

/// An error of the registry's, as a reply (`ERR ` and the text).
fn error(text: String) -> Reply {
    Reply::error(format!("ERR {text}"))
}

/// FUNCTION LOAD [REPLACE] code
fn load<'a>(c: &'a ClientRef, _s: &'a Shards, argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        let mut replace = false;
        let mut at = 2;
        while at < argv.len() - 1 {
            if !args::eq(&argv[at], "replace") {
                let mut out = b"ERR Unknown option given: ".to_vec();
                out.extend_from_slice(&argv[at]);
                return Reply::ErrorBytes(out.into());
            }
            replace = true;
            at += 1;
        }
        // Code from a master or the AOF runs without the time limit, as in Redis.
        let timeout = !c.borrow().replicated();
        if let Some(busy) = crate::scripting::run::busy_here(c).await {
            return busy;
        }
        crate::scripting::slices::interpreter_free().await;
        match functions::load(&argv[at], replace, timeout) {
            Ok(name) => Reply::Bulk(Bytes::from(name)),
            Err(e) => error(e),
        }
    })
}

/// FUNCTION DELETE library
fn delete<'a>(_c: &'a ClientRef, _s: &'a Shards, argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        match functions::delete(&argv[2]) {
            Ok(()) => Reply::ok(),
            Err(e) => error(e),
        }
    })
}

/// FUNCTION FLUSH [ASYNC|SYNC] (the libraries are freed at once either way).
fn flush<'a>(_c: &'a ClientRef, _s: &'a Shards, argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        if argv.len() > 3 {
            return errors::unknown_subcommand_or_arity("FUNCTION", &argv[1]);
        }
        if argv.len() == 3 && !args::eq(&argv[2], "sync") && !args::eq(&argv[2], "async") {
            return Reply::err("ERR FUNCTION FLUSH only supports SYNC|ASYNC option");
        }
        functions::flush();
        Reply::ok()
    })
}

/// FUNCTION RESTORE payload [FLUSH|APPEND|REPLACE]
fn restore<'a>(c: &'a ClientRef, _s: &'a Shards, argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        if argv.len() > 4 {
            return errors::unknown_subcommand_or_arity("FUNCTION", &argv[1]);
        }
        let policy = match argv.get(3) {
            None => Policy::Append,
            Some(p) if args::eq(p, "append") => Policy::Append,
            Some(p) if args::eq(p, "replace") => Policy::Replace,
            Some(p) if args::eq(p, "flush") => Policy::Flush,
            Some(_) => return Reply::err(
                "ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.",
            ),
        };
        if let Some(busy) = crate::scripting::run::busy_here(c).await {
            return busy;
        }
        crate::scripting::slices::interpreter_free().await;
        match functions::restore(&argv[2], policy) {
            Ok(()) => Reply::ok(),
            Err(e) => error(e),
        }
    })
}

/// FUNCTION LIST [LIBRARYNAME pattern] [WITHCODE]
fn list<'a>(_c: &'a ClientRef, _s: &'a Shards, argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        let (mut with_code, mut pattern) = (false, None);
        let mut i = 2;
        while i < argv.len() {
            let arg = &argv[i];
            if !with_code && args::eq(arg, "withcode") {
                with_code = true;
            } else if pattern.is_none() && args::eq(arg, "libraryname") {
                if i + 1 >= argv.len() {
                    return Reply::err("ERR library name argument was not given");
                }
                i += 1;
                pattern = Some(argv[i].clone());
            } else {
                let mut out = b"ERR Unknown argument ".to_vec();
                out.extend_from_slice(arg);
                return Reply::ErrorBytes(out.into());
            }
            i += 1;
        }
        let bulk = |s: &str| Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()));
        let libraries = functions::libraries()
            .into_iter()
            .filter(|l| {
                pattern
                    .as_ref()
                    .is_none_or(|p| crate::storage::glob::glob_match(p, l.name.as_bytes(), true))
            })
            .map(|l| {
                let functions = l
                    .functions
                    .iter()
                    .map(|f| {
                        Reply::Map(vec![
                            (bulk("name"), bulk(&f.name)),
                            (
                                bulk("description"),
                                f.description.clone().map_or(Reply::Null, Reply::Bulk),
                            ),
                            (
                                bulk("flags"),
                                Reply::Set(f.flags.names().map(Reply::status).collect()),
                            ),
                        ])
                    })
                    .collect();
                let mut fields = vec![
                    (bulk("library_name"), bulk(&l.name)),
                    (bulk("engine"), bulk(functions::ENGINE)),
                    (bulk("functions"), Reply::Array(functions)),
                ];
                if with_code {
                    fields.push((bulk("library_code"), Reply::Bulk(l.code.clone())));
                }
                Reply::Map(fields)
            })
            .collect();
        Reply::Array(libraries)
    })
}

/// FUNCTION DUMP
fn dump<'a>(_c: &'a ClientRef, s: &'a Shards, _argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        let compress = s.local.borrow().config.get_bool("rdbcompression");
        Reply::Bulk(Bytes::from(functions::dump(compress)))
    })
}

/// FUNCTION STATS: the function running now (on any core), and the engine's counts.
fn stats<'a>(_c: &'a ClientRef, _s: &'a Shards, _argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        let bulk = |s: &str| Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()));
        let running = match run::running() {
            run::NowRunning::Eval => return Reply::err(run::busy_error(true)),
            run::NowRunning::Nothing => Reply::Null,
            run::NowRunning::Function(name, command, ms) => Reply::Map(vec![
                (bulk("name"), bulk(&name)),
                (
                    bulk("command"),
                    Reply::Array(command.into_iter().map(Reply::Bulk).collect()),
                ),
                (bulk("duration_ms"), Reply::Int(ms as i64)),
            ]),
        };
        let (libraries, count, _) = functions::stats();
        Reply::Map(vec![
            (bulk("running_script"), running),
            (
                bulk("engines"),
                Reply::Map(vec![(
                    bulk(functions::ENGINE),
                    Reply::Map(vec![
                        (bulk("libraries_count"), Reply::Int(libraries as i64)),
                        (bulk("functions_count"), Reply::Int(count as i64)),
                    ]),
                )]),
            ),
        ])
    })
}

fn kill<'a>(_c: &'a ClientRef, _s: &'a Shards, _argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move { run::kill(false) })
}

fn help<'a>(_c: &'a ClientRef, _s: &'a Shards, _argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        super::config::help_reply(
            "FUNCTION",
            &[
                "LOAD [REPLACE] <FUNCTION CODE>",
                "    Create a new library with the given library name and code.",
                "DELETE <LIBRARY NAME>",
                "    Delete the given library.",
                "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
                "    Return general information on all the libraries:",
                "    * Library name",
                "    * The engine used to run the Library",
                "    * Library description",
                "    * Functions list",
                "    * Library code (if WITHCODE is given)",
                "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
                "STATS",
                "    Return information about the current function running:",
                "    * Function name",
                "    * Command used to run the function",
                "    * Duration in MS that the function is running",
                "    If no function is running, return nil",
                "    In addition, returns a list of available engines.",
                "KILL",
                "    Kill the current running function.",
                "FLUSH [ASYNC|SYNC]",
                "    Delete all the libraries.",
                "    When called without the optional mode argument, the behavior is determined by the",
                "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
                "    * ASYNC: Asynchronously flush the libraries.",
                "    * SYNC: Synchronously flush the libraries.",
                "DUMP",
                "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
                "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
                "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
                "    control how to handle existing libraries (default APPEND):",
                "    * FLUSH: delete all existing libraries.",
                "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
                "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
                "      libraries with the new libraries (notice that even on this option there is a chance of failure",
                "      in case of functions name collision with another library).",
            ],
        )
    })
}
