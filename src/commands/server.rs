//! Server commands (Redis's `server.c` and `debug.c`): COMMAND and its subcommands,
//! TIME, SHUTDOWN (DEBUG is in `debug.rs`).
//!
//! COMMAND is generated from the command table, so what it reports (arity, flags, key
//! positions, ACL categories) is by construction what routing and arity checks use. The
//! key specs are derived from first/last/step; Redis's hand-written specs carry finer
//! flags (OW vs RW, INSERT vs UPDATE) that we approximate as RO/ACCESS and RW/UPDATE.

use super::connection::help_reply;
use super::{args, errors, families, lookup, lookup_sub, Command, Exec, LocalBoxFuture};
use crate::client::{Client, ClientRef};
use crate::protocol::Reply;
use crate::runtime::Shards;
use crate::storage::glob::glob_match;
use bytes::Bytes;

pub static COMMANDS: &[Command] = &[
    Command::new("command", -1, "loading stale", "slow connection", Exec::Conn(command_all))
        .subcommands(COMMAND)
        .tips("nondeterministic_output_order")
        .doc("server", "2.8.13", "Returns detailed information about all commands.")
        .complexity("O(N) where N is the total number of Redis commands"),
    Command::new("time", 1, "loading stale fast", "fast", Exec::Conn(time))
        .tips("nondeterministic_output")
        .doc("server", "2.6.0", "Returns the server time."),
    Command::new("shutdown", -1, "admin noscript loading stale no_multi allow_busy", "admin slow dangerous", Exec::Server(shutdown))
        .doc("server", "1.0.0", "Synchronously saves the database(s) to disk and shuts down the Redis server.")
        .complexity("O(N) when saving, where N is the total number of keys in all databases when saving data, otherwise O(1)"),
];

const CMD: &str = "loading stale";
const CMD_ACL: &str = "slow connection";

static COMMAND: &[Command] = &[
    Command::new("command|count", 2, CMD, CMD_ACL, Exec::Conn(command_count)).doc(
        "server",
        "2.8.13",
        "Returns a count of commands.",
    ),
    Command::new("command|info", -2, CMD, CMD_ACL, Exec::Conn(command_info))
        .tips("nondeterministic_output_order")
        .doc(
            "server",
            "2.8.13",
            "Returns information about one, multiple or all commands.",
        )
        .complexity("O(N) where N is the number of commands to look up"),
    Command::new("command|docs", -2, CMD, CMD_ACL, Exec::Conn(command_docs))
        .tips("nondeterministic_output_order")
        .doc(
            "server",
            "7.0.0",
            "Returns documentary information about one, multiple or all commands.",
        )
        .complexity("O(N) where N is the number of commands to look up"),
    Command::new("command|list", -2, CMD, CMD_ACL, Exec::Conn(command_list))
        .tips("nondeterministic_output_order")
        .doc("server", "7.0.0", "Returns a list of command names.")
        .complexity("O(N) where N is the total number of Redis commands"),
    Command::new(
        "command|getkeys",
        -4,
        CMD,
        CMD_ACL,
        Exec::Conn(command_getkeys),
    )
    .doc(
        "server",
        "2.8.13",
        "Extracts the key names from an arbitrary command.",
    )
    .complexity("O(N) where N is the number of arguments to the command"),
    Command::new(
        "command|getkeysandflags",
        -4,
        CMD,
        CMD_ACL,
        Exec::Conn(command_getkeysandflags),
    )
    .doc(
        "server",
        "7.0.0",
        "Extracts the key names and access flags for an arbitrary command.",
    )
    .complexity("O(N) where N is the number of arguments to the command"),
    Command::new("command|help", 2, CMD, CMD_ACL, Exec::Conn(command_help)).doc(
        "server",
        "5.0.0",
        "Returns helpful text about the different subcommands.",
    ),
];

fn status_set(words: &str, prefix: &str) -> Reply {
    Reply::Set(
        words
            .split_whitespace()
            .map(|w| Reply::Status(format!("{prefix}{w}").into()))
            .collect(),
    )
}

fn key_spec_flags(c: &Command) -> &'static str {
    if !c.key_flags.is_empty() {
        c.key_flags
    } else if c.is_write() {
        "RW update"
    } else {
        "RO access"
    }
}

fn key_specs(c: &Command) -> Reply {
    if c.first_key <= 0 {
        return Reply::Array(vec![]);
    }
    let lastkey = if c.last_key < 0 {
        c.last_key
    } else {
        c.last_key - c.first_key
    };
    let st = |s: &str| Reply::bulk_str(s);
    Reply::Array(vec![Reply::Map(vec![
        (st("flags"), status_set(key_spec_flags(c), "")),
        (
            st("begin_search"),
            Reply::Map(vec![
                (st("type"), st("index")),
                (
                    st("spec"),
                    Reply::Map(vec![(st("index"), Reply::Int(c.first_key as i64))]),
                ),
            ]),
        ),
        (
            st("find_keys"),
            Reply::Map(vec![
                (st("type"), st("range")),
                (
                    st("spec"),
                    Reply::Map(vec![
                        (st("lastkey"), Reply::Int(lastkey as i64)),
                        (st("keystep"), Reply::Int(c.key_step as i64)),
                        (st("limit"), Reply::Int(0)),
                    ]),
                ),
            ]),
        ),
    ])])
}

/// One entry of COMMAND / COMMAND INFO (Redis 7's ten fields).
pub fn command_entry(c: &Command) -> Reply {
    let acl: Vec<&str> = c.acl.split_whitespace().collect();
    Reply::Array(vec![
        Reply::bulk_str(c.name),
        Reply::Int(c.arity as i64),
        status_set(c.flags, ""),
        Reply::Int(c.first_key as i64),
        Reply::Int(c.last_key as i64),
        Reply::Int(c.key_step as i64),
        status_set(&acl.join(" "), "@"),
        // Tips are bulk strings where flags and categories are statuses (as Redis).
        Reply::Set(c.tips.split_whitespace().map(Reply::bulk_str).collect()),
        key_specs(c),
        Reply::Array(c.subcommands.iter().map(command_entry).collect()),
    ])
}

fn doc_entry(c: &Command) -> Reply {
    let st = |s: &str| Reply::bulk_str(s);
    let summary = c.summary.trim_end_matches('.');
    let mut fields = vec![
        (st("summary"), st(summary)),
        (st("since"), st(c.since)),
        (st("group"), st(c.group)),
        (
            st("complexity"),
            st(if c.subcommands.is_empty() {
                c.complexity
            } else {
                "Depends on subcommand."
            }),
        ),
    ];
    if !c.subcommands.is_empty() {
        fields.push((
            st("subcommands"),
            Reply::Map(
                c.subcommands
                    .iter()
                    .map(|s| (st(s.name), doc_entry(s)))
                    .collect(),
            ),
        ));
    }
    Reply::Map(fields)
}

/// Resolve a name that may be `container|sub` or a top-level command.
fn find(name: &[u8]) -> Option<&'static Command> {
    let s = String::from_utf8_lossy(name).to_ascii_lowercase();
    match s.split_once('|') {
        Some((top, sub)) => lookup(top.as_bytes()).and_then(|c| lookup_sub(c, sub.as_bytes())),
        None => lookup(name),
    }
}

fn command_all(_c: &mut Client, _argv: &[Bytes]) -> Reply {
    Reply::Array(families().map(command_entry).collect())
}

fn command_count(_c: &mut Client, _argv: &[Bytes]) -> Reply {
    Reply::Int(families().count() as i64)
}

fn command_info(_c: &mut Client, argv: &[Bytes]) -> Reply {
    if argv.len() == 2 {
        return command_all(_c, argv);
    }
    Reply::Array(
        argv[2..]
            .iter()
            .map(|n| find(n).map(command_entry).unwrap_or(Reply::Null))
            .collect(),
    )
}

fn command_docs(_c: &mut Client, argv: &[Bytes]) -> Reply {
    let cmds: Vec<&Command> = if argv.len() == 2 {
        families().collect()
    } else {
        argv[2..].iter().filter_map(|n| find(n)).collect()
    };
    Reply::Map(
        cmds.into_iter()
            .map(|c| (Reply::bulk_str(c.name), doc_entry(c)))
            .collect(),
    )
}

fn all_with_subcommands() -> impl Iterator<Item = &'static Command> {
    families().flat_map(|c| std::iter::once(c).chain(c.subcommands.iter()))
}

fn command_list(_c: &mut Client, argv: &[Bytes]) -> Reply {
    let names = |f: &dyn Fn(&Command) -> bool| {
        Reply::Array(
            all_with_subcommands()
                .filter(|c| f(c))
                .map(|c| Reply::bulk_str(c.name))
                .collect(),
        )
    };
    match argv.len() {
        2 => names(&|_| true),
        5 if args::eq(&argv[2], "filterby") => {
            let v = argv[4].clone();
            if args::eq(&argv[3], "pattern") {
                names(&|c| glob_match(&v, c.name.as_bytes(), true))
            } else if args::eq(&argv[3], "aclcat") {
                let cat = String::from_utf8_lossy(&v).to_ascii_lowercase();
                names(&|c| c.acl.split_whitespace().any(|a| a == cat))
            } else if args::eq(&argv[3], "module") {
                Reply::Array(vec![])
            } else {
                errors::syntax()
            }
        }
        _ => errors::syntax(),
    }
}

/// The command and key positions of the full command in `argv[2..]`.
fn getkeys(argv: &[Bytes]) -> Result<(&'static Command, Vec<usize>), Reply> {
    let target = &argv[2..];
    let Some(mut cmd) = lookup(&target[0]) else {
        return Err(Reply::err("ERR Invalid command specified"));
    };
    if !cmd.subcommands.is_empty() && target.len() >= 2 {
        match lookup_sub(cmd, &target[1]) {
            Some(s) => cmd = s,
            None => return Err(Reply::err("ERR Invalid command specified")),
        }
    }
    if !cmd.arity_ok(target.len()) {
        return Err(Reply::err(
            "ERR Invalid number of arguments specified for command",
        ));
    }
    let keys = cmd.key_indexes(target);
    if keys.is_empty() {
        return Err(Reply::err("ERR The command has no key arguments"));
    }
    Ok((cmd, keys))
}

fn command_getkeys(_c: &mut Client, argv: &[Bytes]) -> Reply {
    match getkeys(argv) {
        Ok((_, keys)) => Reply::Array(
            keys.into_iter()
                .map(|k| Reply::Bulk(argv[2 + k].clone()))
                .collect(),
        ),
        Err(e) => e,
    }
}

fn command_getkeysandflags(_c: &mut Client, argv: &[Bytes]) -> Reply {
    match getkeys(argv) {
        Ok((cmd, keys)) => Reply::Array(
            keys.into_iter()
                .map(|k| {
                    Reply::Array(vec![
                        Reply::Bulk(argv[2 + k].clone()),
                        status_set(key_spec_flags(cmd), ""),
                    ])
                })
                .collect(),
        ),
        Err(e) => e,
    }
}

fn command_help(_c: &mut Client, _argv: &[Bytes]) -> Reply {
    help_reply(
        "COMMAND",
        &[
            "(no subcommand)",
            "    Return details about all Redis commands.",
            "COUNT",
            "    Return the total number of commands in this Redis server.",
            "LIST",
            "    Return a list of all commands in this Redis server.",
            "INFO [<command-name> ...]",
            "    Return details about multiple Redis commands.",
            "    If no command names are given, documentation details for all",
            "    commands are returned.",
            "DOCS [<command-name> ...]",
            "    Return documentation details about multiple Redis commands.",
            "    If no command names are given, documentation details for all",
            "    commands are returned.",
            "GETKEYS <full-command>",
            "    Return the keys from a full Redis command.",
            "GETKEYSANDFLAGS <full-command>",
            "    Return the keys and the access flags from a full Redis command.",
        ],
    )
}

fn time(_c: &mut Client, _argv: &[Bytes]) -> Reply {
    let us = crate::clock::now_us();
    Reply::Array(vec![
        Reply::bulk_str(&(us / 1_000_000).to_string()),
        Reply::bulk_str(&(us % 1_000_000).to_string()),
    ])
}

fn shutdown<'a>(_c: &'a ClientRef, s: &'a Shards, argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        let (mut nosave, mut save, mut abort) = (false, false, false);
        for a in &argv[1..] {
            if args::eq(a, "nosave") {
                nosave = true;
            } else if args::eq(a, "save") {
                save = true;
            } else if args::eq(a, "now") || args::eq(a, "force") {
            } else if args::eq(a, "abort") {
                abort = true;
            } else {
                return errors::syntax();
            }
        }
        if (nosave && save) || (abort && argv.len() > 2) {
            return errors::syntax();
        }
        if abort {
            return Reply::err("ERR No shutdown in progress.");
        }
        let save = if save {
            Some(true)
        } else if nosave {
            Some(false)
        } else {
            None
        };
        crate::runtime::shutdown(s, save).await;
        Reply::err("ERR Errors trying to SHUTDOWN. Check logs.")
    })
}

/// `enable-debug-command`: `no` (Redis's default) refuses DEBUG, `local` allows it from
/// loopback only, `yes` from anywhere.
#[cfg(test)]
mod tests {
    use super::*;

    use crate::commands::testing::argv;

    #[test]
    fn getkeys_errors() {
        let mut c = Client::detached(1);
        assert_eq!(
            command_getkeys(&mut c, &argv(&["command", "getkeys", "nosuch", "a"])),
            Reply::err("ERR Invalid command specified")
        );
        assert_eq!(
            command_getkeys(&mut c, &argv(&["command", "getkeys", "ping", "x"])),
            Reply::err("ERR The command has no key arguments")
        );
    }

    #[test]
    fn every_entry_is_consistent() {
        for c in all_with_subcommands() {
            assert_eq!(c.name, c.name.to_ascii_lowercase(), "names are lower case");
            assert!(c.arity != 0, "{} has arity 0", c.name);
            if let Exec::Shard(_) = c.exec {
                // Keyless shard commands run locally; keyed ones need a valid range.
                if c.first_key > 0 {
                    assert!(c.key_step > 0, "{} has keys but no step", c.name);
                }
            }
        }
    }
}
