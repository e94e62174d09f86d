//! Connection commands (Redis's `networking.c`): PING, ECHO, QUIT, RESET, SELECT, AUTH,
//! HELLO and the CLIENT subcommands.
//!
//! These act on the client's own state ([`Client`]); only AUTH / HELLO (which read the
//! password), CLIENT LIST / KILL / UNBLOCK (which walk every core's clients) and CLIENT
//! PAUSE / UNPAUSE (which reach every core, see `runtime::pause`) need the [`Shards`]
//! handle. The one idea to hold: every reply and error text here is one that
//! client libraries parse or match on during their handshake (redis-py sends HELLO 3 and
//! CLIENT SETINFO first), so they must be Redis's to the byte.

use super::{args, errors, traits, Command, Exec, LocalBoxFuture};
use crate::client::{Client, ClientRef, ReplyMode};
use crate::protocol::Reply;
use crate::runtime::{clients, pause, Shards};
use crate::shard::Shard;
use bytes::Bytes;

/// The version we announce to clients (HELLO, INFO redis_version) so feature checks pass.
pub const REDIS_VERSION: &str = "7.0.15";

const CONN: &str = "noscript loading stale fast no_auth allow_busy";

pub static COMMANDS: &[Command] = &[
    Command::new("ping", -1, "fast", "fast connection", Exec::Conn(ping))
        .traits(traits::REFUSED_ON_DISK_ERROR | traits::SUBSCRIBE_CONTEXT),
    Command::new(
        "echo",
        2,
        "loading stale fast",
        "fast connection",
        Exec::Conn(echo),
    ),
    Command::new("quit", -1, CONN, "fast connection", Exec::Conn(quit))
        .traits(traits::RUNS_IN_MULTI | traits::SUBSCRIBE_CONTEXT),
    Command::new("reset", 1, CONN, "fast connection", Exec::Conn(reset)).traits(
        traits::RUNS_IN_MULTI
            | traits::UNWATCHES
            | traits::UNSUBSCRIBES
            | traits::ENDS_MONITOR
            | traits::SUBSCRIBE_CONTEXT,
    ),
    Command::new(
        "select",
        2,
        "loading stale fast",
        "fast connection",
        Exec::Conn(select),
    )
    .traits(traits::SELECTS_DB),
    Command::new("auth", -2, CONN, "fast connection", Exec::Server(auth)).redacts(auth_secrets),
    Command::new("hello", -1, CONN, "fast connection", Exec::Server(hello)).redacts(hello_secrets),
    Command::new("client", -2, "", "slow", Exec::Container).subcommands(CLIENT),
];

const CSUB: &str = "noscript loading stale";
const CADMIN: &str = "admin noscript loading stale";
const CACL: &str = "slow connection";
const CACL_ADMIN: &str = "admin slow dangerous connection";

static CLIENT: &[Command] = &[
    Command::new("client|id", 2, CSUB, CACL, Exec::Conn(client_id)),
    Command::new("client|getname", 2, CSUB, CACL, Exec::Conn(client_getname)),
    Command::new("client|setname", 3, CSUB, CACL, Exec::Conn(client_setname)),
    Command::new("client|setinfo", 4, CSUB, CACL, Exec::Conn(client_setinfo)),
    Command::new("client|info", 2, CSUB, CACL, Exec::Conn(client_info)),
    Command::new(
        "client|list",
        -2,
        CADMIN,
        CACL_ADMIN,
        Exec::Server(client_list),
    ),
    Command::new(
        "client|kill",
        -3,
        CADMIN,
        CACL_ADMIN,
        Exec::Server(client_kill),
    ),
    Command::new("client|reply", 3, CSUB, CACL, Exec::Conn(client_reply)),
    Command::new(
        "client|no-evict",
        3,
        CADMIN,
        CACL_ADMIN,
        Exec::Conn(client_no_evict),
    ),
    Command::new(
        "client|no-touch",
        3,
        CSUB,
        CACL,
        Exec::Conn(client_no_touch),
    ),
    Command::new(
        "client|getredir",
        2,
        CSUB,
        CACL,
        Exec::Conn(client_getredir),
    ),
    Command::new(
        "client|tracking",
        -3,
        CSUB,
        CACL,
        Exec::Server(client_tracking),
    ),
    Command::new("client|caching", 3, CSUB, CACL, Exec::Conn(client_caching)),
    Command::new(
        "client|trackinginfo",
        2,
        CSUB,
        CACL,
        Exec::Conn(client_trackinginfo),
    ),
    Command::new(
        "client|unblock",
        -3,
        CADMIN,
        CACL_ADMIN,
        Exec::Server(client_unblock),
    ),
    Command::new(
        "client|pause",
        -3,
        CADMIN,
        CACL_ADMIN,
        Exec::Server(client_pause),
    ),
    Command::new(
        "client|unpause",
        2,
        CADMIN,
        CACL_ADMIN,
        Exec::Server(client_unpause),
    ),
    Command::new(
        "client|help",
        2,
        "loading stale",
        CACL,
        Exec::Conn(client_help),
    ),
];

fn ping(c: &mut Client, argv: &[Bytes]) -> Reply {
    if argv.len() <= 2 && c.resp == 2 && c.pubsub.active() {
        // RESP2 subscribe mode: the reply must look like a message (Redis).
        let arg = argv.get(1).cloned().unwrap_or_default();
        return Reply::Array(vec![Reply::bulk_str("pong"), Reply::Bulk(arg)]);
    }
    match argv.len() {
        1 => Reply::status("PONG"),
        2 => Reply::Bulk(argv[1].clone()),
        _ => errors::wrong_arity("ping"),
    }
}

fn echo(_c: &mut Client, argv: &[Bytes]) -> Reply {
    Reply::Bulk(argv[1].clone())
}

fn quit(c: &mut Client, _argv: &[Bytes]) -> Reply {
    c.close_after_reply = true;
    Reply::ok()
}

fn reset(c: &mut Client, _argv: &[Bytes]) -> Reply {
    c.db = 0;
    c.set_resp(2);
    c.name = None;
    // As Redis's clearClientConnectionState: OFF ends, but a SKIP in force still
    // drops RESET's own reply.
    if c.reply_mode != ReplyMode::Skip {
        c.reply_mode = ReplyMode::On;
    }
    c.no_evict = false;
    c.no_touch = false;
    c.multi = None;
    c.multi_aborted = false;
    // Back to the default user, authenticated only if it needs no password.
    let acl = crate::acl::registry();
    c.acl_generation = acl.generation();
    c.user = acl.default_user();
    c.authenticated = !acl.default_needs_auth();
    crate::runtime::tracking::stop(c);
    Reply::status("RESET")
}

/// AUTH's arguments, which MONITOR hides, unless there are too many (Redis answers
/// the syntax error before it redacts them).
fn auth_secrets(argv: &[Bytes]) -> Vec<usize> {
    if argv.len() > 3 {
        return Vec::new();
    }
    (1..argv.len()).collect()
}

/// The user and password after each AUTH option of HELLO, which MONITOR hides, up to
/// where Redis stops reading the options (an unsupported version: none at all).
fn hello_secrets(argv: &[Bytes]) -> Vec<usize> {
    if argv.len() >= 2 && !matches!(args::int(&argv[1]), Ok(2 | 3)) {
        return Vec::new();
    }
    let mut secrets = Vec::new();
    let mut j = 2;
    while j < argv.len() {
        let more = argv.len() - 1 - j;
        if args::eq(&argv[j], "auth") && more >= 2 {
            secrets.extend([j + 1, j + 2]);
            j += 3;
        } else if args::eq(&argv[j], "setname") && more >= 1 {
            j += 2;
        } else {
            break;
        }
    }
    secrets
}

fn select(c: &mut Client, argv: &[Bytes]) -> Reply {
    let idx = match args::int(&argv[1]) {
        Ok(i) => i,
        Err(e) => return e,
    };
    if crate::cluster::enabled() && idx != 0 {
        return Reply::err("ERR SELECT is not allowed in cluster mode");
    }
    if idx < 0 || idx as usize >= c.databases {
        return Reply::err(errors::DB_INDEX);
    }
    c.db = idx as usize;
    Reply::ok()
}

/// Authenticate `c` as `user` (AUTH, HELLO AUTH): `WRONGPASS` (and an ACL LOG
/// entry naming the command as the client wrote it, `via`) if the user does not
/// exist, is off, or the password is not its.
fn authenticate(c: &mut Client, via: &[u8], user: &[u8], pass: &[u8]) -> Result<(), Reply> {
    let acl = crate::acl::registry();
    let generation = acl.generation();
    match acl.authenticate(user, pass) {
        Some(u) => {
            c.user = u;
            c.acl_generation = generation;
            c.authenticated = true;
            Ok(())
        }
        None => {
            let context = if c.multi.is_some() {
                crate::acl::Context::Multi
            } else {
                crate::acl::Context::Toplevel
            };
            let info = c.info_line(crate::clock::now_ms());
            let denied = crate::acl::Denied::Auth;
            let name = String::from_utf8_lossy(user);
            let via = String::from_utf8_lossy(via).into_owned();
            let entry = crate::acl::entry(denied, context, via, &name, info);
            acl.log(entry);
            Err(Reply::err(errors::WRONGPASS))
        }
    }
}

fn auth<'a>(c: &'a ClientRef, _s: &'a Shards, argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        if argv.len() > 3 {
            return errors::syntax();
        }
        let (user, pass): (&[u8], &[u8]) = if argv.len() == 3 {
            (&argv[1], &argv[2])
        } else {
            if crate::acl::registry().default_user().nopass {
                return Reply::err(errors::AUTH_NO_PASSWORD);
            }
            (b"default", &argv[1])
        };
        match authenticate(&mut c.borrow_mut(), &argv[0], user, pass) {
            Ok(()) => Reply::ok(),
            Err(e) => e,
        }
    })
}

fn hello<'a>(c: &'a ClientRef, s: &'a Shards, argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        let mut proto = None;
        if argv.len() >= 2 {
            match args::int(&argv[1]) {
                Ok(v) if (2..=3).contains(&v) => proto = Some(v as u8),
                Ok(_) => return Reply::err(errors::NOPROTO),
                Err(_) => return Reply::err(errors::PROTOCOL_NOT_INTEGER),
            }
        }
        let mut auth: Option<(&Bytes, &Bytes)> = None;
        let mut setname: Option<&Bytes> = None;
        let mut i = 2;
        while i < argv.len() {
            let more = argv.len() - i - 1;
            if args::eq(&argv[i], "auth") && more >= 2 {
                auth = Some((&argv[i + 1], &argv[i + 2]));
                i += 3;
            } else if args::eq(&argv[i], "setname") && more >= 1 {
                setname = Some(&argv[i + 1]);
                i += 2;
            } else {
                return errors::hello_syntax(&String::from_utf8_lossy(&argv[i]));
            }
        }
        let mut c = c.borrow_mut();
        if let Some((user, pass)) = auth {
            if let Err(e) = authenticate(&mut c, &argv[0], user, pass) {
                return e;
            }
        }
        if !c.authenticated {
            return Reply::err(errors::HELLO_NOAUTH);
        }
        if let Some(name) = setname {
            if let Err(e) = set_name(&mut c, name) {
                return e;
            }
        }
        if let Some(p) = proto {
            c.set_resp(p);
        }
        let mut fields = vec![
            (Reply::bulk_str("server"), Reply::bulk_str("redis")),
            (Reply::bulk_str("version"), Reply::bulk_str(REDIS_VERSION)),
            (Reply::bulk_str("proto"), Reply::Int(c.resp as i64)),
            (Reply::bulk_str("id"), Reply::Int(c.id as i64)),
        ];
        // A Sentinel says so, and has no replication role.
        if crate::sentinel::enabled() {
            fields.push((Reply::bulk_str("mode"), Reply::bulk_str("sentinel")));
        } else {
            fields.push((Reply::bulk_str("mode"), Reply::bulk_str("standalone")));
            let role = if crate::replication::is_replica(&s.server) {
                "replica"
            } else {
                "master"
            };
            fields.push((Reply::bulk_str("role"), Reply::bulk_str(role)));
        }
        fields.push((Reply::bulk_str("modules"), Reply::Array(vec![])));
        Reply::Map(fields)
    })
}

fn client_id(c: &mut Client, _argv: &[Bytes]) -> Reply {
    Reply::Int(c.id as i64)
}

fn client_getname(c: &mut Client, _argv: &[Bytes]) -> Reply {
    match &c.name {
        Some(n) => Reply::bulk_str(n),
        None => Reply::Null,
    }
}

/// Redis allows names of printable ASCII without spaces (`validateClientName`-like).
fn printable_no_space(b: &[u8]) -> bool {
    b.iter().all(|&ch| (b'!'..=b'~').contains(&ch))
}

fn set_name(c: &mut Client, name: &[u8]) -> Result<(), Reply> {
    if name.is_empty() {
        c.name = None;
        return Ok(());
    }
    if !printable_no_space(name) {
        return Err(Reply::err(errors::CLIENT_NAME_INVALID));
    }
    c.name = Some(String::from_utf8_lossy(name).into_owned());
    Ok(())
}

fn client_setname(c: &mut Client, argv: &[Bytes]) -> Reply {
    match set_name(c, &argv[2]) {
        Ok(()) => Reply::ok(),
        Err(e) => e,
    }
}

fn client_setinfo(c: &mut Client, argv: &[Bytes]) -> Reply {
    let attr = String::from_utf8_lossy(&argv[2]).to_ascii_lowercase();
    let value = &argv[3];
    let slot = match attr.as_str() {
        "lib-name" => &mut c.lib_name,
        "lib-ver" => &mut c.lib_ver,
        _ => return errors::unrecognized_option(&String::from_utf8_lossy(&argv[2])),
    };
    if !printable_no_space(value) {
        return errors::client_info_invalid(&attr);
    }
    *slot = if value.is_empty() {
        None
    } else {
        Some(String::from_utf8_lossy(value).into_owned())
    };
    Reply::ok()
}

fn client_info(c: &mut Client, _argv: &[Bytes]) -> Reply {
    let mut line = c.info_line(crate::clock::now_ms());
    line.push('\n');
    Reply::Verbatim("txt", Bytes::from(line))
}

fn client_reply(c: &mut Client, argv: &[Bytes]) -> Reply {
    let a = &argv[2];
    if args::eq(a, "on") {
        c.reply_mode = ReplyMode::On;
        Reply::ok()
    } else if args::eq(a, "off") {
        c.reply_mode = ReplyMode::Off;
        Reply::NoReply
    } else if args::eq(a, "skip") {
        if c.reply_mode != ReplyMode::Off {
            c.reply_mode = ReplyMode::SkipNext;
        }
        Reply::NoReply
    } else {
        errors::syntax()
    }
}

fn on_off(a: &[u8]) -> Option<bool> {
    if args::eq(a, "on") {
        Some(true)
    } else if args::eq(a, "off") {
        Some(false)
    } else {
        None
    }
}

fn client_no_evict(c: &mut Client, argv: &[Bytes]) -> Reply {
    match on_off(&argv[2]) {
        Some(v) => {
            c.no_evict = v;
            Reply::ok()
        }
        None => errors::syntax(),
    }
}

fn client_no_touch(c: &mut Client, argv: &[Bytes]) -> Reply {
    match on_off(&argv[2]) {
        Some(v) => {
            c.no_touch = v;
            Reply::ok()
        }
        None => errors::syntax(),
    }
}

/// CLIENT GETREDIR: the client invalidations are redirected to, 0 for none, -1 when
/// not tracking.
fn client_getredir(c: &mut Client, _argv: &[Bytes]) -> Reply {
    Reply::Int(c.tracking.as_ref().map_or(-1, |t| t.redirect as i64))
}

/// CLIENT TRACKING ON|OFF [REDIRECT id] [PREFIX p ...] [BCAST] [OPTIN] [OPTOUT]
/// [NOLOOP]: options parsed, then checked in Redis's order, each with its text.
fn client_tracking<'a>(
    c: &'a ClientRef,
    s: &'a Shards,
    argv: &'a [Bytes],
) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        let mut t = crate::tracking::Tracker {
            core: s.local_id,
            ..Default::default()
        };
        let mut prefixes: Vec<Bytes> = Vec::new();
        let mut j = 3;
        while j < argv.len() {
            let more = j + 1 < argv.len();
            let a = &argv[j];
            if args::eq(a, "redirect") && more {
                j += 1;
                if t.redirect != 0 {
                    return Reply::err(errors::TRACKING_ONE_REDIRECT);
                }
                let Ok(id) = args::int(&argv[j]) else {
                    return Reply::err(errors::NOT_INTEGER);
                };
                let found = s
                    .all(move |_| clients::get(id as u64).is_some())
                    .await
                    .into_iter()
                    .position(|here| here);
                let Some(core) = found.filter(|_| id > 0) else {
                    return Reply::err(errors::TRACKING_NO_REDIRECT_CLIENT);
                };
                t.redirect = id as u64;
                t.redirect_core = core;
            } else if args::eq(a, "bcast") {
                t.bcast = true;
            } else if args::eq(a, "optin") {
                t.optin = true;
            } else if args::eq(a, "optout") {
                t.optout = true;
            } else if args::eq(a, "noloop") {
                t.noloop = true;
            } else if args::eq(a, "prefix") && more {
                j += 1;
                prefixes.push(argv[j].clone());
            } else {
                return errors::syntax();
            }
            j += 1;
        }
        let mut c = c.borrow_mut();
        if args::eq(&argv[2], "off") {
            crate::runtime::tracking::stop(&mut c);
            return Reply::ok();
        }
        if !args::eq(&argv[2], "on") {
            return errors::syntax();
        }
        if !t.bcast && !prefixes.is_empty() {
            return Reply::err(errors::TRACKING_PREFIX_NEEDS_BCAST);
        }
        if let Some(old) = &c.tracking {
            if old.bcast != t.bcast {
                return Reply::err(errors::TRACKING_BCAST_SWITCH);
            }
        }
        if t.bcast && (t.optin || t.optout) {
            return Reply::err(errors::TRACKING_OPT_WITH_BCAST);
        }
        if t.optin && t.optout {
            return Reply::err(errors::TRACKING_OPTIN_AND_OPTOUT);
        }
        if let Some(old) = &c.tracking {
            if (t.optin && old.optout) || (t.optout && old.optin) {
                return Reply::err(errors::TRACKING_OPT_SWITCH);
            }
        }
        if t.bcast {
            let existing = c.tracking.as_ref().map(|o| o.prefixes.clone());
            for (i, p) in prefixes.iter().enumerate() {
                for e in existing.iter().flatten() {
                    if overlap(e, p) {
                        return errors::prefix_overlap(p, e, false);
                    }
                }
                for q in &prefixes[i + 1..] {
                    if overlap(p, q) {
                        return errors::prefix_overlap(p, q, true);
                    }
                }
            }
        }
        let id = c.id;
        // Its connection task now also waits for what is queued for it.
        c.push_queue();
        crate::tracking::enable(id, t, &prefixes);
        c.tracking = crate::tracking::tracker(id);
        Reply::ok()
    })
}

/// Two prefixes overlap if one starts the other (Redis's `stringCheckPrefix`).
fn overlap(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

/// CLIENT CACHING YES|NO: whether the next command's reads are tracked, in OPTIN /
/// OPTOUT mode.
fn client_caching(c: &mut Client, argv: &[Bytes]) -> Reply {
    let Some(t) = &c.tracking else {
        return Reply::err(errors::CACHING_NOT_TRACKING);
    };
    if args::eq(&argv[2], "yes") {
        if !t.optin {
            return Reply::err(errors::CACHING_YES_NOT_OPTIN);
        }
    } else if args::eq(&argv[2], "no") {
        if !t.optout {
            return Reply::err(errors::CACHING_NO_NOT_OPTOUT);
        }
    } else {
        return errors::syntax();
    }
    // Inside EXEC it was accounted for when EXEC started (`runtime::tracking`), and
    // it ends with EXEC.
    if !c.deny_blocking {
        c.tracking_caching = true;
    }
    Reply::ok()
}

/// CLIENT TRACKINGINFO: flags, redirect and prefixes, as Redis's map.
fn client_trackinginfo(c: &mut Client, _argv: &[Bytes]) -> Reply {
    // The shared copy knows whether the redirect was found broken since.
    let t = c
        .tracking
        .as_ref()
        .and_then(|t| crate::tracking::tracker(c.id).or(Some(t.clone())));
    let mut flags = vec![if t.is_some() { "on" } else { "off" }];
    if let Some(t) = &t {
        if t.bcast {
            flags.push("bcast");
        }
        if t.optin {
            flags.push("optin");
            if c.tracking_caching {
                flags.push("caching-yes");
            }
        }
        if t.optout {
            flags.push("optout");
            if c.tracking_caching {
                flags.push("caching-no");
            }
        }
        if t.noloop {
            flags.push("noloop");
        }
        if t.broken {
            flags.push("broken_redirect");
        }
    }
    let redirect = t.as_ref().map_or(-1, |t| t.redirect as i64);
    let prefixes = t
        .map(|t| t.prefixes.into_iter().map(Reply::Bulk).collect())
        .unwrap_or_default();
    Reply::Map(vec![
        (
            Reply::bulk_str("flags"),
            Reply::Set(flags.into_iter().map(Reply::bulk_str).collect()),
        ),
        (Reply::bulk_str("redirect"), Reply::Int(redirect)),
        (Reply::bulk_str("prefixes"), Reply::Array(prefixes)),
    ])
}

/// CLIENT UNBLOCK id [TIMEOUT|ERROR]: the client may be connected to any core.
fn client_unblock<'a>(
    _c: &'a ClientRef,
    s: &'a Shards,
    argv: &'a [Bytes],
) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        let Ok(id) = args::int(&argv[2]) else {
            return Reply::err(errors::NOT_INTEGER);
        };
        if argv.len() == 4 && !(args::eq(&argv[3], "timeout") || args::eq(&argv[3], "error")) {
            return Reply::err(errors::UNBLOCK_REASON);
        }
        if argv.len() > 4 {
            return errors::syntax();
        }
        let error = argv.len() == 4 && args::eq(&argv[3], "error");
        let id = id as u64;
        let done = s
            .all(move |_| crate::runtime::blocking::unblock(id, error))
            .await;
        Reply::Int(done.into_iter().any(|d| d) as i64)
    })
}

/// CLIENT PAUSE timeout-ms [WRITE|ALL]: hold every client's commands (ALL, the
/// default) or their writes (WRITE) on every core until the timeout, as Redis 7.0
/// (see `runtime::pause`). The mode is checked before the timeout, as Redis does; a
/// timeout of 0 pauses nothing new (it can still make a WRITE pause in force ALL).
fn client_pause<'a>(
    _c: &'a ClientRef,
    s: &'a Shards,
    argv: &'a [Bytes],
) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        if argv.len() > 4 {
            return errors::unknown_subcommand_or_arity("CLIENT", &argv[1]);
        }
        let kind = match argv.get(3) {
            None => pause::Kind::All,
            Some(a) if args::eq(a, "write") => pause::Kind::Write,
            Some(a) if args::eq(a, "all") => pause::Kind::All,
            Some(_) => return Reply::err(errors::PAUSE_MODE),
        };
        let Some(ms) = crate::protocol::parse::parse_i64(&argv[2]) else {
            return Reply::err(errors::TIMEOUT_NOT_INTEGER);
        };
        if ms < 0 {
            return Reply::err(errors::TIMEOUT_NEGATIVE);
        }
        // Redis adds the timeout to the clock as a long long: a huge one wraps to a
        // past end, which pauses nothing.
        let end = match ms {
            0 => 0,
            ms => ms.wrapping_add(crate::clock::now_ms() as i64),
        };
        pause::pause(s, kind, end).await;
        Reply::ok()
    })
}

/// CLIENT UNPAUSE: end the pause on every core; the postponed commands run.
fn client_unpause<'a>(
    _c: &'a ClientRef,
    s: &'a Shards,
    _argv: &'a [Bytes],
) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        pause::unpause(s).await;
        Reply::ok()
    })
}

/// Which clients a CLIENT LIST / KILL filter selects.
#[derive(Clone, Default)]
struct ClientFilter {
    ids: Option<Vec<u64>>,
    addr: Option<String>,
    laddr: Option<String>,
    user: Option<String>,
    kind: Option<String>,
    /// Id of the client to skip (SKIPME yes, the default for the filter form).
    skip: Option<u64>,
}

impl ClientFilter {
    fn matches(&self, c: &Client) -> bool {
        // A killed client is gone for every later command (Redis frees it before it
        // replies), though its connection may not have closed yet.
        if c.killed || self.skip == Some(c.id) {
            return false;
        }
        if let Some(ids) = &self.ids {
            if !ids.contains(&c.id) {
                return false;
            }
        }
        if let Some(a) = &self.addr {
            if c.addr.to_string() != *a {
                return false;
            }
        }
        if let Some(a) = &self.laddr {
            if c.laddr.to_string() != *a {
                return false;
            }
        }
        if let Some(u) = &self.user {
            if c.user.name != *u {
                return false;
            }
        }
        if let Some(k) = &self.kind {
            if k != c.class().name() {
                return false;
            }
        }
        true
    }
}

fn parse_type(a: &[u8]) -> Result<String, Reply> {
    let t = String::from_utf8_lossy(a).to_ascii_lowercase();
    match t.as_str() {
        "normal" | "master" | "pubsub" => Ok(t),
        "replica" | "slave" => Ok("replica".into()),
        _ => Err(errors::unknown_client_type(&String::from_utf8_lossy(a))),
    }
}

fn client_list<'a>(
    _c: &'a ClientRef,
    s: &'a Shards,
    argv: &'a [Bytes],
) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        let mut filter = ClientFilter::default();
        let mut i = 2;
        while i < argv.len() {
            if args::eq(&argv[i], "type") && i + 1 < argv.len() {
                match parse_type(&argv[i + 1]) {
                    Ok(t) => filter.kind = Some(t),
                    Err(e) => return e,
                }
                i += 2;
            } else if args::eq(&argv[i], "id") && i + 1 < argv.len() {
                let mut ids = Vec::new();
                for a in &argv[i + 1..] {
                    match args::int(a) {
                        Ok(v) if v > 0 => ids.push(v as u64),
                        _ => return Reply::err(errors::INVALID_CLIENT_ID),
                    }
                }
                filter.ids = Some(ids);
                i = argv.len();
            } else {
                return errors::syntax();
            }
        }
        let lines = s
            // Run on every core's thread: each sees its own clients.
            .all(move |_: &mut Shard| {
                let now = crate::clock::now_ms();
                clients::each(|all| {
                    all.filter_map(|c| {
                        c.try_borrow()
                            .ok()
                            .filter(|c| filter.matches(c))
                            .map(|c| (c.id, c.info_line(now)))
                    })
                    .collect::<Vec<_>>()
                })
            })
            .await;
        let mut all: Vec<(u64, String)> = lines.into_iter().flatten().collect();
        all.sort_by_key(|(id, _)| *id);
        let mut out = String::new();
        for (_, l) in all {
            out.push_str(&l);
            out.push('\n');
        }
        Reply::Verbatim("txt", Bytes::from(out))
    })
}

fn client_kill<'a>(
    c: &'a ClientRef,
    s: &'a Shards,
    argv: &'a [Bytes],
) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        let me = c.borrow().id;
        let mut filter = ClientFilter::default();
        let old_form = argv.len() == 3;
        if old_form {
            filter.addr = Some(String::from_utf8_lossy(&argv[2]).into_owned());
        } else {
            filter.skip = Some(me);
            let mut i = 2;
            while i < argv.len() {
                if i + 1 >= argv.len() {
                    return errors::syntax();
                }
                let (opt, val) = (&argv[i], &argv[i + 1]);
                if args::eq(opt, "id") {
                    match args::int(val) {
                        Ok(v) if v > 0 => filter.ids = Some(vec![v as u64]),
                        _ => return Reply::err(errors::CLIENT_ID_NOT_POSITIVE),
                    }
                } else if args::eq(opt, "type") {
                    match parse_type(val) {
                        Ok(t) => filter.kind = Some(t),
                        Err(e) => return e,
                    }
                } else if args::eq(opt, "addr") {
                    filter.addr = Some(String::from_utf8_lossy(val).into_owned());
                } else if args::eq(opt, "laddr") {
                    filter.laddr = Some(String::from_utf8_lossy(val).into_owned());
                } else if args::eq(opt, "user") {
                    // (Names are matched as ACL names are: case-sensitively.)
                    if crate::acl::registry().user(val).is_none() {
                        return errors::no_such_user(&String::from_utf8_lossy(val));
                    }
                    filter.user = Some(String::from_utf8_lossy(val).into_owned());
                } else if args::eq(opt, "skipme") {
                    if args::eq(val, "yes") {
                        filter.skip = Some(me);
                    } else if args::eq(val, "no") {
                        filter.skip = None;
                    } else {
                        return errors::syntax();
                    }
                } else {
                    // (MAXAGE is Redis 7.4's: 7.0 answers it with a syntax error.)
                    return errors::syntax();
                }
                i += 2;
            }
        }
        let killed = kill_where(c, s, move |cl| filter.matches(cl)).await;
        if old_form {
            if killed == 0 {
                return Reply::err(errors::NO_SUCH_CLIENT);
            }
            return Reply::ok();
        }
        Reply::Int(killed as i64)
    })
}

/// Close every connection `doomed` picks, on every core (each sees its own clients):
/// the others at once, the caller's own after its reply, as Redis replies and then
/// closes it (CLIENT KILL, a deleted ACL user). How many, the caller included.
pub async fn kill_where(
    c: &ClientRef,
    s: &Shards,
    doomed: impl Fn(&Client) -> bool + Send + Sync + 'static,
) -> u64 {
    let me = c.borrow().id;
    let doomed = std::sync::Arc::new(doomed);
    let shared = doomed.clone();
    let killed: u64 = s
        .all(move |_: &mut Shard| {
            let mut n = 0;
            clients::each(|all| {
                for client in all {
                    let Ok(mut cl) = client.try_borrow_mut() else {
                        continue;
                    };
                    if cl.id != me && shared(&cl) {
                        cl.killed = true;
                        shutdown_socket(cl.fd);
                        n += 1;
                    }
                }
            });
            n
        })
        .await
        .into_iter()
        .sum();
    let mut me_c = c.borrow_mut();
    if doomed(&me_c) {
        me_c.close_after_reply = true;
    }
    killed + me_c.close_after_reply as u64
}

/// Wake a connection blocked in a read so it notices it was killed.
pub fn shutdown_socket(fd: i32) {
    if fd >= 0 {
        // SAFETY: `fd` belongs to a connection still registered on this shard; the
        // connection removes itself from the registry before its socket is closed, and
        // both happen on this thread, so the descriptor cannot have been reused.
        // shutdown(2) only changes the socket's state; it touches no memory of ours.
        unsafe {
            libc::shutdown(fd, libc::SHUT_RDWR);
        }
    }
}

fn client_help(_c: &mut Client, _argv: &[Bytes]) -> Reply {
    help_reply(
        "CLIENT",
        &[
            "CACHING (YES|NO)",
            "    Enable/disable tracking of the keys for next command in OPTIN/OPTOUT modes.",
            "GETREDIR",
            "    Return the client ID we are redirecting to when tracking is enabled.",
            "GETNAME",
            "    Return the name of the current connection.",
            "ID",
            "    Return the ID of the current connection.",
            "INFO",
            "    Return information about the current client connection.",
            "KILL <ip:port>",
            "    Kill connection made from <ip:port>.",
            "KILL <option> <value> [<option> <value> [...]]",
            "    Kill connections. Options are:",
            "    * ADDR (<ip:port>|<unixsocket>:0)",
            "      Kill connections made from the specified address",
            "    * LADDR (<ip:port>|<unixsocket>:0)",
            "      Kill connections made to specified local address",
            "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
            "      Kill connections by type.",
            "    * USER <username>",
            "      Kill connections authenticated by <username>.",
            "    * SKIPME (YES|NO)",
            "      Skip killing current connection (default: yes).",
            "LIST [options ...]",
            "    Return information about client connections. Options:",
            "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
            "      Return clients of specified type.",
            "UNPAUSE",
            "    Stop the current client pause, resuming traffic.",
            "PAUSE <timeout> [WRITE|ALL]",
            "    Suspend all, or just write, clients for <timeout> milliseconds.",
            "REPLY (ON|OFF|SKIP)",
            "    Control the replies sent to the current connection.",
            "SETNAME <name>",
            "    Assign the name <name> to the current connection.",
            "UNBLOCK <clientid> [TIMEOUT|ERROR]",
            "    Unblock the specified blocked client.",
            "TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]]",
            "         [OPTIN] [OPTOUT] [NOLOOP]",
            "    Control server assisted client side caching.",
            "TRACKINGINFO",
            "    Report tracking status for the current connection.",
            "NO-EVICT (ON|OFF)",
            "    Protect current client connection from eviction.",
        ],
    )
}

/// A HELP reply as Redis's `addReplyHelp` builds it.
pub fn help_reply(container: &str, lines: &[&str]) -> Reply {
    let mut out = vec![Reply::Status(
        format!("{container} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:").into(),
    )];
    out.extend(lines.iter().map(|l| Reply::Status(l.to_string().into())));
    out.push(Reply::status("HELP"));
    out.push(Reply::status("    Prints this help."));
    Reply::Array(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::commands::testing::argv;

    #[test]
    fn select_and_names() {
        let mut c = Client::detached(1);
        assert_eq!(select(&mut c, &argv(&["select", "3"])), Reply::ok());
        assert_eq!(c.db, 3);
        assert_eq!(
            select(&mut c, &argv(&["select", "16"])),
            Reply::err(errors::DB_INDEX)
        );
        assert_eq!(
            select(&mut c, &argv(&["select", "x"])),
            errors::not_integer()
        );
        assert!(client_setname(&mut c, &argv(&["client", "setname", "a b"])).is_error());
        assert_eq!(
            client_setname(&mut c, &argv(&["client", "setname", "ab"])),
            Reply::ok()
        );
        assert_eq!(
            client_getname(&mut c, &argv(&["client", "getname"])),
            Reply::bulk_str("ab")
        );
        assert_eq!(reset(&mut c, &argv(&["reset"])), Reply::status("RESET"));
        assert_eq!(c.db, 0);
        assert_eq!(c.name, None);
    }

    #[test]
    fn reply_modes() {
        let mut c = Client::detached(1);
        assert_eq!(
            client_reply(&mut c, &argv(&["client", "reply", "skip"])),
            Reply::NoReply
        );
        assert_eq!(c.reply_mode, ReplyMode::SkipNext);
        assert_eq!(
            client_reply(&mut c, &argv(&["client", "reply", "x"])),
            errors::syntax()
        );
    }
}
