//! CONFIG GET / SET / RESETSTAT / REWRITE / HELP (Redis's `config.c`).
//!
//! The option table, value rules and file handling live in `crate::config`; this file
//! only parses the command's arguments and publishes changes. The one idea to hold:
//! CONFIG SET checks every name/value pair on a private copy first and publishes the
//! new [`Config`] with one `ConfigHandle::update`, so a multi-pair SET is all-or-nothing;
//! it then refreshes every shard's cached copy before replying, so a setting such as
//! `slowlog-log-slower-than` is in force for the next command on any core.

use super::{errors, Command, Exec, LocalBoxFuture};
use crate::client::ClientRef;
use crate::config::{self, Config, OptDef, HIDDEN, IMMUTABLE, PROTECTED};
use crate::protocol::Reply;
use crate::runtime::Shards;
use crate::storage::glob::glob_match;
use bytes::Bytes;

const ADMIN: &str = "admin noscript loading stale";
const ADMIN_ACL: &str = "admin slow dangerous";

static SUBCOMMANDS: &[Command] = &[
    Command::new("config|get", -3, ADMIN, ADMIN_ACL, Exec::Server(config_get)),
    Command::new("config|set", -4, ADMIN, ADMIN_ACL, Exec::Server(config_set))
        .redacts(sensitive_values),
    Command::new(
        "config|resetstat",
        2,
        ADMIN,
        ADMIN_ACL,
        Exec::Server(config_resetstat),
    ),
    Command::new(
        "config|rewrite",
        2,
        ADMIN,
        ADMIN_ACL,
        Exec::Server(config_rewrite),
    ),
    Command::new(
        "config|help",
        2,
        "loading stale",
        "slow",
        Exec::Server(config_help),
    ),
];

pub static COMMANDS: &[Command] =
    &[Command::new("config", -2, "", "slow", Exec::Container).subcommands(SUBCOMMANDS)];

/// The CONFIG GET reply for `patterns`: exact names (aliases and hidden options too)
/// are echoed as given; glob patterns match names and aliases case-insensitively.
pub fn get_reply(c: &Config, patterns: &[Bytes]) -> Reply {
    let mut out: Vec<(String, String)> = Vec::new();
    let push = |name: String, def: &OptDef, out: &mut Vec<(String, String)>| {
        if !out.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name)) {
            out.push((name, c.shown(def)));
        }
    };
    for p in patterns {
        let is_glob = p.iter().any(|b| matches!(b, b'*' | b'?' | b'['));
        if !is_glob {
            let name = String::from_utf8_lossy(p).into_owned();
            if let Some(def) = config::find(&name) {
                push(name, def, &mut out);
            }
            continue;
        }
        for def in config::OPTIONS {
            if def.flags & HIDDEN != 0 {
                continue;
            }
            for n in [def.name, def.alias] {
                if !n.is_empty() && glob_match(p, n.as_bytes(), true) {
                    push(n.to_string(), def, &mut out);
                }
            }
        }
    }
    Reply::Map(
        out.into_iter()
            .map(|(n, v)| (Reply::bulk_str(&n), Reply::bulk_str(&v)))
            .collect(),
    )
}

fn config_get<'a>(
    _c: &'a ClientRef,
    s: &'a Shards,
    argv: &'a [Bytes],
) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move { get_reply(&s.server.config.current(), &argv[2..]) })
}

/// Check CONFIG SET's pairs against `c` and apply them to it; Redis's error on failure.
/// `local` says whether the client is on a loopback address (`enable-protected-configs local`).
pub fn apply_set(c: &mut Config, pairs: &[Bytes], local: bool) -> Result<(), Reply> {
    if pairs.is_empty() {
        return Err(super::errors::wrong_arity("config|set"));
    }
    // A name without its value (Redis checks the count before the pairs).
    if !pairs.len().is_multiple_of(2) {
        return Err(super::errors::syntax());
    }
    let mut seen: Vec<&'static str> = Vec::new();
    let mut checked: Vec<(&'static OptDef, String, String)> = Vec::new();
    for pair in pairs.chunks_exact(2) {
        let name = String::from_utf8_lossy(&pair[0]).into_owned();
        let failed = |why: &str| errors::config_set_failed(&name, why);
        let Some(def) = config::find(&name) else {
            return Err(errors::config_set_unknown(&name));
        };
        if def.flags & IMMUTABLE != 0 {
            return Err(failed("can't set immutable config"));
        }
        let protected_ok = match c.get("enable-protected-configs") {
            Some("yes") => true,
            Some("local") => local,
            _ => false,
        };
        if def.flags & PROTECTED != 0 && !protected_ok {
            return Err(failed("can't set protected config"));
        }
        if seen.contains(&def.name) {
            return Err(failed("duplicate parameter"));
        }
        seen.push(def.name);
        checked.push((
            def,
            name.clone(),
            String::from_utf8_lossy(&pair[1]).into_owned(),
        ));
    }
    let mut next = c.clone();
    for (def, name, value) in &checked {
        let valid = if def.name == "dir" {
            config::check_dir(value)
        } else {
            Ok(())
        };
        if let Err(why) = valid.and_then(|()| next.set_option(def.name, value)) {
            return Err(errors::config_set_failed(name, &why));
        }
    }
    let generation = c.generation;
    *c = next;
    c.generation = generation;
    Ok(())
}

fn config_set<'a>(c: &'a ClientRef, s: &'a Shards, argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        let local = c.borrow().addr.ip().is_loopback();
        let shard_count = s.count();
        // A new `port` or `bind` is listened on before it is set (Redis's updatePort,
        // applyBind): where it cannot be, the SET fails and the old one stays.
        let before = s.server.config.current();
        let mut next = (*before).clone();
        if let Err(e) = apply_set(&mut next, &argv[2..], local) {
            return e;
        }
        let bind_changed = next.bind != before.bind;
        if (bind_changed || next.port != before.port)
            && crate::runtime::listen::rebind(s, &before, &next)
                .await
                .is_err()
        {
            let (option, text) = match bind_changed {
                true => ("bind", "Failed to bind to specified addresses."),
                false => ("port", "Unable to listen on this port. Check server logs."),
            };
            let given = argv[2..].chunks(2).map(|p| &p[0][..]);
            let name = given.rev().find(|n| super::args::eq(n, option));
            let name = String::from_utf8_lossy(name.unwrap_or(option.as_bytes()));
            return errors::config_set_failed(&name, text);
        }
        let result = s.server.config.update(|cfg| {
            let before = cfg.clone();
            apply_set(cfg, &argv[2..], local)?;
            // A higher `maxclients` raises the open file limit, or fails the whole SET
            // when the system cannot hold that many clients (Redis's updateMaxclients).
            if cfg.maxclients > before.maxclients {
                let fits = crate::runtime::open_files::on_config_set(cfg.maxclients, shard_count);
                if let Err(why) = fits {
                    *cfg = before;
                    let given = argv[2..].chunks(2).map(|p| &p[0][..]);
                    let name = given.rev().find(|n| super::args::eq(n, "maxclients"));
                    let name = String::from_utf8_lossy(name.unwrap_or(b"maxclients"));
                    return Err(errors::config_set_failed(&name, &why));
                }
            }
            Ok(())
        });
        if let Err(e) = result {
            return e;
        }
        let set = |name: &str| argv[2..].chunks(2).any(|p| super::args::eq(&p[0], name));
        let cfg = s.server.config.current();
        // `requirepass` is the default user's password (Redis's
        // `ACLUpdateDefaultUserPassword`).
        if set("requirepass") {
            crate::acl::registry().set_default_password(cfg.requirepass.as_deref());
        }
        if set("acllog-max-len") {
            crate::acl::registry().set_log_max(cfg.get_int("acllog-max-len"));
        }
        s.all(crate::runtime::refresh_config).await;
        if set("appendonly") {
            crate::persistence::aof::appendonly_changed(s).await;
        }
        Reply::ok()
    })
}

fn config_resetstat<'a>(
    _c: &'a ClientRef,
    s: &'a Shards,
    _argv: &'a [Bytes],
) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        // As Redis's resetServerStats: counters, command/error/latency stats, expiry
        // figures. The slow log is not touched (SLOWLOG RESET does that).
        s.all(|shard| {
            shard.stats.reset();
            shard.expire.stale_perc = 0.0;
            shard.expire.time_cap_reached = 0;
            for db in shard.dbs.iter_mut() {
                db.expired = 0;
            }
        })
        .await;
        // (And the replication byte totals and sync counters, as resetServerStats.)
        let r = crate::replication::of(&s.server);
        for total in [
            &r.repl_input_bytes,
            &r.repl_output_bytes,
            &r.sync_full,
            &r.sync_partial_ok,
            &r.sync_partial_err,
        ] {
            total.store(0, std::sync::atomic::Ordering::Relaxed);
        }
        // (INFO persistence's `rdb_saves` too, as Redis's resetServerStats.)
        let save = &crate::persistence::of(&s.server).save;
        save.saves.store(0, std::sync::atomic::Ordering::Relaxed);
        crate::lazyfree::reset_stats();
        crate::shard::evict::reset_stats();
        Reply::ok()
    })
}

fn config_rewrite<'a>(
    _c: &'a ClientRef,
    s: &'a Shards,
    _argv: &'a [Bytes],
) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        let cfg = s.server.config.current();
        // Without an ACL file the users live in the config file (Redis's
        // `rewriteConfigUserOption`).
        let users: Option<Vec<String>> = cfg.get("aclfile").is_none_or(str::is_empty).then(|| {
            crate::acl::registry()
                .users()
                .iter()
                .map(|u| format!("{} {}", u.name, u.describe()))
                .collect()
        });
        match config::rewrite(&cfg, users.as_deref()) {
            Ok(()) => Reply::ok(),
            Err(e) => errors::config_rewrite_failed(&e.to_string()),
        }
    })
}

/// Redis's help text for a container: a header line then the lines given.
pub fn help_reply(container: &str, lines: &[&str]) -> Reply {
    let mut out = vec![Reply::Status(
        format!("{container} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:").into(),
    )];
    out.extend(lines.iter().map(|l| Reply::Status(l.to_string().into())));
    out.push(Reply::status("HELP"));
    out.push(Reply::status("    Prints this help."));
    Reply::Array(out)
}

fn config_help<'a>(
    _c: &'a ClientRef,
    _s: &'a Shards,
    _argv: &'a [Bytes],
) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        help_reply(
            "CONFIG",
            &[
                "GET <pattern>",
                "    Return parameters matching the glob-like <pattern> and their values.",
                "SET <directive> <value>",
                "    Set the configuration <directive> to <value>.",
                "RESETSTAT",
                "    Reset statistics reported by the INFO command.",
                "REWRITE",
                "    Rewrite the configuration file.",
            ],
        )
    })
}

/// The values CONFIG SET gives to parameters Redis 7.0 marks sensitive, which the
/// slow log and MONITOR show as `(redacted)`.
fn sensitive_values(argv: &[Bytes]) -> Vec<usize> {
    const SENSITIVE: [&str; 3] = ["requirepass", "masterauth", "masteruser"];
    (2..argv.len().saturating_sub(1))
        .step_by(2)
        .filter(|&i| {
            SENSITIVE
                .iter()
                .any(|name| argv[i].eq_ignore_ascii_case(name.as_bytes()))
        })
        .map(|i| i + 1)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(v: &[&str]) -> Vec<Bytes> {
        v.iter()
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect()
    }

    fn map_names(r: &Reply) -> Vec<String> {
        let Reply::Map(pairs) = r else {
            panic!("not a map: {r:?}")
        };
        pairs
            .iter()
            .map(|(k, _)| match k {
                Reply::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
                _ => panic!(),
            })
            .collect()
    }

    #[test]
    fn get_glob_exact_and_alias() {
        let c = Config::default();
        let names = map_names(&get_reply(&c, &b(&["maxmemory*"])));
        for n in [
            "maxmemory",
            "maxmemory-policy",
            "maxmemory-samples",
            "maxmemory-clients",
            "maxmemory-eviction-tenacity",
        ] {
            assert!(names.contains(&n.to_string()), "{n} in {names:?}");
        }
        assert_eq!(names.len(), 5);
        // Exact names echo the caller's spelling; aliases work; hidden options need an
        // exact name; duplicates across patterns appear once.
        assert_eq!(
            get_reply(&c, &b(&["PORT", "port"])),
            Reply::Map(vec![(Reply::bulk_str("PORT"), Reply::bulk_str("6379"))])
        );
        assert_eq!(
            map_names(&get_reply(&c, &b(&["slave-read-only"]))),
            vec!["slave-read-only"]
        );
        assert_eq!(map_names(&get_reply(&c, &b(&["*read-only"]))).len(), 2);
        assert!(map_names(&get_reply(&c, &b(&["*"])))
            .iter()
            .all(|n| n != "key-load-delay"));
        assert_eq!(
            map_names(&get_reply(&c, &b(&["key-load-delay"]))),
            vec!["key-load-delay"]
        );
        assert_eq!(get_reply(&c, &b(&["nosuch"])), Reply::Map(vec![]));
        // Case-insensitive globbing.
        assert_eq!(map_names(&get_reply(&c, &b(&["HZ*"]))), vec!["hz"]);
    }

    #[test]
    fn set_is_atomic_with_redis_errors() {
        let mut c = Config::default();
        assert_eq!(
            apply_set(&mut c, &b(&["hz", "20", "maxmemory", "2mb"]), true),
            Ok(())
        );
        assert_eq!((c.hz, c.maxmemory), (20, 2 << 20));
        let err = |r: Result<(), Reply>| match r {
            Err(Reply::Error(e)) => e.to_string(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            err(apply_set(&mut c, &b(&["foo", "bar"]), true)),
            "ERR Unknown option or number of arguments for CONFIG SET - 'foo'"
        );
        assert_eq!(
            err(apply_set(&mut c, &b(&["tcp-backlog", "7000"]), true)),
            "ERR CONFIG SET failed (possibly related to argument 'tcp-backlog') - can't set immutable config"
        );
        assert_eq!(
            err(apply_set(&mut c, &b(&["dir", "/tmp"]), true)),
            "ERR CONFIG SET failed (possibly related to argument 'dir') - can't set protected config"
        );
        assert_eq!(
            err(apply_set(
                &mut c,
                &b(&["timeout", "5", "timeout", "6"]),
                true
            )),
            "ERR CONFIG SET failed (possibly related to argument 'timeout') - duplicate parameter"
        );
        // One bad value: nothing changes.
        assert_eq!(
            err(apply_set(&mut c, &b(&["hz", "30", "maxclients", "x"]), true)),
            "ERR CONFIG SET failed (possibly related to argument 'maxclients') - argument couldn't be parsed into an integer"
        );
        assert_eq!(c.hz, 20);
        assert_eq!(
            err(apply_set(&mut c, &b(&["slowlog-log-slower-than", "-2"]), true)),
            "ERR CONFIG SET failed (possibly related to argument 'slowlog-log-slower-than') - argument must be between -1 and 9223372036854775807 inclusive"
        );
        apply_set(
            &mut c,
            &b(&["slowlog-log-slower-than", "0", "SLAVE-READ-ONLY", "no"]),
            true,
        )
        .unwrap();
        assert_eq!(c.slowlog_log_slower_than, 0);
        assert_eq!(c.get("replica-read-only"), Some("no"));
    }
}
