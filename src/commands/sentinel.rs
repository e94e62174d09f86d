//! Sentinel mode's commands: SENTINEL and its subcommands, and the Sentinel forms of
//! INFO, ROLE and PUBLISH. In sentinel mode the command table holds these and the
//! few plain commands redis-sentinel also serves ([`SERVED`]); in a data server none
//! of this family is reachable. The state they read and change is `crate::sentinel`'s;
//! replies and error texts are redis-sentinel 7.0's.

use super::{errors, Command, Exec, LocalBoxFuture};
use crate::client::ClientRef;
use crate::protocol::Reply;
use crate::runtime::Shards;
use crate::sentinel::instance::*;
use crate::sentinel::{self, config, event, failover, monitor, Level, State};
use crate::storage::glob::glob_match;
use bytes::Bytes;

const ADMIN: &str = "admin slow dangerous";

/// The data server's commands a Sentinel also serves, unchanged.
pub const SERVED: &[&str] = &[
    "acl",
    "auth",
    "client",
    "command",
    "hello",
    "ping",
    "psubscribe",
    "punsubscribe",
    "shutdown",
    "subscribe",
    "unsubscribe",
];

pub static COMMANDS: &[Command] = &[
    Command::new("sentinel", -2, "admin", ADMIN, Exec::Container).subcommands(SUBCOMMANDS),
    Command::new(
        "info",
        -1,
        "loading stale",
        "slow dangerous",
        Exec::Server(info),
    ),
    Command::new(
        "role",
        1,
        "noscript loading stale fast",
        "admin fast dangerous",
        Exec::Server(role),
    ),
    Command::new(
        "publish",
        3,
        "pubsub loading stale fast",
        "pubsub fast",
        Exec::Server(publish),
    ),
];

macro_rules! sub {
    ($name:literal, $arity:expr) => {
        Command::new(
            concat!("sentinel|", $name),
            $arity,
            "admin",
            ADMIN,
            Exec::Server(subcommand),
        )
    };
}

static SUBCOMMANDS: &[Command] = &[
    sub!("failover", 3),
    sub!("slaves", 3),
    sub!("masters", 2),
    sub!("config", -3),
    sub!("myid", 2),
    sub!("ckquorum", 3),
    sub!("flushconfig", 2),
    sub!("remove", 3),
    sub!("master", 3),
    sub!("monitor", 6),
    sub!("simulate-failure", -3),
    sub!("set", -5),
    sub!("debug", -2),
    sub!("reset", 3),
    sub!("pending-scripts", 2),
    sub!("replicas", 3),
    sub!("get-master-addr-by-name", 3),
    sub!("sentinels", 3),
    sub!("is-master-down-by-addr", 6),
    sub!("info-cache", -3),
    Command::new(
        "sentinel|help",
        2,
        "loading stale",
        "slow",
        Exec::Server(subcommand),
    ),
];

/// True if `c` is served in the current mode: in sentinel mode, this family and
/// [`SERVED`]; otherwise everything but this family.
pub fn serves(c: &Command) -> bool {
    let ours = COMMANDS.iter().any(|x| std::ptr::eq(x, c));
    if sentinel::enabled() {
        ours || SERVED.contains(&c.name)
    } else {
        !ours
    }
}

fn lower(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_ascii_lowercase()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn bulk(s: impl AsRef<str>) -> Reply {
    Reply::bulk_str(s.as_ref())
}

fn num(n: impl std::fmt::Display) -> Reply {
    Reply::bulk_str(&n.to_string())
}

const NO_SUCH_MASTER: &str = "ERR No such master with that name";

fn subcommand<'a>(
    _c: &'a ClientRef,
    s: &'a Shards,
    argv: &'a [Bytes],
) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        sentinel::with(s, |st| run(st, argv)).unwrap_or_else(|| Reply::err("ERR not a Sentinel"))
    })
}

/// One SENTINEL subcommand (Redis's `sentinelCommand`).
fn run(st: &mut State, argv: &[Bytes]) -> Reply {
    let now = crate::clock::now_ms();
    let sub = lower(&argv[1]);
    let name = argv.get(2).map(|a| text(a)).unwrap_or_default();
    match sub.as_str() {
        "help" => help(),
        "masters" => Reply::Array(
            st.masters
                .values()
                .map(|m| instance_reply(&st.g, &m.inst, Some(m), now))
                .collect(),
        ),
        "master" | "replicas" | "slaves" | "sentinels" => {
            let Some(m) = st.masters.get(&name) else {
                return Reply::err(NO_SUCH_MASTER);
            };
            let g = &st.g;
            match sub.as_str() {
                "master" => instance_reply(g, &m.inst, Some(m), now),
                "sentinels" => Reply::Array(
                    m.sentinels
                        .values()
                        .map(|i| instance_reply(g, i, None, now))
                        .collect(),
                ),
                _ => Reply::Array(
                    m.replicas
                        .values()
                        .map(|i| instance_reply(g, i, None, now))
                        .collect(),
                ),
            }
        }
        "myid" => bulk(&st.g.myid),
        "is-master-down-by-addr" => is_master_down(st, argv, now),
        "reset" => {
            let pattern = &argv[2];
            let State { g, masters, fx, .. } = st;
            let mut n = 0;
            for m in masters.values_mut() {
                if glob_match(pattern, m.name().as_bytes(), false) {
                    failover::reset_master(g, fx, m, false, true, now);
                    n += 1;
                }
            }
            if n > 0 {
                fx.flush_config = true;
            }
            Reply::Int(n)
        }
        "get-master-addr-by-name" => match st.masters.get(&name) {
            None => Reply::NullArray,
            Some(m) => {
                let a = m.current_addr();
                Reply::Array(vec![
                    bulk(a.announced(st.g.announce_hostnames)),
                    num(a.port),
                ])
            }
        },
        "failover" => {
            let State { g, masters, fx, .. } = st;
            let Some(m) = masters.get_mut(&name) else {
                return Reply::err(NO_SUCH_MASTER);
            };
            if m.inst.has(FAILOVER_IN_PROGRESS) {
                return Reply::err("INPROG Failover already in progress");
            }
            if failover::select_replica(g, m, now).is_none() {
                return Reply::err("NOGOODSLAVE No suitable replica to promote");
            }
            crate::log::warning(&format!("Executing user requested FAILOVER of '{name}'"));
            failover::start(g, fx, m, now);
            m.inst.flags |= FORCE_FAILOVER;
            Reply::ok()
        }
        "pending-scripts" => pending_scripts(st, now),
        "monitor" => monitor_command(st, argv, now),
        "flushconfig" => {
            st.fx.flush_config = true;
            Reply::ok()
        }
        "remove" => {
            let Some(m) = st.masters.get(&name) else {
                return Reply::err(NO_SUCH_MASTER);
            };
            event(&st.g, &mut st.fx, Level::Warning, "-monitor", m, None, "");
            st.masters.remove(&name);
            st.fx.flush_config = true;
            Reply::ok()
        }
        "ckquorum" => {
            let Some(m) = st.masters.get(&name) else {
                return Reply::err(NO_SUCH_MASTER);
            };
            ckquorum(m)
        }
        "set" => set(st, argv, now),
        "config" => match lower(&argv[2]).as_str() {
            "set" if argv.len() == 5 => config_set(st, &argv[3], &argv[4]),
            "get" if argv.len() == 4 => config_get(st, &argv[3]),
            _ => Reply::err(
                "ERR Only SENTINEL CONFIG GET <option> / SET <option> <value> are supported.",
            ),
        },
        "info-cache" => info_cache(st, &argv[2..], now),
        "simulate-failure" => {
            st.g.simfailure = 0;
            for a in &argv[2..] {
                match lower(a).as_str() {
                    "crash-after-election" => {
                        st.g.simfailure |= 1;
                        crate::log::warning("Failure simulation: this Sentinel will crash after being successfully elected as failover leader");
                    }
                    "crash-after-promotion" => {
                        st.g.simfailure |= 2;
                        crate::log::warning("Failure simulation: this Sentinel will crash after promoting the selected replica to master");
                    }
                    "help" => {
                        return Reply::Array(vec![
                            bulk("crash-after-election"),
                            bulk("crash-after-promotion"),
                        ])
                    }
                    _ => return Reply::err("ERR Unknown failure simulation specified"),
                }
            }
            Reply::ok()
        }
        "debug" => debug(st, &argv[2..]),
        _ => errors::unknown_subcommand("sentinel", &argv[1]),
    }
}

fn help() -> Reply {
    super::config::help_reply(
        "SENTINEL",
        &[
            "CKQUORUM <master-name>",
            "    Check if the current Sentinel configuration is able to reach the quorum",
            "    needed to failover a master and the majority needed to authorize the",
            "    failover.",
            "CONFIG SET <param> <value>",
            "    Set a global Sentinel configuration parameter.",
            "CONFIG GET <param>",
            "    Get global Sentinel configuration parameter.",
            "DEBUG [<param> <value> ...]",
            "    Show a list of configurable time parameters and their values (milliseconds).",
            "    Or update current configurable parameters values (one or more).",
            "GET-MASTER-ADDR-BY-NAME <master-name>",
            "    Return the ip and port number of the master with that name.",
            "FAILOVER <master-name>",
            "    Manually failover a master node without asking for agreement from other",
            "    Sentinels",
            "FLUSHCONFIG",
            "    Force Sentinel to rewrite its configuration on disk, including the current",
            "    Sentinel state.",
            "INFO-CACHE <master-name>",
            "    Return last cached INFO output from masters and all its replicas.",
            "IS-MASTER-DOWN-BY-ADDR <ip> <port> <current-epoch> <runid>",
            "    Check if the master specified by ip:port is down from current Sentinel's",
            "    point of view.",
            "MASTER <master-name>",
            "    Show the state and info of the specified master.",
            "MASTERS",
            "    Show a list of monitored masters and their state.",
            "MONITOR <name> <ip> <port> <quorum>",
            "    Start monitoring a new master with the specified name, ip, port and quorum.",
            "MYID",
            "    Return the ID of the Sentinel instance.",
            "PENDING-SCRIPTS",
            "    Get pending scripts information.",
            "REMOVE <master-name>",
            "    Remove master from Sentinel's monitor list.",
            "REPLICAS <master-name>",
            "    Show a list of replicas for this master and their state.",
            "RESET <pattern>",
            "    Reset masters for specific master name matching this pattern.",
            "SENTINELS <master-name>",
            "    Show a list of Sentinel instances for this master and their state.",
            "SET <master-name> <option> <value> [<option> <value> ...]",
            "    Set configuration parameters for certain masters.",
            "SIMULATE-FAILURE [CRASH-AFTER-ELECTION] [CRASH-AFTER-PROMOTION] [HELP]",
            "    Simulate a Sentinel crash.",
        ],
    )
}

/// An instance's state as SENTINEL MASTER / REPLICAS / SENTINELS show it (a map).
fn instance_reply(g: &sentinel::Globals, i: &Instance, m: Option<&Master>, now: u64) -> Reply {
    let ago = |t: u64| now.saturating_sub(t);
    let mut f: Vec<(&str, Reply)> = vec![
        ("name", bulk(&i.name)),
        ("ip", bulk(i.addr.announced(g.announce_hostnames))),
        ("port", num(i.addr.port)),
        ("runid", bulk(i.runid.as_deref().unwrap_or(""))),
        ("flags", bulk(flags(i))),
        ("link-pending-commands", num(i.link.pending_commands)),
        ("link-refcount", num(1)),
    ];
    if let Some(m) = m.filter(|m| m.inst.has(FAILOVER_IN_PROGRESS)) {
        f.push(("failover-state", bulk(m.failover_state.name())));
    }
    let act = i.link.act_ping_time;
    f.push(("last-ping-sent", num(if act != 0 { ago(act) } else { 0 })));
    f.push(("last-ok-ping-reply", num(ago(i.link.last_avail_time))));
    f.push(("last-ping-reply", num(ago(i.link.last_pong_time))));
    if i.has(S_DOWN) {
        f.push(("s-down-time", num(ago(i.s_down_since))));
    }
    if i.has(O_DOWN) {
        f.push(("o-down-time", num(ago(i.o_down_since))));
    }
    f.push(("down-after-milliseconds", num(i.down_after)));
    if i.kind != Kind::Sentinel {
        let refresh = if i.info_refresh != 0 {
            ago(i.info_refresh)
        } else {
            0
        };
        f.push(("info-refresh", num(refresh)));
        let role = if i.role_reported == Kind::Master {
            "master"
        } else {
            "slave"
        };
        f.push(("role-reported", bulk(role)));
        f.push(("role-reported-time", num(ago(i.role_reported_time))));
    }
    if let Some(m) = m {
        f.push(("config-epoch", num(m.config_epoch)));
        f.push(("num-slaves", num(m.replicas.len())));
        f.push(("num-other-sentinels", num(m.sentinels.len())));
        f.push(("quorum", num(m.quorum)));
        f.push(("failover-timeout", num(m.failover_timeout)));
        f.push(("parallel-syncs", num(m.parallel_syncs)));
        if let Some(s) = &m.notification_script {
            f.push(("notification-script", bulk(s)));
        }
        if let Some(s) = &m.client_reconfig_script {
            f.push(("client-reconfig-script", bulk(s)));
        }
    }
    if i.kind == Kind::Replica {
        f.push(("master-link-down-time", num(i.master_link_down_time)));
        let status = if i.slave_master_link_up { "ok" } else { "err" };
        f.push(("master-link-status", bulk(status)));
        f.push((
            "master-host",
            bulk(i.slave_master_host.as_deref().unwrap_or("?")),
        ));
        f.push(("master-port", num(i.slave_master_port)));
        f.push(("slave-priority", num(i.slave_priority)));
        f.push(("slave-repl-offset", num(i.slave_repl_offset)));
        f.push(("replica-announced", num(i.replica_announced)));
    }
    if i.kind == Kind::Sentinel {
        f.push(("last-hello-message", num(ago(i.last_hello_time))));
        f.push(("voted-leader", bulk(i.leader.as_deref().unwrap_or("?"))));
        f.push(("voted-leader-epoch", num(i.leader_epoch)));
    }
    Reply::Map(f.into_iter().map(|(k, v)| (bulk(k), v)).collect())
}

fn flags(i: &Instance) -> String {
    let mut out: Vec<&str> = Vec::new();
    let mut flag = |on: bool, name| {
        if on {
            out.push(name)
        }
    };
    flag(i.has(S_DOWN), "s_down");
    flag(i.has(O_DOWN), "o_down");
    flag(i.kind == Kind::Master, "master");
    flag(i.kind == Kind::Replica, "slave");
    flag(i.kind == Kind::Sentinel, "sentinel");
    flag(i.link.disconnected, "disconnected");
    flag(i.has(MASTER_DOWN), "master_down");
    flag(i.has(FAILOVER_IN_PROGRESS), "failover_in_progress");
    flag(i.has(PROMOTED), "promoted");
    flag(i.has(RECONF_SENT), "reconf_sent");
    flag(i.has(RECONF_INPROG), "reconf_inprog");
    flag(i.has(RECONF_DONE), "reconf_done");
    flag(i.has(FORCE_FAILOVER), "force_failover");
    flag(i.has(SCRIPT_KILL_SENT), "script_kill_sent");
    out.join(",")
}

const NOT_INTEGER: &str = "ERR value is not an integer or out of range";

/// SENTINEL IS-MASTER-DOWN-BY-ADDR ip port epoch runid: our view of the master, and
/// our vote when a run id asks for it.
fn is_master_down(st: &mut State, argv: &[Bytes], now: u64) -> Reply {
    let (Ok(port), Ok(epoch)) = (super::args::int(&argv[3]), super::args::int(&argv[4])) else {
        return Reply::err(NOT_INTEGER);
    };
    let ip = text(&argv[2]);
    let runid = text(&argv[5]);
    let State { g, masters, fx, .. } = st;
    let addr = u16::try_from(port)
        .ok()
        .and_then(|p| config::resolve(&ip, p, true));
    let m = addr.and_then(|a| masters.values_mut().find(|m| m.inst.addr.same(&a)));
    let (mut down, mut leader, mut leader_epoch) = (0, None, 0);
    if let Some(m) = m {
        if !g.tilt && m.inst.has(S_DOWN) {
            down = 1;
        }
        if runid != "*" {
            (leader, leader_epoch) = failover::vote_leader(g, fx, m, epoch as u64, &runid, now);
        }
    }
    Reply::Array(vec![
        Reply::Int(down),
        bulk(leader.as_deref().unwrap_or("*")),
        Reply::Int(leader_epoch as i64),
    ])
}

fn monitor_command(st: &mut State, argv: &[Bytes], now: u64) -> Reply {
    let Ok(quorum) = super::args::int(&argv[5]) else {
        return Reply::err("ERR Invalid quorum");
    };
    let Ok(port) = super::args::int(&argv[4]) else {
        return Reply::err("ERR Invalid port");
    };
    if quorum <= 0 {
        return Reply::err("ERR Quorum must be 1 or greater.");
    }
    let name = text(&argv[2]);
    let host = text(&argv[3]);
    let valid = host.parse::<std::net::IpAddr>().is_ok()
        || (st.g.resolve_hostnames && config::resolve(&host, 0, false).is_some());
    if !valid {
        return Reply::err("ERR Invalid IP address or hostname specified");
    }
    if let Err(e) = config::add_master(st, &name, &host, port, quorum as u32, now) {
        return Reply::error(format!("ERR {e}"));
    }
    st.fx.flush_config = true;
    let m = &st.masters[&name];
    let tail = format!(" quorum {}", m.quorum);
    event(
        &st.g,
        &mut st.fx,
        Level::Warning,
        "+monitor",
        m,
        None,
        &tail,
    );
    Reply::ok()
}

fn ckquorum(m: &Master) -> Reply {
    let voters = m.sentinels.len() + 1;
    let usable = 1 + m
        .sentinels
        .values()
        .filter(|s| s.flags & (S_DOWN | O_DOWN) == 0)
        .count();
    let no_quorum = usable < m.quorum as usize;
    let no_auth = usable < voters / 2 + 1;
    if !no_quorum && !no_auth {
        return Reply::Status(
            format!(
                "OK {usable} usable Sentinels. Quorum and failover authorization can be reached"
            )
            .into(),
        );
    }
    let mut e = format!("NOQUORUM {usable} usable Sentinels. ");
    if no_quorum {
        e.push_str("Not enough available Sentinels to reach the specified quorum for this master");
    }
    if no_auth {
        if no_quorum {
            e.push_str(". ");
        }
        e.push_str("Not enough available Sentinels to reach the majority and authorize a failover");
    }
    Reply::error(e)
}

/// SENTINEL SET name option value [option value ...].
fn set(st: &mut State, argv: &[Bytes], now: u64) -> Reply {
    let name = text(&argv[2]);
    let State { g, masters, fx, .. } = st;
    let Some(m) = masters.get_mut(&name) else {
        return Reply::err(NO_SUCH_MASTER);
    };
    let mut changes = 0;
    let mut j = 3;
    let result = loop {
        if j >= argv.len() {
            break Reply::ok();
        }
        let option = text(&argv[j]);
        let more = argv.len() - 1 - j;
        let value = argv.get(j + 1).map(|v| text(v)).unwrap_or_default();
        let positive = |v: &str| v.parse::<i64>().ok().filter(|n| *n > 0);
        let bad = |v: &str| {
            Reply::error(format!(
                "ERR Invalid argument '{v}' for SENTINEL SET '{option}'"
            ))
        };
        let denied = "ERR Reconfiguration of scripts path is denied for security reasons. Check the deny-scripts-reconfig configuration directive in your Sentinel configuration";
        let mut shown = vec![option.clone(), value.clone()];
        match option.to_ascii_lowercase().as_str() {
            "down-after-milliseconds" if more > 0 => match positive(&value) {
                Some(n) => m.set_down_after(n as u64),
                None => break bad(&value),
            },
            "failover-timeout" if more > 0 => match positive(&value) {
                Some(n) => m.failover_timeout = n as u64,
                None => break bad(&value),
            },
            "parallel-syncs" if more > 0 => match positive(&value) {
                Some(n) => m.parallel_syncs = n,
                None => break bad(&value),
            },
            "quorum" if more > 0 => match positive(&value) {
                Some(n) => m.quorum = n.min(u32::MAX as i64) as u32,
                None => break bad(&value),
            },
            "master-reboot-down-after-period" if more > 0 => {
                match value.parse::<i64>().ok().filter(|n| *n >= 0) {
                    Some(n) => m.master_reboot_down_after_period = n as u64,
                    None => break bad(&value),
                }
            }
            "notification-script" | "client-reconfig-script" if more > 0 => {
                if g.deny_scripts_reconfig {
                    break Reply::err(denied);
                }
                let notification = option.eq_ignore_ascii_case("notification-script");
                if !value.is_empty() && !sentinel::scripts::executable(&value) {
                    break Reply::err(if notification {
                        "ERR Notification script seems non existing or non executable"
                    } else {
                        "ERR Client reconfiguration script seems non existing or non executable"
                    });
                }
                let v = Some(value.clone()).filter(|v| !v.is_empty());
                if notification {
                    m.notification_script = v;
                } else {
                    m.client_reconfig_script = v;
                }
            }
            "auth-pass" | "auth-user" if more > 0 => {
                let v = Some(value.clone()).filter(|v| !v.is_empty());
                if option.eq_ignore_ascii_case("auth-pass") {
                    m.auth_pass = v;
                    shown[1] = "******".into();
                } else {
                    m.auth_user = v;
                }
                m.inst.close_links();
                for r in m.replicas.values_mut() {
                    r.close_links();
                }
            }
            "rename-command" if more > 1 => {
                let to = text(&argv[j + 2]);
                if value.is_empty() || to.is_empty() {
                    break bad(if to.is_empty() { &to } else { &value });
                }
                m.renamed_commands
                    .retain(|(from, _)| !from.eq_ignore_ascii_case(&value));
                if !value.eq_ignore_ascii_case(&to) {
                    m.renamed_commands.push((value.clone(), to.clone()));
                }
                shown.push(to);
                j += 1;
            }
            _ => {
                break Reply::error(format!(
                    "ERR Unknown option or number of arguments for SENTINEL SET '{option}'"
                ))
            }
        }
        j += 2;
        changes += 1;
        let tail = format!(" {}", shown.join(" "));
        event(g, fx, Level::Warning, "+set", m, None, &tail);
    };
    let _ = now;
    if changes > 0 {
        fx.flush_config = true;
    }
    result
}

fn config_set(st: &mut State, option: &[u8], value: &[u8]) -> Reply {
    let o = text(option);
    let v = text(value);
    let badfmt = || {
        Reply::error(format!(
            "ERR Invalid value '{v}' to SENTINEL CONFIG SET '{o}'"
        ))
    };
    let yes_no = |v: &str| match v.to_ascii_lowercase().as_str() {
        "yes" => Some(true),
        "no" => Some(false),
        _ => None,
    };
    let mut drop = false;
    match o.to_ascii_lowercase().as_str() {
        "resolve-hostnames" => match yes_no(&v) {
            Some(on) => config::set_resolve(st, on),
            None => return badfmt(),
        },
        "announce-hostnames" => match yes_no(&v) {
            Some(on) => st.g.announce_hostnames = on,
            None => return badfmt(),
        },
        "announce-ip" => st.g.announce_ip = v.clone(),
        "announce-port" => match v.parse::<i64>() {
            Ok(p) if (0..=65535).contains(&p) => st.g.announce_port = p as u16,
            _ => return badfmt(),
        },
        "sentinel-user" => {
            st.g.sentinel_user = v.clone();
            drop = true;
        }
        "sentinel-pass" => {
            st.g.sentinel_pass = v.clone();
            drop = true;
        }
        _ => return Reply::error(format!("ERR Invalid argument '{o}' to SENTINEL CONFIG SET")),
    }
    st.fx.flush_config = true;
    if drop {
        for m in st.masters.values_mut() {
            for s in m.sentinels.values_mut() {
                s.close_links();
            }
        }
    }
    Reply::ok()
}

fn config_get(st: &State, pattern: &[u8]) -> Reply {
    let g = &st.g;
    let yn = |b: bool| if b { "yes" } else { "no" };
    let all = [
        ("resolve-hostnames", bulk(yn(g.resolve_hostnames))),
        ("announce-hostnames", bulk(yn(g.announce_hostnames))),
        ("announce-ip", bulk(&g.announce_ip)),
        ("announce-port", num(g.announce_port)),
        ("sentinel-user", bulk(&g.sentinel_user)),
        ("sentinel-pass", bulk(&g.sentinel_pass)),
    ];
    Reply::Map(
        all.into_iter()
            .filter(|(k, _)| glob_match(pattern, k.as_bytes(), true))
            .map(|(k, v)| (bulk(k), v))
            .collect(),
    )
}

fn info_cache(st: &State, names: &[Bytes], now: u64) -> Reply {
    let mut out = Vec::new();
    let wanted: Vec<String> = names.iter().map(|n| text(n)).collect();
    let mut seen: Vec<&str> = Vec::new();
    for n in &wanted {
        let Some(m) = st.masters.get(n) else { continue };
        if seen.contains(&n.as_str()) {
            continue;
        }
        seen.push(n);
        let entry = |age: u64, info: &Option<String>| {
            Reply::Array(vec![
                Reply::Int(age as i64),
                info.as_ref().map(bulk).unwrap_or(Reply::Null),
            ])
        };
        let mut list = vec![entry(
            if m.inst.info_refresh != 0 {
                now - m.inst.info_refresh.min(now)
            } else {
                0
            },
            &m.inst.info,
        )];
        for r in m.replicas.values() {
            let age = if m.inst.info_refresh != 0 {
                now.saturating_sub(r.info_refresh)
            } else {
                0
            };
            list.push(entry(age, &r.info));
        }
        out.push(bulk(m.name()));
        out.push(Reply::Array(list));
    }
    Reply::Array(out)
}

fn pending_scripts(st: &State, now: u64) -> Reply {
    Reply::Array(
        st.scripts
            .jobs
            .iter()
            .map(|j| {
                let running = j.child.is_some();
                let mut f = vec![
                    (
                        bulk("argv"),
                        Reply::Array(j.argv.iter().map(bulk).collect()),
                    ),
                    (
                        bulk("flags"),
                        bulk(if running { "running" } else { "scheduled" }),
                    ),
                    (
                        bulk("pid"),
                        num(j.child.as_ref().map(|c| c.id()).unwrap_or(0)),
                    ),
                ];
                if running {
                    f.push((bulk("run-time"), num(now.saturating_sub(j.start_time))));
                } else {
                    f.push((bulk("run-delay"), num(j.start_time.saturating_sub(now))));
                }
                f.push((bulk("retry-num"), num(j.retry_num)));
                Reply::Map(f)
            })
            .collect(),
    )
}

/// SENTINEL DEBUG [param value ...]: show or change the timing parameters.
fn debug(st: &mut State, args: &[Bytes]) -> Reply {
    if args.is_empty() {
        let mut t = st.g.timing.clone();
        return Reply::Map(
            t.fields()
                .into_iter()
                .map(|(k, v)| (bulk(k.to_ascii_uppercase()), num(*v)))
                .collect(),
        );
    }
    let mut t = st.g.timing.clone();
    let mut j = 0;
    while j < args.len() {
        let option = text(&args[j]);
        let lower = option.to_ascii_lowercase();
        let mut fields = t.fields();
        let Some((_, field)) = fields
            .iter_mut()
            .find(|(k, _)| *k == lower)
            .filter(|_| j + 1 < args.len())
        else {
            return Reply::error(format!(
                "ERR Unknown option or number of arguments for SENTINEL DEBUG '{option}'"
            ));
        };
        let value = text(&args[j + 1]);
        match value.parse::<i64>() {
            Ok(n) if n > 0 => **field = n as u64,
            _ => {
                return Reply::error(format!(
                    "ERR Invalid argument '{value}' for SENTINEL DEBUG '{option}'"
                ))
            }
        }
        j += 2;
    }
    st.g.timing = t;
    Reply::ok()
}

/// INFO's `sentinel` section.
pub fn info_section() -> String {
    sentinel::read(|st| {
        let now = crate::clock::now_ms();
        let g = &st.g;
        let mut s = String::from("# Sentinel\r\n");
        s += &format!("sentinel_masters:{}\r\n", st.masters.len());
        s += &format!("sentinel_tilt:{}\r\n", i32::from(g.tilt));
        let since = if g.tilt {
            (now.saturating_sub(g.tilt_start) / 1000) as i64
        } else {
            -1
        };
        s += &format!("sentinel_tilt_since_seconds:{since}\r\n");
        s += &format!("sentinel_running_scripts:{}\r\n", st.scripts.running());
        s += &format!(
            "sentinel_scripts_queue_length:{}\r\n",
            st.scripts.jobs.len()
        );
        s += &format!("sentinel_simulate_failure_flags:{}\r\n", g.simfailure);
        for (n, m) in st.masters.values().enumerate() {
            let status = if m.inst.has(O_DOWN) {
                "odown"
            } else if m.inst.has(S_DOWN) {
                "sdown"
            } else {
                "ok"
            };
            s += &format!(
                "master{n}:name={},status={status},address={}:{},slaves={},sentinels={}\r\n",
                m.name(),
                m.inst.addr.announced(g.announce_hostnames),
                m.inst.addr.port,
                m.replicas.len(),
                m.sentinels.len() + 1
            );
        }
        s
    })
    .unwrap_or_default()
}

/// INFO in sentinel mode: the data server's INFO limited to the sections a Sentinel
/// has (`commands::info` knows them), with `sentinel` at the end.
fn info<'a>(c: &'a ClientRef, s: &'a Shards, argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    super::info::info(c, s, argv)
}

fn role<'a>(_c: &'a ClientRef, _s: &'a Shards, _argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        let names = sentinel::read(|st| st.masters.keys().map(bulk).collect()).unwrap_or_default();
        Reply::Array(vec![bulk("sentinel"), Reply::Array(names)])
    })
}

/// PUBLISH to a Sentinel: only hellos, which it reads as from an instance's channel.
fn publish<'a>(_c: &'a ClientRef, s: &'a Shards, argv: &'a [Bytes]) -> LocalBoxFuture<'a, Reply> {
    Box::pin(async move {
        if &argv[1][..] != sentinel::HELLO_CHANNEL.as_bytes() {
            return Reply::err("ERR Only HELLO messages are accepted by Sentinel instances.");
        }
        let msg = text(&argv[2]);
        sentinel::with(s, |st| {
            if !msg.contains(&st.g.myid) {
                monitor::process_hello(st, &msg, crate::clock::now_ms());
            }
        });
        Reply::Int(1)
    })
}
