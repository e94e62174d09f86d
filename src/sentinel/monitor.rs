//! Watching instances: the timer's tick, the periodic commands (PING, INFO, hellos),
//! what their replies teach (`INFO` parsing, hello messages), and the down states
//! (SDOWN per instance, ODOWN per master by asking the other Sentinels). Redis's
//! `sentinel.c` rules, in its order; failover itself is `failover`.

use super::failover;
use super::instance::*;
use super::link::{self, Target, Then, Who};
use super::{
    event, replica_event, Effects, Globals, Level, State, HELLO_CHANNEL, MAX_PENDING_COMMANDS,
};
use crate::protocol::Reply;
use bytes::Bytes;

/// What the rules for one instance need to know of its master.
pub struct View {
    pub name: String,
    pub addr: Addr,
    pub current: Addr,
    pub config_epoch: u64,
    pub auth: Option<(Option<String>, String)>,
    pub renames: Vec<(String, String)>,
    /// Replicas' INFO every second: the master is ODOWN or failing over.
    pub fast_info: bool,
}

impl View {
    pub fn of(m: &Master) -> View {
        View {
            name: m.name().to_string(),
            addr: m.inst.addr.clone(),
            current: m.current_addr().clone(),
            config_epoch: m.config_epoch,
            auth: m.auth_pass.clone().map(|p| (m.auth_user.clone(), p)),
            renames: m.renamed_commands.clone(),
            fast_info: m.inst.flags & (O_DOWN | FAILOVER_IN_PROGRESS) != 0,
        }
    }

    /// `words` as an argv, the command's name after `rename-command`.
    pub fn cmd(&self, words: &[&str]) -> Vec<Bytes> {
        let mut argv = link::argv(words);
        if let Some((_, to)) = self
            .renames
            .iter()
            .find(|(from, _)| from.eq_ignore_ascii_case(words[0]))
        {
            argv[0] = Bytes::copy_from_slice(to.as_bytes());
        }
        argv
    }
}

/// The instance of master `m` that `who` names.
pub fn instance<'a>(m: &'a mut Master, who: &Who) -> Option<&'a mut Instance> {
    match who {
        Who::Master => Some(&mut m.inst),
        Who::Replica(k) => m.replicas.get_mut(k),
        Who::Sentinel(k) => m.sentinels.get_mut(k),
    }
}

/// One run of the Sentinel timer (Redis's `sentinelTimer`).
pub fn tick(st: &mut State, now: u64) {
    check_tilt(&mut st.g, &mut st.fx, now);
    let State { g, masters, fx, .. } = st;
    let mut switch = None;
    for m in masters.values_mut() {
        handle(g, fx, m, &Who::Master, now);
        let replicas: Vec<String> = m.replicas.keys().cloned().collect();
        for k in replicas {
            handle(g, fx, m, &Who::Replica(k), now);
        }
        let sentinels: Vec<String> = m.sentinels.keys().cloned().collect();
        for k in sentinels {
            handle(g, fx, m, &Who::Sentinel(k), now);
        }
        if m.failover_state == FailoverState::UpdateConfig {
            switch = Some(m.name().to_string());
        }
    }
    if let Some(m) = switch.and_then(|n| masters.get_mut(&n)) {
        failover::switch_to_promoted(g, fx, m, now);
    }
}

/// A long pause between ticks (a stopped process, a clock jump) makes every timer
/// unreliable: TILT stops acting for `tilt-period`.
fn check_tilt(g: &mut Globals, fx: &mut Effects, now: u64) {
    let delta = now as i64 - g.previous_time as i64;
    if delta < 0 || delta as u64 > g.timing.tilt_trigger {
        g.tilt = true;
        g.tilt_start = now;
        fx.event(Level::Warning, "+tilt", "#tilt mode entered".into(), None);
    }
    g.previous_time = now;
}

fn handle(g: &mut Globals, fx: &mut Effects, m: &mut Master, who: &Who, now: u64) {
    let view = View::of(m);
    let target = Target {
        master: view.name.clone(),
        who: who.clone(),
    };
    {
        let Some(i) = instance(m, who) else { return };
        reconnect(g, fx, i, &view, target, now);
        periodic(g, i, &view, now);
    }
    if g.tilt {
        if now.saturating_sub(g.tilt_start) < g.timing.tilt_period {
            return;
        }
        g.tilt = false;
        fx.event(Level::Warning, "-tilt", "#tilt mode exited".into(), None);
    }
    check_sdown(g, fx, m, who, now);
    if *who == Who::Master {
        check_odown(g, fx, m, now);
        if failover::start_if_needed(g, fx, m, now) {
            ask_other_sentinels(g, m, true, now);
        }
        failover::state_machine(g, fx, m, now);
        ask_other_sentinels(g, m, false, now);
    }
}

/// `ip:port` to connect to (IPv6 bracketed).
fn connect_addr(a: &Addr) -> String {
    if a.ip.contains(':') {
        format!("[{}]:{}", a.ip, a.port)
    } else {
        format!("{}:{}", a.ip, a.port)
    }
}

/// Open the links of an instance that has none (Redis's `sentinelReconnectInstance`).
fn reconnect(
    g: &mut Globals,
    fx: &mut Effects,
    i: &mut Instance,
    view: &View,
    target: Target,
    now: u64,
) {
    if !i.link.disconnected || i.addr.port == 0 {
        return;
    }
    if now.saturating_sub(i.link.last_reconn_time) < g.timing.ping_period {
        return;
    }
    i.link.last_reconn_time = now;
    if g.resolve_hostnames {
        if let Some(a) = super::config::resolve(&i.addr.hostname, i.addr.port, true) {
            i.addr = a;
        }
    }
    let auth = match i.kind {
        Kind::Sentinel if !g.sentinel_pass.is_empty() => Some((
            Some(g.sentinel_user.clone()).filter(|u| !u.is_empty()),
            g.sentinel_pass.clone(),
        )),
        Kind::Sentinel => g.requirepass.clone().map(|p| (None, p)),
        _ => view.auth.clone(),
    };
    let hello = |conn: &link::Conn, kind: &str, pending: &mut i64| {
        if let Some((user, pass)) = &auth {
            let argv = match user {
                Some(u) => view.cmd(&["AUTH", u, pass]),
                None => view.cmd(&["AUTH", pass]),
            };
            conn.send(argv, Then::Discard);
            *pending += 1;
        }
        let name = format!("sentinel-{}-{kind}", &g.myid[..8.min(g.myid.len())]);
        conn.send(view.cmd(&["CLIENT", "SETNAME", &name]), Then::Discard);
        *pending += 1;
    };
    if i.link.cc.is_none() {
        g.next_link_id += 1;
        let (conn, c) = link::new(target.clone(), g.next_link_id, connect_addr(&i.addr), false);
        i.link.pending_commands = 0;
        i.link.cc_conn_time = now;
        i.link.local_ip = None;
        hello(&conn, "cmd", &mut i.link.pending_commands);
        i.link.cc = Some(conn);
        send_ping(i, view, now);
        fx.connect.push(c);
    }
    if i.kind != Kind::Sentinel && i.link.pc.is_none() {
        g.next_link_id += 1;
        let (conn, c) = link::new(target, g.next_link_id, connect_addr(&i.addr), true);
        i.link.pc_conn_time = now;
        i.link.pc_last_activity = now;
        let mut ignored = 0;
        hello(&conn, "pubsub", &mut ignored);
        conn.send(view.cmd(&["SUBSCRIBE", HELLO_CHANNEL]), Then::Discard);
        i.link.pc = Some(conn);
        fx.connect.push(c);
    }
    if i.link.cc.is_some() && (i.kind == Kind::Sentinel || i.link.pc.is_some()) {
        i.link.disconnected = false;
    }
}

pub(super) fn send(i: &mut Instance, argv: Vec<Bytes>, then: Then) -> bool {
    let Some(cc) = &i.link.cc else { return false };
    if cc.send(argv, then) {
        i.link.pending_commands += 1;
        true
    } else {
        false
    }
}

fn send_ping(i: &mut Instance, view: &View, now: u64) -> bool {
    if !send(i, view.cmd(&["PING"]), Then::Ping) {
        return false;
    }
    i.link.last_ping_time = now;
    if i.link.act_ping_time == 0 {
        i.link.act_ping_time = now;
    }
    true
}

/// PING, INFO and hello at their periods (Redis's `sentinelSendPeriodicCommands`).
fn periodic(g: &Globals, i: &mut Instance, view: &View, now: u64) {
    if i.link.disconnected || i.link.pending_commands >= MAX_PENDING_COMMANDS {
        return;
    }
    let t = &g.timing;
    let info_period = if i.kind == Kind::Replica && (view.fast_info || i.master_link_down_time != 0)
    {
        1000
    } else {
        t.info_period
    };
    let ping_period = i.down_after.min(t.ping_period);
    if i.kind != Kind::Sentinel
        && (i.info_refresh == 0 || now.saturating_sub(i.info_refresh) > info_period)
    {
        send(i, view.cmd(&["INFO"]), Then::Info);
    }
    if now.saturating_sub(i.link.last_pong_time) > ping_period
        && now.saturating_sub(i.link.last_ping_time) > ping_period / 2
    {
        send_ping(i, view, now);
    }
    if now.saturating_sub(i.last_pub_time) > t.publish_period {
        send_hello(g, i, view);
    }
}

/// Publish our hello to the instance: who we are, and what we think of its master.
fn send_hello(g: &Globals, i: &mut Instance, view: &View) -> bool {
    let ip = if !g.announce_ip.is_empty() {
        g.announce_ip.clone()
    } else {
        match &i.link.local_ip {
            Some(ip) => ip.clone(),
            None => return false,
        }
    };
    let port = if g.announce_port != 0 {
        g.announce_port
    } else {
        g.port
    };
    let payload = format!(
        "{ip},{port},{},{},{},{},{},{}",
        g.myid,
        g.current_epoch,
        view.name,
        view.current.announced(g.announce_hostnames),
        view.current.port,
        view.config_epoch
    );
    send(
        i,
        view.cmd(&["PUBLISH", HELLO_CHANNEL, &payload]),
        Then::Publish,
    )
}

/// Make the next tick send hellos to the master and all of its instances at once.
pub fn force_hello_update(m: &mut Master, publish_period: u64) {
    for i in std::iter::once(&mut m.inst)
        .chain(m.replicas.values_mut())
        .chain(m.sentinels.values_mut())
    {
        if i.last_pub_time > publish_period {
            i.last_pub_time -= publish_period + 1;
        }
    }
}

fn check_sdown(g: &Globals, fx: &mut Effects, m: &mut Master, who: &Who, now: u64) {
    let t = &g.timing;
    let reboot = (
        m.master_reboot_since_time,
        m.master_reboot_down_after_period,
    );
    let Some(i) = instance(m, who) else { return };
    let l = &mut i.link;
    let elapsed = if l.act_ping_time != 0 {
        now.saturating_sub(l.act_ping_time)
    } else if l.disconnected {
        now.saturating_sub(l.last_avail_time)
    } else {
        0
    };
    // A link that stopped answering PINGs is closed and opened again: the instance
    // may be fine and the connection stuck.
    if l.cc.is_some()
        && now.saturating_sub(l.cc_conn_time) > t.min_link_reconnect_period
        && l.act_ping_time != 0
        && now.saturating_sub(l.act_ping_time) > i.down_after / 2
        && now.saturating_sub(l.last_pong_time) > i.down_after / 2
    {
        l.cc = None;
        l.pending_commands = 0;
        l.disconnected = true;
    }
    if l.pc.is_some()
        && now.saturating_sub(l.pc_conn_time) > t.min_link_reconnect_period
        && now.saturating_sub(l.pc_last_activity) > t.publish_period.saturating_mul(3)
    {
        l.pc = None;
        l.disconnected = true;
    }
    let down = elapsed > i.down_after
        || (i.kind == Kind::Master
            && i.role_reported == Kind::Replica
            && now.saturating_sub(i.role_reported_time)
                > i.down_after.saturating_add(t.info_period.saturating_mul(2)))
        || (i.has(MASTER_REBOOT) && now.saturating_sub(reboot.0) > reboot.1);
    let changed = if down && !i.has(S_DOWN) {
        i.s_down_since = now;
        i.flags |= S_DOWN;
        Some("+sdown")
    } else if !down && i.has(S_DOWN) {
        i.flags &= !(S_DOWN | SCRIPT_KILL_SENT);
        Some("-sdown")
    } else {
        None
    };
    if let Some(kind) = changed {
        event(g, fx, Level::Warning, kind, m, shown(m, who), "");
    }
}

/// The instance an event names besides its master (none for the master itself).
fn shown<'a>(m: &'a Master, who: &Who) -> Option<&'a Instance> {
    if *who == Who::Master {
        None
    } else {
        instance_ref(m, who)
    }
}

fn instance_ref<'a>(m: &'a Master, who: &Who) -> Option<&'a Instance> {
    match who {
        Who::Master => Some(&m.inst),
        Who::Replica(k) => m.replicas.get(k),
        Who::Sentinel(k) => m.sentinels.get(k),
    }
}

fn check_odown(g: &Globals, fx: &mut Effects, m: &mut Master, now: u64) {
    let mut quorum = 0;
    let mut odown = false;
    if m.inst.has(S_DOWN) {
        quorum = 1 + m.sentinels.values().filter(|s| s.has(MASTER_DOWN)).count() as u32;
        odown = quorum >= m.quorum;
    }
    if odown && !m.inst.has(O_DOWN) {
        m.inst.flags |= O_DOWN;
        m.inst.o_down_since = now;
        let tail = format!(" #quorum {quorum}/{}", m.quorum);
        event(g, fx, Level::Warning, "+odown", m, None, &tail);
    } else if !odown && m.inst.has(O_DOWN) {
        m.inst.flags &= !O_DOWN;
        event(g, fx, Level::Warning, "-odown", m, None, "");
    }
}

/// Ask every other Sentinel whether it sees the master down (and, in a failover,
/// for its vote): `SENTINEL is-master-down-by-addr ip port epoch runid|*`.
pub fn ask_other_sentinels(g: &Globals, m: &mut Master, forced: bool, now: u64) {
    let view = View::of(m);
    let sdown = m.inst.has(S_DOWN);
    let runid = if m.failover_state > FailoverState::None {
        g.myid.clone()
    } else {
        "*".into()
    };
    let port = view.addr.port.to_string();
    let epoch = g.current_epoch.to_string();
    let ip = view.addr.announced(g.announce_hostnames).to_string();
    for s in m.sentinels.values_mut() {
        let elapsed = now.saturating_sub(s.last_master_down_reply_time);
        if elapsed > g.timing.ask_period.saturating_mul(5) {
            s.flags &= !MASTER_DOWN;
            s.leader = None;
        }
        if !sdown || s.link.disconnected {
            continue;
        }
        if !forced && elapsed < g.timing.ask_period {
            continue;
        }
        let argv = view.cmd(&[
            "SENTINEL",
            "is-master-down-by-addr",
            &ip,
            &port,
            &epoch,
            &runid,
        ]);
        send(s, argv, Then::IsMasterDown);
    }
}

/// A link is connected: remember our address on it. False if the instance no
/// longer wants this link.
pub fn link_up(st: &mut State, t: &Target, id: u64, pubsub: bool, ip: Option<String>) -> bool {
    let Some(i) = st
        .masters
        .get_mut(&t.master)
        .and_then(|m| instance(m, &t.who))
    else {
        return false;
    };
    let conn = if pubsub { &i.link.pc } else { &i.link.cc };
    if conn.as_ref().map(|c| c.id) != Some(id) {
        return false;
    }
    if !pubsub {
        i.link.local_ip = ip;
    }
    true
}

/// A link ended on its own (connection refused, closed by the instance).
pub fn link_closed(st: &mut State, t: &Target, id: u64, pubsub: bool, why: Option<String>) {
    let State { g, masters, fx, .. } = st;
    let Some(m) = masters.get_mut(&t.master) else {
        return;
    };
    let Some(i) = instance(m, &t.who) else { return };
    let conn = if pubsub {
        &mut i.link.pc
    } else {
        &mut i.link.cc
    };
    if conn.as_ref().map(|c| c.id) != Some(id) {
        return;
    }
    *conn = None;
    i.link.disconnected = true;
    if !pubsub {
        i.link.pending_commands = 0;
    }
    let kind = if pubsub {
        "-pubsub-link-reconnection"
    } else {
        "-cmd-link-reconnection"
    };
    let tail = format!(" #{}", why.unwrap_or_default());
    event(g, fx, Level::Debug, kind, m, shown(m, &t.who), &tail);
}

/// A reply arrived on a link (`then` is None on a Pub/Sub link). False if the
/// instance no longer wants this link.
pub fn on_reply(st: &mut State, t: &Target, id: u64, then: Option<Then>, r: Reply) -> bool {
    let now = crate::clock::now_ms();
    let Some(m) = st.masters.get_mut(&t.master) else {
        return false;
    };
    let Some(i) = instance(m, &t.who) else {
        return false;
    };
    let Some(then) = then else {
        if i.link.pc.as_ref().map(|c| c.id) != Some(id) {
            return false;
        }
        i.link.pc_last_activity = now;
        if let Reply::Array(parts) = &r {
            if let [Reply::Bulk(kind), Reply::Bulk(_), Reply::Bulk(msg)] = &parts[..] {
                let msg = String::from_utf8_lossy(msg).into_owned();
                if &kind[..] == b"message" && !msg.contains(&st.g.myid) {
                    process_hello(st, &msg, now);
                }
            }
        }
        return true;
    };
    if i.link.cc.as_ref().map(|c| c.id) != Some(id) {
        return false;
    }
    i.link.pending_commands -= 1;
    match then {
        Then::Discard => {}
        Then::Ping => {
            let text = link::text(&r).unwrap_or_default();
            if matches!(r, Reply::Status(_) | Reply::Error(_)) {
                if ["PONG", "LOADING", "MASTERDOWN"]
                    .iter()
                    .any(|p| text.starts_with(p))
                {
                    i.link.last_avail_time = now;
                    i.link.act_ping_time = 0;
                    if text.starts_with("PONG") {
                        i.flags &= !MASTER_REBOOT;
                    }
                } else if text.starts_with("BUSY") && i.has(S_DOWN) && !i.has(SCRIPT_KILL_SENT) {
                    let view = View::of(m);
                    let i = instance(m, &t.who).expect("looked up above");
                    send(i, view.cmd(&["SCRIPT", "KILL"]), Then::Discard);
                    i.flags |= SCRIPT_KILL_SENT;
                }
            }
            if let Some(i) = instance(m, &t.who) {
                i.link.last_pong_time = now;
            }
        }
        Then::Publish => {
            if !r.is_error() {
                i.last_pub_time = now;
            }
        }
        Then::Info => {
            if let Reply::Bulk(b) = &r {
                let info = String::from_utf8_lossy(b).into_owned();
                let State { g, masters, fx, .. } = st;
                if let Some(m) = masters.get_mut(&t.master) {
                    refresh_info(g, fx, m, &t.who, &info, now);
                }
            }
        }
        Then::IsMasterDown => {
            if let Reply::Array(parts) = &r {
                if let [Reply::Int(down), Reply::Bulk(leader), Reply::Int(epoch)] = &parts[..] {
                    i.last_master_down_reply_time = now;
                    if *down == 1 {
                        i.flags |= MASTER_DOWN;
                    } else {
                        i.flags &= !MASTER_DOWN;
                    }
                    if &leader[..] != b"*" {
                        let leader = String::from_utf8_lossy(leader).into_owned();
                        if i.leader_epoch as i64 != *epoch {
                            crate::log::warning(&format!("{} voted for {leader} {epoch}", i.name));
                        }
                        i.leader = Some(leader);
                        i.leader_epoch = *epoch as u64;
                    }
                }
            }
        }
    }
    true
}

/// What an INFO reply says that the Sentinel uses.
#[derive(Default)]
struct Info {
    runid: Option<String>,
    role: Option<Kind>,
    /// `slaveN:` lines: (ip, port).
    replicas: Vec<(String, u16)>,
    master_link_down_ms: u64,
    master_host: Option<String>,
    master_port: Option<u16>,
    link_up: Option<bool>,
    priority: Option<i64>,
    offset: Option<u64>,
    announced: Option<i64>,
}

fn parse_info(text: &str) -> Info {
    let mut p = Info::default();
    for l in text.split("\r\n") {
        if let Some(id) = l.strip_prefix("run_id:") {
            if id.len() >= 40 {
                p.runid = Some(id[..40].to_string());
            }
        }
        if let Some(rest) = l.strip_prefix("slave") {
            if rest.starts_with(|c: char| c.is_ascii_digit()) {
                if let Some(r) = replica_line(l) {
                    p.replicas.push(r);
                }
            }
        }
        if let Some(v) = l.strip_prefix("master_link_down_since_seconds:") {
            p.master_link_down_ms =
                (v.trim().parse::<i64>().unwrap_or(0).max(0) as u64).saturating_mul(1000);
        }
        if l.starts_with("role:master") {
            p.role = Some(Kind::Master);
        } else if l.starts_with("role:slave") {
            p.role = Some(Kind::Replica);
        }
        if p.role == Some(Kind::Replica) {
            if let Some(v) = l.strip_prefix("master_host:") {
                p.master_host = Some(v.to_string());
            }
            if let Some(v) = l.strip_prefix("master_port:") {
                p.master_port = Some(v.trim().parse().unwrap_or(0));
            }
            if let Some(v) = l.strip_prefix("master_link_status:") {
                p.link_up = Some(v.eq_ignore_ascii_case("up"));
            }
            if let Some(v) = l.strip_prefix("slave_priority:") {
                p.priority = Some(v.trim().parse().unwrap_or(0));
            }
            if let Some(v) = l.strip_prefix("slave_repl_offset:") {
                p.offset = Some(v.trim().parse().unwrap_or(0));
            }
            if let Some(v) = l.strip_prefix("replica_announced:") {
                p.announced = Some(v.trim().parse().unwrap_or(0));
            }
        }
    }
    p
}

/// A `slaveN:` line, new form (`ip=...,port=...`) or the old `ip,port,state`.
fn replica_line(l: &str) -> Option<(String, u16)> {
    let body = l.split_once(':')?.1;
    if let Some(ip_at) = body.find("ip=") {
        let ip = body[ip_at + 3..].split(',').next()?.to_string();
        let port_at = body.find("port=")?;
        let port = body[port_at + 5..].split(',').next()?.parse().ok()?;
        Some((ip, port))
    } else {
        let mut parts = body.split(',');
        let ip = parts.next()?.to_string();
        let port = parts.next()?.parse().ok()?;
        parts.next()?;
        Some((ip, port))
    }
}

/// Add a replica to the master's list unless it is there: `+slave`. True if added.
pub fn learn_replica(g: &Globals, fx: &mut Effects, m: &mut Master, addr: Addr, now: u64) -> bool {
    let key = addr.with_port(g.announce_hostnames);
    if m.replicas.contains_key(&key) {
        return false;
    }
    let r = Instance::new(Kind::Replica, key.clone(), addr, m.inst.down_after, now);
    m.replicas.insert(key.clone(), r);
    replica_event(g, fx, Level::Notice, "+slave", m, &key);
    true
}

/// Apply an INFO reply (Redis's `sentinelRefreshInstanceInfo`).
pub fn refresh_info(
    g: &mut Globals,
    fx: &mut Effects,
    m: &mut Master,
    who: &Who,
    text: &str,
    now: u64,
) {
    let p = parse_info(text);
    let reboot_period = m.master_reboot_down_after_period;
    let mut rebooted = false;
    let role_changed;
    {
        let Some(i) = instance(m, who) else { return };
        i.info = Some(text.to_string());
        i.master_link_down_time = p.master_link_down_ms;
        if let Some(id) = &p.runid {
            match &i.runid {
                None => i.runid = Some(id.clone()),
                Some(old) if old != id => {
                    rebooted = true;
                    i.runid = Some(id.clone());
                    if i.kind == Kind::Master && reboot_period != 0 {
                        i.flags |= MASTER_REBOOT;
                    }
                }
                _ => {}
            }
        }
        if p.role == Some(Kind::Replica) {
            if let Some(h) = &p.master_host {
                if i.slave_master_host
                    .as_deref()
                    .map(|x| !x.eq_ignore_ascii_case(h))
                    != Some(false)
                {
                    i.slave_master_host = Some(h.clone());
                    i.slave_conf_change_time = now;
                }
            }
            if let Some(port) = p.master_port {
                if i.slave_master_port != port {
                    i.slave_master_port = port;
                    i.slave_conf_change_time = now;
                }
            }
            if let Some(up) = p.link_up {
                i.slave_master_link_up = up;
            }
            if let Some(v) = p.priority {
                i.slave_priority = v;
            }
            if let Some(v) = p.offset {
                i.slave_repl_offset = v;
            }
            if let Some(v) = p.announced {
                i.replica_announced = v;
            }
        }
        i.info_refresh = now;
        let role = p.role.unwrap_or(Kind::Sentinel);
        role_changed = (role != i.role_reported).then_some(role);
        if let Some(role) = role_changed {
            i.role_reported_time = now;
            i.role_reported = role;
            if role == Kind::Replica {
                i.slave_conf_change_time = now;
            }
        }
    }
    if rebooted {
        if *who == Who::Master && reboot_period != 0 {
            m.master_reboot_since_time = now;
        }
        event(g, fx, Level::Notice, "+reboot", m, shown(m, who), "");
    }
    if *who == Who::Master {
        for (ip, port) in &p.replicas {
            let Some(addr) = super::config::resolve(ip, *port, false) else {
                continue;
            };
            if learn_replica(g, fx, m, addr, now) {
                fx.flush_config = true;
            }
        }
    }
    if let Some(role) = role_changed {
        let i = instance_ref(m, who).expect("updated above");
        let sign = if i.kind == role {
            "+role-change"
        } else {
            "-role-change"
        };
        let word = if role == Kind::Master {
            "master"
        } else {
            "slave"
        };
        let tail = format!(" new reported role is {word}");
        event(g, fx, Level::Verbose, sign, m, shown(m, who), &tail);
    }
    if g.tilt {
        return;
    }
    let Who::Replica(key) = who else { return };
    failover::after_replica_info(g, fx, m, key, p.role, now);
}

/// A hello from another Sentinel (through an instance's channel, or PUBLISH to us):
/// learn the Sentinel, the epoch, and a newer configuration of the master.
pub fn process_hello(st: &mut State, hello: &str, now: u64) {
    let tok: Vec<&str> = hello.split(',').collect();
    if tok.len() != 8 {
        return;
    }
    let State { g, masters, fx, .. } = st;
    let Some(m) = masters.get_mut(tok[4]) else {
        return;
    };
    let port: u16 = tok[1].parse().unwrap_or(0);
    let runid = tok[2];
    let current_epoch: u64 = tok[3].parse().unwrap_or(0);
    let master_port: u16 = tok[6].parse().unwrap_or(0);
    let config_epoch: u64 = tok[7].parse().unwrap_or(0);
    let known = m
        .sentinels
        .get(runid)
        .is_some_and(|s| s.addr.port == port && s.addr.is_host(tok[0]));
    if !known {
        // Same run id at another address: the Sentinel moved.
        let moved = m.sentinels.remove(runid).is_some();
        let mut removed = moved;
        if moved {
            let tail = format!(" ip {} port {port} for {runid}", tok[0]);
            event(
                g,
                fx,
                Level::Notice,
                "+sentinel-address-switch",
                m,
                None,
                &tail,
            );
        } else if let Some(other) = m
            .sentinels
            .values()
            .find(|s| s.addr.port == port && s.addr.is_host(tok[0]))
            .map(|s| s.name.clone())
        {
            // Another run id at this address: the old one is gone.
            event(
                g,
                fx,
                Level::Notice,
                "+sentinel-invalid-addr",
                m,
                m.sentinels.get(&other),
                "",
            );
            let obsolete = m.sentinels.get(&other).and_then(|s| s.runid.clone());
            for mm in masters.values_mut() {
                if let Some(id) = &obsolete {
                    mm.sentinels.retain(|_, s| s.runid.as_ref() != Some(id));
                }
            }
            removed = false;
        }
        let m = masters.get_mut(tok[4]).expect("looked up above");
        if let Some(addr) = super::config::resolve(tok[0], port, true) {
            let mut s = Instance::new(
                Kind::Sentinel,
                runid.to_string(),
                addr,
                m.inst.down_after,
                now,
            );
            s.runid = Some(runid.to_string());
            m.sentinels.insert(runid.to_string(), s);
            if !removed {
                event(
                    g,
                    fx,
                    Level::Notice,
                    "+sentinel",
                    m,
                    m.sentinels.get(runid),
                    "",
                );
            } else {
                // The same Sentinel, moved: update it under every master.
                let addr = m.sentinels[runid].addr.clone();
                for mm in masters.values_mut() {
                    if let Some(s) = mm.sentinels.get_mut(runid) {
                        if !s.addr.same(&addr) {
                            s.addr = addr.clone();
                            s.close_links();
                        }
                    }
                }
            }
            fx.flush_config = true;
        }
    }
    let Some(m) = masters.get_mut(tok[4]) else {
        return;
    };
    if current_epoch > g.current_epoch {
        g.current_epoch = current_epoch;
        fx.flush_config = true;
        let script = m.notification_script.as_ref();
        fx.event(
            Level::Warning,
            "+new-epoch",
            current_epoch.to_string(),
            script,
        );
    }
    let known_now = m.sentinels.contains_key(runid);
    if known_now && m.config_epoch < config_epoch {
        m.config_epoch = config_epoch;
        if master_port != m.inst.addr.port || !m.inst.addr.is_host(tok[5]) {
            event(
                g,
                fx,
                Level::Warning,
                "+config-update-from",
                m,
                m.sentinels.get(runid),
                "",
            );
            let old = m.inst.addr.clone();
            let msg = format!(
                "{} {} {} {} {}",
                m.name(),
                old.announced(g.announce_hostnames),
                old.port,
                tok[5],
                master_port
            );
            fx.event(
                Level::Warning,
                "+switch-master",
                msg,
                m.notification_script.as_ref(),
            );
            if failover::reset_and_change_address(g, fx, m, tok[5], master_port, now) {
                let to = m.inst.addr.clone();
                failover::reconfig_script(g, fx, m, "observer", &old, &to);
            }
        }
    }
    if let Some(s) = masters
        .get_mut(tok[4])
        .and_then(|m| m.sentinels.get_mut(runid))
    {
        s.last_hello_time = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_fields_of_a_master_and_a_replica() {
        let master = "# Server\r\nrun_id:0123456789012345678901234567890123456789\r\n\
            # Replication\r\nrole:master\r\nconnected_slaves:2\r\n\
            slave0:ip=10.0.0.2,port=6380,state=online,offset=5,lag=0\r\n\
            slave1:10.0.0.3,6381,online\r\n";
        let p = parse_info(master);
        assert_eq!(p.role, Some(Kind::Master));
        assert_eq!(
            p.runid.as_deref(),
            Some("0123456789012345678901234567890123456789")
        );
        assert_eq!(
            p.replicas,
            vec![
                ("10.0.0.2".to_string(), 6380),
                ("10.0.0.3".to_string(), 6381)
            ]
        );
        let replica = "role:slave\r\nmaster_host:10.0.0.1\r\nmaster_port:6379\r\n\
            master_link_status:down\r\nmaster_link_down_since_seconds:7\r\n\
            slave_repl_offset:42\r\nslave_priority:0\r\nreplica_announced:1\r\n";
        let p = parse_info(replica);
        assert_eq!(p.role, Some(Kind::Replica));
        assert_eq!(p.master_host.as_deref(), Some("10.0.0.1"));
        assert_eq!(p.master_port, Some(6379));
        assert_eq!(p.link_up, Some(false));
        assert_eq!(p.master_link_down_ms, 7000);
        assert_eq!(
            (p.offset, p.priority, p.announced),
            (Some(42), Some(0), Some(1))
        );
        // Garbage lines are skipped, never a panic.
        let p = parse_info("slave0:\r\nslave1:ip=x\r\nrun_id:short\r\nmaster_port:x\r\n");
        assert!(p.replicas.is_empty() && p.runid.is_none());
    }
}
