//! Server commands (Redis's `server.c` and `debug.c`): COMMAND and its subcommands,
//! TIME, SHUTDOWN, MONITOR (its lines are `runtime::monitor`'s; DEBUG is in `debug.rs`).
//!
//! COMMAND INFO reports from the command table what drives execution (arity, flags,
//! key range, ACL categories), so it is by construction what routing and arity checks
//! use; a unit test holds those fields equal to Redis 7.0's for every command we
//! implement. The tips, the key specs and everything COMMAND DOCS says come from
//! Redis's own metadata ([`meta`]), and COMMAND GETKEYS / GETKEYSANDFLAGS find keys with those key
//! specs as Redis does, falling back like Redis to the command's own key finder where
//! the specs cannot say (SORT's STORE, SET's and BITFIELD's variable flags).

use super::connection::help_reply;
use super::meta::{self, Begin, Find, KeySpec};
use super::{args, errors, families, lookup_named, lookup_sub, Command, Exec, LocalBoxFuture};
use crate::client::{Client, ClientRef};
use crate::protocol::Reply;
use crate::runtime::Shards;
use crate::storage::glob::glob_match;
use bytes::Bytes;

pub static COMMANDS: &[Command] = &[
    Command::new(
        "monitor",
        1,
        "admin noscript loading stale",
        "admin slow dangerous",
        Exec::Server(monitor),
    ),
    Command::new(
        "command",
        -1,
        "loading stale",
        "slow connection",
        Exec::Conn(command_all),
    )
    .subcommands(COMMAND),
    Command::new("time", 1, "loading stale fast", "fast", Exec::Conn(time)),
    Command::new(
        "shutdown",
        -1,
        "admin noscript loading stale no_multi allow_busy",
        "admin slow dangerous",
        Exec::Server(shutdown),
    ),
];

const CMD: &str = "loading stale";
const CMD_ACL: &str = "slow connection";

static COMMAND: &[Command] = &[
    Command::new("command|count", 2, CMD, CMD_ACL, Exec::Conn(command_count)),
    Command::new("command|info", -2, CMD, CMD_ACL, Exec::Conn(command_info)),
    Command::new("command|docs", -2, CMD, CMD_ACL, Exec::Conn(command_docs)),
    Command::new("command|list", -2, CMD, CMD_ACL, Exec::Conn(command_list)),
    Command::new(
        "command|getkeys",
        -4,
        CMD,
        CMD_ACL,
        Exec::Conn(command_getkeys),
    ),
    Command::new(
        "command|getkeysandflags",
        -4,
        CMD,
        CMD_ACL,
        Exec::Conn(command_getkeysandflags),
    ),
    Command::new("command|help", 2, CMD, CMD_ACL, Exec::Conn(command_help)),
];

fn status_set(words: &str, prefix: &str) -> Reply {
    Reply::Set(
        words
            .split_whitespace()
            .map(|w| Reply::Status(format!("{prefix}{w}").into()))
            .collect(),
    )
}

/// One entry of COMMAND / COMMAND INFO (Redis 7's ten fields): what drives execution
/// (arity, flags, key range, ACL categories) from our table, the tips and key specs
/// from Redis's metadata, the subcommands we implement. As Redis: a command without
/// subcommands has an empty set there, a container an array.
pub fn command_entry(c: &Command) -> Reply {
    let acl: Vec<&str> = c.acl.split_whitespace().collect();
    let (tips, key_specs) = match meta::get(c.name) {
        Some(m) => (m.info[7].clone(), m.info[8].clone()),
        None => (Reply::Set(vec![]), Reply::Set(vec![])),
    };
    let subcommands = if c.subcommands.is_empty() {
        Reply::Set(vec![])
    } else {
        Reply::Array(c.subcommands.iter().map(command_entry).collect())
    };
    Reply::Array(vec![
        Reply::bulk_str(c.name),
        Reply::Int(c.arity as i64),
        status_set(c.flags, ""),
        Reply::Int(c.first_key as i64),
        Reply::Int(c.last_key as i64),
        Reply::Int(c.key_step as i64),
        status_set(&acl.join(" "), "@"),
        tips,
        key_specs,
        subcommands,
    ])
}

/// COMMAND DOCS's map for a command: Redis's, then the subcommands we implement.
fn doc_entry(c: &Command) -> Reply {
    let mut fields = meta::get(c.name).map_or_else(Vec::new, |m| m.docs.clone());
    if !c.subcommands.is_empty() {
        fields.push((
            Reply::bulk_str("subcommands"),
            Reply::Map(
                c.subcommands
                    .iter()
                    .map(|s| (Reply::bulk_str(s.name), doc_entry(s)))
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
        Some((top, sub)) => {
            lookup_named(top.as_bytes()).and_then(|c| lookup_sub(c, sub.as_bytes()))
        }
        None => lookup_named(name),
    }
}

/// The commands clients can reach (all but those `rename-command` removed).
fn listed() -> impl Iterator<Item = &'static Command> {
    families().filter(|c| super::reachable(c))
}

fn command_all(_c: &mut Client, _argv: &[Bytes]) -> Reply {
    Reply::Array(listed().map(command_entry).collect())
}

fn command_count(_c: &mut Client, _argv: &[Bytes]) -> Reply {
    Reply::Int(listed().count() as i64)
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
        listed().collect()
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
    listed().flat_map(|c| std::iter::once(c).chain(c.subcommands.iter()))
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

/// A key's position in GETKEYS's argv and its flags, in COMMAND INFO's order.
pub type KeyRef = (usize, Vec<&'static str>);

/// Why the specs could not give the keys.
enum Unread {
    /// A spec cannot say (unknown begin or find, an unparsable or out-of-range
    /// keynum): the command's own finder is asked unless the specs were all of known
    /// kinds, in which case the arguments are invalid.
    Invalid,
    /// A spec marked `incomplete` was reached: the command's own finder decides.
    Incomplete,
}

/// Redis 7.0's `getKeysUsingKeySpecs`: the keys the specs find.
fn keys_from_specs(specs: &[KeySpec], argv: &[Bytes], arity: i32) -> Result<Vec<KeyRef>, Unread> {
    let argc = argv.len() as i64;
    let mut keys = Vec::new();
    for spec in specs.iter().filter(|s| !s.has_flag("not_key")) {
        let mut first = match &spec.begin {
            Begin::Index(i) => *i,
            Begin::Keyword { keyword, startfrom } => {
                let (start, end) = if *startfrom > 0 {
                    (*startfrom, argc - 1)
                } else {
                    (argc + startfrom, 1)
                };
                let mut found = 0;
                let mut i = start;
                while i != end {
                    if i >= argc || i < 1 {
                        break;
                    }
                    if argv[i as usize].eq_ignore_ascii_case(keyword) {
                        found = i + 1;
                        break;
                    }
                    i += if start <= end { 1 } else { -1 };
                }
                if found == 0 {
                    continue;
                }
                found
            }
            Begin::Unknown => return Err(Unread::Invalid),
        };
        let (last, step) = match spec.find {
            Find::Range {
                lastkey,
                keystep,
                limit,
            } => {
                let last = if lastkey >= 0 {
                    first + lastkey
                } else if limit == 0 {
                    argc + lastkey
                } else {
                    first + ((argc - first) / limit + lastkey)
                };
                (last, keystep)
            }
            Find::Keynum {
                keynumidx,
                firstkey,
                keystep,
            } => {
                if keynumidx >= argc - first {
                    if arity < 0 {
                        continue;
                    }
                    return Err(Unread::Invalid);
                }
                let n = crate::protocol::parse::parse_i64(&argv[(first + keynumidx) as usize])
                    .filter(|n| *n >= 0)
                    .ok_or(Unread::Invalid)?;
                first += firstkey;
                (first + n - 1, keystep)
            }
            Find::Unknown => return Err(Unread::Invalid),
        };
        if last >= argc || last < first || first >= argc {
            return Err(Unread::Invalid);
        }
        let mut i = first;
        while i <= last {
            keys.push((i as usize, spec.flags.clone()));
            i += step.max(1);
        }
        // A spec that may miss keys (MIGRATE's KEYS) leaves the work to the
        // command's own finder, once it is reached.
        if spec.has_flag("incomplete") {
            return Err(Unread::Incomplete);
        }
    }
    Ok(keys)
}

/// The flags Redis 7.0's own key finders (`setGetKeys`, `bitfieldGetKeys`,
/// `sortGetKeys`, `sortROGetKeys`) give key `i` of `argv`, for the commands whose key
/// specs cannot (variable flags, unknown positions).
fn native_key_flags(c: &Command, argv: &[Bytes], i: usize) -> Vec<&'static str> {
    const RO: &[&str] = &["RO", "access"];
    const RW: &[&str] = &["RW", "access", "update"];
    const OW: &[&str] = &["OW", "update"];
    let flags = match c.name {
        "set" if argv.iter().skip(3).any(|a| args::eq(a, "get")) => RW,
        "set" => OW,
        "bitfield" => {
            let mut readonly = true;
            let mut j = 2;
            while j < argv.len() {
                let rem = argv.len() - j - 1;
                if args::eq(&argv[j], "get") && rem >= 2 {
                    j += 2;
                } else if args::eq(&argv[j], "overflow") && rem >= 1 {
                    j += 1;
                } else {
                    readonly = false;
                    break;
                }
                j += 1;
            }
            if readonly {
                RO
            } else {
                RW
            }
        }
        "sort" if i > 1 => OW,
        _ => {
            return meta::get(c.name)
                .and_then(|m| m.key_specs.first())
                .map_or_else(|| RO.to_vec(), |s| s.flags.clone())
        }
    };
    flags.to_vec()
}

/// The command and its keys (with flags) of the full command in `argv[2..]`, as Redis
/// 7.0's `getKeysSubcommandImpl`: the key specs when they can say, else the command's
/// own key finder.
fn getkeys(argv: &[Bytes]) -> Result<Vec<KeyRef>, Reply> {
    let target = &argv[2..];
    let Some(mut cmd) = lookup_named(&target[0]) else {
        return Err(Reply::err(errors::INVALID_COMMAND));
    };
    if !cmd.subcommands.is_empty() && target.len() >= 2 {
        match lookup_sub(cmd, &target[1]) {
            Some(s) => cmd = s,
            None => return Err(Reply::err(errors::INVALID_COMMAND)),
        }
    }
    let specs = meta::get(cmd.name).map_or(&[][..], |m| &m.key_specs[..]);
    let has_keyspec = specs.iter().any(|s| !s.has_flag("not_key"));
    if !has_keyspec && cmd.find_keys.is_none() {
        return Err(Reply::err(errors::NO_KEY_ARGUMENTS));
    }
    if !cmd.arity_ok(target.len()) {
        return Err(Reply::err(errors::INVALID_COMMAND_ARITY));
    }
    let keys = keys_with_flags(cmd, target);
    if keys.is_empty() && !cmd.has_flag(crate::commands::flag::NO_MANDATORY_KEYS) {
        return Err(Reply::err(errors::INVALID_COMMAND_ARGUMENTS));
    }
    Ok(keys)
}

/// The keys of `argv` run as `cmd`, each with its key spec's flags (`RW`, `access`,
/// `update`...): the key specs when they can say, else the command's own key finder
/// (Redis's `getKeysFromCommandWithSpecs`, which ACLs use too).
pub fn keys_with_flags(cmd: &'static Command, target: &[Bytes]) -> Vec<KeyRef> {
    let specs = meta::get(cmd.name).map_or(&[][..], |m| &m.key_specs[..]);
    let has_keyspec = specs.iter().any(|s| !s.has_flag("not_key"));
    // Specs of known kinds that fail on this argv (a key count out of range) leave no
    // keys: Redis's own finders for those commands refuse the same arguments.
    let known = specs
        .iter()
        .all(|s| s.begin != Begin::Unknown && s.find != Find::Unknown);
    let from_specs = if has_keyspec && !specs.iter().any(|s| s.has_flag("variable_flags")) {
        match keys_from_specs(specs, target, cmd.arity) {
            Ok(found) => Some(found),
            Err(Unread::Invalid) if known => Some(Vec::new()),
            Err(_) => None,
        }
    } else {
        None
    };
    from_specs.unwrap_or_else(|| {
        if cmd.find_keys.is_none() && !has_keyspec {
            return Vec::new();
        }
        cmd.key_indexes(target)
            .into_iter()
            .map(|i| (i, native_key_flags(cmd, target, i)))
            .collect()
    })
}

fn command_getkeys(_c: &mut Client, argv: &[Bytes]) -> Reply {
    match getkeys(argv) {
        Ok(keys) => Reply::Array(
            keys.into_iter()
                .map(|(k, _)| Reply::Bulk(argv[2 + k].clone()))
                .collect(),
        ),
        Err(e) => e,
    }
}

fn command_getkeysandflags(_c: &mut Client, argv: &[Bytes]) -> Reply {
    match getkeys(argv) {
        Ok(keys) => Reply::Array(
            keys.into_iter()
                .map(|(k, flags)| {
                    Reply::Array(vec![
                        Reply::Bulk(argv[2 + k].clone()),
                        Reply::Set(flags.into_iter().map(|f| Reply::Status(f.into())).collect()),
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

/// MONITOR: every command run from now on, as a line (refused inside EXEC, as Redis
/// refuses it to a client that expects one reply per command).
fn monitor<'a>(c: &'a ClientRef, s: &'a Shards, _argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        if c.borrow().deny_blocking {
            return Reply::err(errors::MONITOR_DENY_BLOCKING);
        }
        crate::runtime::monitor::start(c, s)
    })
}

fn time(_c: &mut Client, _argv: &[Bytes]) -> Reply {
    let us = crate::clock::now_us();
    Reply::Array(vec![
        Reply::bulk_str(&(us / 1_000_000).to_string()),
        Reply::bulk_str(&(us % 1_000_000).to_string()),
    ])
}

/// SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT]: see `persistence::shutdown`.
fn shutdown<'a>(c: &'a ClientRef, s: &'a Shards, argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        use crate::persistence::shutdown::{self, Flags};
        let (mut flags, mut abort) = (Flags::default(), false);
        let (mut nosave, mut save) = (false, false);
        for a in &argv[1..] {
            if args::eq(a, "nosave") {
                nosave = true;
            } else if args::eq(a, "save") {
                save = true;
            } else if args::eq(a, "now") {
                flags.now = true;
            } else if args::eq(a, "force") {
                flags.force = true;
            } else if args::eq(a, "abort") {
                abort = true;
            } else {
                return errors::syntax();
            }
        }
        let any_flag = nosave || save || flags.now || flags.force;
        if (nosave && save) || (abort && any_flag) {
            return errors::syntax();
        }
        if abort {
            return if shutdown::abort(s).await {
                Reply::ok()
            } else {
                Reply::err(errors::NO_SHUTDOWN)
            };
        }
        if !flags.now && c.borrow().deny_blocking {
            return Reply::err(errors::SHUTDOWN_DENY_BLOCKING);
        }
        flags.save = if save {
            Some(true)
        } else if nosave {
            Some(false)
        } else {
            None
        };
        Reply::err(crate::persistence::shutdown(s, flags).await)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::commands::testing::argv;

    #[test]
    fn getkeys_errors() {
        let mut c = Client::detached(1);
        assert_eq!(
            command_getkeys(&mut c, &argv(&["command", "getkeys", "nosuch", "a"])),
            Reply::err(errors::INVALID_COMMAND)
        );
        assert_eq!(
            command_getkeys(&mut c, &argv(&["command", "getkeys", "ping", "x"])),
            Reply::err(errors::NO_KEY_ARGUMENTS)
        );
    }

    /// What COMMAND INFO reports from our table (name, arity, flags, first, last,
    /// step, ACL categories) is what Redis 7.0 reports, for every command we
    /// implement, and every one has Redis's metadata. No exceptions: the two commands
    /// Redis 7.0 lacks (`meta/extra.txt`) are held to Redis 7.2's entries.
    #[test]
    fn table_agrees_with_redis_command_info() {
        const FIELDS: [&str; 7] = ["name", "arity", "flags", "first", "last", "step", "acl"];
        let mut differ = Vec::new();
        for c in all_with_subcommands() {
            let Some(m) = meta::get(c.name) else {
                differ.push(format!("{}: no metadata", c.name));
                continue;
            };
            let Reply::Array(ours) = command_entry(c) else {
                unreachable!()
            };
            for (i, field) in FIELDS.iter().enumerate() {
                if ours[i] != m.info[i] {
                    differ.push(format!(
                        "{} {field}: ours {:?}, Redis {:?}",
                        c.name, ours[i], m.info[i]
                    ));
                }
            }
        }
        assert!(differ.is_empty(), "{}", differ.join("\n"));
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
