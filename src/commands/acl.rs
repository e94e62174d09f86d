//! ACL: CAT, DELUSER, DRYRUN, GENPASS, GETUSER, HELP, LIST, LOAD, LOG, SAVE, SETUSER,
//! USERS, WHOAMI, as Redis 7.0 answers them. The users and the checks are in
//! `crate::acl`; this file is the command's surface.

use super::connection::kill_where;
use super::{args, errors, Command, Exec, LocalBoxFuture};
use crate::acl::{self, registry, universe::Universe, User};
use crate::client::{Client, ClientRef};
use crate::protocol::Reply;
use crate::runtime::Shards;
use bytes::Bytes;
use std::sync::Arc;

const ADMIN: &str = "admin noscript loading stale";
const PLAIN: &str = "noscript loading stale";
const ADMIN_ACL: &str = "admin slow dangerous";

static SUBCOMMANDS: &[Command] = &[
    Command::new("acl|cat", -2, PLAIN, "slow", Exec::Conn(cat)),
    Command::new("acl|deluser", -3, ADMIN, ADMIN_ACL, Exec::Server(deluser)),
    Command::new("acl|dryrun", -4, ADMIN, ADMIN_ACL, Exec::Conn(dryrun)),
    Command::new("acl|genpass", -2, PLAIN, "slow", Exec::Conn(genpass)),
    Command::new("acl|getuser", 3, ADMIN, ADMIN_ACL, Exec::Conn(getuser)),
    Command::new("acl|help", 2, "loading stale", "slow", Exec::Conn(help)),
    Command::new("acl|list", 2, ADMIN, ADMIN_ACL, Exec::Conn(list)),
    Command::new("acl|load", 2, ADMIN, ADMIN_ACL, Exec::Server(load)),
    Command::new("acl|log", -2, ADMIN, ADMIN_ACL, Exec::Server(log)),
    Command::new("acl|save", 2, ADMIN, ADMIN_ACL, Exec::Server(save)),
    Command::new("acl|setuser", -3, ADMIN, ADMIN_ACL, Exec::Server(setuser))
        .redacts(setuser_secrets),
    Command::new("acl|users", 2, ADMIN, ADMIN_ACL, Exec::Conn(users)),
    Command::new("acl|whoami", 2, PLAIN, "slow", Exec::Conn(whoami)),
];

pub static COMMANDS: &[Command] =
    &[Command::new("acl", -2, "", "slow", Exec::Container).subcommands(SUBCOMMANDS)];

/// SETUSER's rules (passwords among them), which MONITOR and the slow log hide.
fn setuser_secrets(argv: &[Bytes]) -> Vec<usize> {
    (2..argv.len()).collect()
}

fn bulk(s: &str) -> Reply {
    Reply::bulk_str(s)
}

fn cat(_c: &mut Client, argv: &[Bytes]) -> Reply {
    let u = Universe::get();
    match argv.len() {
        2 => Reply::Array(
            acl::universe::CATEGORIES
                .iter()
                .map(|(n, _)| bulk(n))
                .collect(),
        ),
        3 => {
            let Some(bit) = acl::user::category(&argv[2]) else {
                let name = String::from_utf8_lossy(&argv[2]);
                let name: String = name.chars().take(128).collect();
                return Reply::error(format!("ERR Unknown category '{name}'"));
            };
            Reply::Array(
                u.order
                    .iter()
                    .filter(|&&id| u.cats[id] & bit != 0)
                    .map(|&id| bulk(u.names[id]))
                    .collect(),
            )
        }
        _ => errors::unknown_subcommand_or_arity("ACL", &argv[1]),
    }
}

/// Close every connection authenticated as one of `names`.
async fn kill_users(c: &ClientRef, s: &Shards, names: Vec<String>) {
    kill_where(c, s, move |cl| names.contains(&cl.user.name)).await;
}

fn deluser<'a>(c: &'a ClientRef, s: &'a Shards, argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        if argv[2..].iter().any(|a| a.as_ref() == b"default") {
            return Reply::err("ERR The 'default' user cannot be removed");
        }
        let mut gone = Vec::new();
        for a in &argv[2..] {
            if registry().delete(a) {
                gone.push(String::from_utf8_lossy(a).into_owned());
            }
        }
        let n = gone.len();
        if n > 0 {
            kill_users(c, s, gone).await;
        }
        Reply::Int(n as i64)
    })
}

fn dryrun(_c: &mut Client, argv: &[Bytes]) -> Reply {
    let Some(user) = registry().user(&argv[2]) else {
        return Reply::error(format!(
            "ERR User '{}' not found",
            String::from_utf8_lossy(&argv[2])
        ));
    };
    let target = &argv[3..];
    let cmd = match crate::runtime::admission::resolve(target) {
        Ok(cmd) => cmd,
        Err((_, Some(cmd))) => {
            return Reply::error(format!(
                "ERR wrong number of arguments for '{}' command",
                cmd.name
            ))
        }
        Err((_, None)) => {
            return Reply::error(format!(
                "ERR Command '{}' not found",
                String::from_utf8_lossy(&target[0])
            ))
        }
    };
    match acl::check(&user, cmd, target) {
        Ok(()) => Reply::ok(),
        Err(acl::Denied::Command) => bulk(&format!(
            "This user has no permissions to run the '{}' command",
            cmd.name
        )),
        Err(acl::Denied::Key(i)) => bulk(&format!(
            "This user has no permissions to access the '{}' key",
            String::from_utf8_lossy(&target[i])
        )),
        Err(acl::Denied::Channel(i)) => bulk(&format!(
            "This user has no permissions to access the '{}' channel",
            String::from_utf8_lossy(&target[i])
        )),
        Err(acl::Denied::Auth) => bulk("no permission"),
    }
}

fn genpass(_c: &mut Client, argv: &[Bytes]) -> Reply {
    let bits = match argv.get(2) {
        None if argv.len() == 2 => 256,
        Some(a) if argv.len() == 3 => match args::int(a) {
            Ok(b) => b,
            Err(e) => return e,
        },
        _ => return errors::unknown_subcommand_or_arity("ACL", &argv[1]),
    };
    if bits <= 0 || bits > 4096 {
        return Reply::err(
            "ERR ACL GENPASS argument must be the number of bits for the output password, a \
             positive number up to 4096",
        );
    }
    let chars = (bits as usize).div_ceil(4);
    let mut bytes = vec![0u8; chars.div_ceil(2)];
    // The operating system's generator, as Redis reads /dev/urandom.
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    bulk(&hex[..chars])
}

fn selector_fields(s: &acl::user::Selector) -> Vec<(Reply, Reply)> {
    vec![
        (bulk("commands"), bulk(&s.describe_commands())),
        (bulk("keys"), bulk(&s.describe_keys())),
        (bulk("channels"), bulk(&s.describe_channels())),
    ]
}

fn getuser(_c: &mut Client, argv: &[Bytes]) -> Reply {
    let Some(u) = registry().user(&argv[2]) else {
        return Reply::Null;
    };
    let mut fields = vec![
        (
            bulk("flags"),
            Reply::Set(u.flags().into_iter().map(bulk).collect()),
        ),
        (
            bulk("passwords"),
            Reply::Array(u.passwords.iter().map(|p| bulk(p)).collect()),
        ),
    ];
    fields.extend(selector_fields(u.root()));
    fields.push((
        bulk("selectors"),
        Reply::Array(
            u.selectors[1..]
                .iter()
                .map(|s| Reply::Map(selector_fields(s)))
                .collect(),
        ),
    ));
    Reply::Map(fields)
}

fn help(_c: &mut Client, _argv: &[Bytes]) -> Reply {
    super::connection::help_reply(
        "ACL",
        &[
            "CAT [<category>]",
            "    List all commands that belong to <category>, or all command categories",
            "    when no category is specified.",
            "DELUSER <username> [<username> ...]",
            "    Delete a list of users.",
            "DRYRUN <username> <command> [<arg> ...]",
            "    Returns whether the user can execute the given command without executing the command.",
            "GETUSER <username>",
            "    Get the user's details.",
            "GENPASS [<bits>]",
            "    Generate a secure 256-bit user password. The optional `bits` argument can",
            "    be used to specify a different size.",
            "LIST",
            "    Show users details in config file format.",
            "LOAD",
            "    Reload users from the ACL file.",
            "LOG [<count> | RESET]",
            "    Show the ACL log entries.",
            "SAVE",
            "    Save the current config to the ACL file.",
            "SETUSER <username> <attribute> [<attribute> ...]",
            "    Create or modify a user with the specified attributes.",
            "USERS",
            "    List all the registered usernames.",
            "WHOAMI",
            "    Return the current connection username.",
        ],
    )
}

fn list(_c: &mut Client, _argv: &[Bytes]) -> Reply {
    Reply::Array(
        registry()
            .users()
            .iter()
            .map(|u| bulk(&format!("user {} {}", u.name, u.describe())))
            .collect(),
    )
}

const NO_ACL_FILE: &str = "ERR This Redis instance is not configured to use an ACL file. You may want to specify users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a Redis configuration file set) in order to store users in the Redis configuration.";

fn aclfile(s: &Shards) -> String {
    s.server
        .config
        .current()
        .get("aclfile")
        .unwrap_or("")
        .to_string()
}

fn allchannels(s: &Shards) -> bool {
    s.server.config.current().get("acl-pubsub-default") == Some("allchannels")
}

fn load<'a>(c: &'a ClientRef, s: &'a Shards, _argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        let path = aclfile(s);
        if path.is_empty() {
            return Reply::err(NO_ACL_FILE);
        }
        let before: Vec<String> = registry()
            .users()
            .iter()
            .filter(|u| u.name != "default")
            .map(|u| u.name.clone())
            .collect();
        let dir = s.server.config.current().dir.clone();
        match acl::load_file(&path, &dir, allchannels(s)) {
            // Redis frees every user but the default one, and their clients with them.
            Ok(()) => {
                kill_users(c, s, before).await;
                Reply::ok()
            }
            Err(e) => Reply::error(format!("ERR {e}")),
        }
    })
}

fn log<'a>(c: &'a ClientRef, _s: &'a Shards, argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        let _ = c;
        let count = match argv.get(2) {
            _ if argv.len() > 3 => return errors::unknown_subcommand_or_arity("ACL", &argv[1]),
            None => 10,
            Some(a) if args::eq(a, "reset") => {
                registry().log_reset();
                return Reply::ok();
            }
            Some(a) => match args::int(a) {
                Ok(n) => n.max(0) as usize,
                Err(e) => return e,
            },
        };
        let now = crate::clock::now_ms();
        Reply::Array(
            registry()
                .log_entries(count)
                .into_iter()
                .map(|e| {
                    Reply::Map(vec![
                        (bulk("count"), Reply::Int(e.count as i64)),
                        (bulk("reason"), bulk(e.reason)),
                        (bulk("context"), bulk(e.context)),
                        (bulk("object"), bulk(&e.object)),
                        (bulk("username"), bulk(&e.username)),
                        (
                            bulk("age-seconds"),
                            Reply::Double(now.saturating_sub(e.ctime_ms) as f64 / 1000.0),
                        ),
                        (bulk("client-info"), bulk(&e.client_info)),
                    ])
                })
                .collect(),
        )
    })
}

fn save<'a>(_c: &'a ClientRef, s: &'a Shards, _argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        let path = aclfile(s);
        if path.is_empty() {
            return Reply::err(NO_ACL_FILE);
        }
        let dir = s.server.config.current().dir.clone();
        match acl::save_file(&path, &dir) {
            Ok(()) => Reply::ok(),
            Err(e) => {
                crate::log::warning(&format!(
                    "Writing ACL file for ACL SAVE: {}",
                    crate::log::strerror(&e)
                ));
                Reply::err(
                    "ERR There was an error trying to save the ACLs. Please check the server \
                     logs for more information",
                )
            }
        }
    })
}

fn setuser<'a>(c: &'a ClientRef, s: &'a Shards, argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        let name = &argv[2];
        if acl::user::has_spaces(name) {
            return Reply::err("ERR Usernames can't contain spaces or null characters");
        }
        match registry().set_user(name, &argv[3..], allchannels(s)) {
            Ok((Some(old), new)) => {
                kill_refused_subscribers(c, s, &old, &new).await;
                Reply::ok()
            }
            Ok((None, _)) => Reply::ok(),
            Err(e) => Reply::error(format!("ERR {e}")),
        }
    })
}

/// A user's channels narrowed: close its subscribers whose subscriptions the new rules
/// refuse (Redis's `ACLKillPubsubClientsIfNeeded`: a pattern must be among the new
/// channel patterns as it is, a channel must match one of them).
async fn kill_refused_subscribers(c: &ClientRef, s: &Shards, old: &Arc<User>, new: &Arc<User>) {
    if new.selectors.iter().any(|s| s.allchannels) {
        return;
    }
    let upcoming: Vec<Vec<u8>> = new
        .selectors
        .iter()
        .flat_map(|s| s.channels.iter().cloned())
        .collect();
    let kept = old
        .selectors
        .iter()
        .all(|s| !s.allchannels && s.channels.iter().all(|ch| upcoming.contains(ch)));
    if kept {
        return;
    }
    let name = new.name.clone();
    let refused = move |cl: &Client| {
        use crate::client::Subscription;
        if cl.user.name != name || !cl.pubsub.active() {
            return false;
        }
        let allowed = |ch: &[u8], pattern: bool| {
            upcoming.iter().any(|p| {
                if pattern {
                    p[..] == *ch
                } else {
                    crate::storage::glob::glob_match(p, ch, false)
                }
            })
        };
        cl.pubsub
            .of(Subscription::Pattern)
            .iter()
            .any(|p| !allowed(p, true))
            || cl
                .pubsub
                .of(Subscription::Channel)
                .iter()
                .any(|ch| !allowed(ch, false))
            || cl
                .pubsub
                .of(Subscription::ShardChannel)
                .iter()
                .any(|ch| !allowed(ch, false))
    };
    kill_where(c, s, refused).await;
}

fn users(_c: &mut Client, _argv: &[Bytes]) -> Reply {
    Reply::Array(registry().users().iter().map(|u| bulk(&u.name)).collect())
}

fn whoami(c: &mut Client, _argv: &[Bytes]) -> Reply {
    bulk(&c.user.name)
}
