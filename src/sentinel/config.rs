//! The `sentinel ...` lines of sentinel.conf: reading them at start (with Redis's
//! error texts) and writing the Sentinel's state back as the same lines, so
//! redis-sentinel 7.0 and Shardis read each other's files.
//!
//! Reading follows Redis's order: the global lines first, then every `monitor`, then
//! the lines about a master (they name it, so it must exist). Writing replaces the
//! file's `sentinel` lines with the current state at the place of the first one and
//! keeps every other line as it was.

use super::instance::{Addr, Master};
use super::State;
use std::net::ToSocketAddrs;
use std::sync::atomic::{AtomicBool, Ordering};

static RESOLVE_HOSTNAMES: AtomicBool = AtomicBool::new(false);

fn set_resolve_hostnames(on: bool) {
    RESOLVE_HOSTNAMES.store(on, Ordering::Relaxed);
}

/// Turn `host` into an address. Without `resolve-hostnames` only IP addresses are
/// valid; with it, names are resolved, and `accept_unresolved` keeps a name that does
/// not resolve now (an instance that may come back).
pub fn resolve(host: &str, port: u16, accept_unresolved: bool) -> Option<Addr> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
        return Some(Addr {
            hostname: host.to_string(),
            ip: ip.to_string(),
            port,
        });
    }
    if !RESOLVE_HOSTNAMES.load(Ordering::Relaxed) {
        crate::log::warning(&format!("Failed to resolve hostname '{host}'"));
        return None;
    }
    match (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
    {
        Some(a) => Some(Addr {
            hostname: host.to_string(),
            ip: a.ip().to_string(),
            port,
        }),
        None => {
            crate::log::warning(&format!("Failed to resolve hostname '{host}'"));
            accept_unresolved.then(|| Addr {
                hostname: host.to_string(),
                ip: String::new(),
                port,
            })
        }
    }
}

fn yes_no(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "yes" => Some(true),
        "no" => Some(false),
        _ => None,
    }
}

/// C's `atoi`: the leading integer, 0 if none.
pub fn atoi(s: &str) -> i64 {
    let s = s.trim_start();
    let (sign, digits) = match s.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, s.strip_prefix('+').unwrap_or(s)),
    };
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    sign * digits[..end].parse::<i64>().unwrap_or(0)
}

/// Apply the configuration's `sentinel` lines: `(line number, line, argv after
/// "sentinel")`.
pub fn load(st: &mut State, lines: &[(usize, String, Vec<String>)]) -> Result<(), String> {
    let is_monitor = |a: &Vec<String>| a[0].eq_ignore_ascii_case("monitor");
    let names_master = |a: &Vec<String>| {
        !is_monitor(a)
            && !matches!(
                a[0].to_ascii_lowercase().as_str(),
                "current-epoch"
                    | "myid"
                    | "announce-ip"
                    | "announce-port"
                    | "deny-scripts-reconfig"
                    | "sentinel-user"
                    | "sentinel-pass"
                    | "resolve-hostnames"
                    | "announce-hostnames"
            )
    };
    type Pass<'a> = &'a dyn Fn(&Vec<String>) -> bool;
    let passes: [Pass; 3] = [
        &|a| !is_monitor(a) && !names_master(a),
        &is_monitor,
        &names_master,
    ];
    for pass in passes {
        for (no, line, argv) in lines.iter().filter(|(_, _, a)| !a.is_empty() && pass(a)) {
            apply(st, argv).map_err(|e| {
                format!("Reading the configuration file, at line {no}\n>>> '{line}'\n{e}")
            })?;
        }
    }
    Ok(())
}

fn master<'a>(st: &'a mut State, name: &str) -> Result<&'a mut Master, &'static str> {
    st.masters
        .get_mut(name)
        .ok_or("No such master with specified name.")
}

/// One `sentinel` directive (Redis's `sentinelHandleConfiguration`).
fn apply(st: &mut State, a: &[String]) -> Result<(), &'static str> {
    let now = crate::clock::now_ms();
    let name = a[0].to_ascii_lowercase();
    match (name.as_str(), a.len()) {
        ("monitor", 5) => {
            let quorum = atoi(&a[4]);
            if quorum <= 0 {
                return Err("Quorum must be 1 or greater.");
            }
            add_master(st, &a[1], &a[2], atoi(&a[3]), quorum as u32, now)?;
        }
        ("down-after-milliseconds", 3) => {
            let ms = atoi(&a[2]);
            let m = master(st, &a[1])?;
            if ms <= 0 {
                return Err("negative or zero time parameter.");
            }
            m.set_down_after(ms as u64);
        }
        ("failover-timeout", 3) => {
            let ms = atoi(&a[2]);
            let m = master(st, &a[1])?;
            if ms <= 0 {
                return Err("negative or zero time parameter.");
            }
            m.failover_timeout = ms as u64;
        }
        ("parallel-syncs", 3) => master(st, &a[1])?.parallel_syncs = atoi(&a[2]),
        ("notification-script", 3) => {
            let m = master(st, &a[1])?;
            if !super::scripts::executable(&a[2]) {
                return Err("Notification script seems non existing or non executable.");
            }
            m.notification_script = Some(a[2].clone());
        }
        ("client-reconfig-script", 3) => {
            let m = master(st, &a[1])?;
            if !super::scripts::executable(&a[2]) {
                return Err("Client reconfiguration script seems non existing or non executable.");
            }
            m.client_reconfig_script = Some(a[2].clone());
        }
        ("auth-pass", 3) => master(st, &a[1])?.auth_pass = Some(a[2].clone()),
        ("auth-user", 3) => master(st, &a[1])?.auth_user = Some(a[2].clone()),
        ("current-epoch", 2) => {
            let e = a[1].parse::<u64>().unwrap_or(0);
            st.g.current_epoch = st.g.current_epoch.max(e);
        }
        ("myid", 2) => {
            if a[1].len() != 40 {
                return Err("Malformed Sentinel id in myid option.");
            }
            st.g.myid = a[1].clone();
        }
        ("config-epoch", 3) => {
            let e = a[2].parse::<u64>().unwrap_or(0);
            master(st, &a[1])?.config_epoch = e;
            st.g.current_epoch = st.g.current_epoch.max(e);
        }
        ("leader-epoch", 3) => master(st, &a[1])?.leader_epoch = a[2].parse().unwrap_or(0),
        ("known-slave" | "known-replica", 4) => {
            let port = port_of(&a[3])?;
            let down_after = master(st, &a[1])?.inst.down_after;
            let addr = resolve(&a[2], port, true).ok_or("Can't resolve instance hostname.")?;
            let key = addr.with_port(st.g.announce_hostnames);
            let m = master(st, &a[1])?;
            if m.replicas.contains_key(&key) {
                return Err("Duplicate hostname and port for replica.");
            }
            let r = super::instance::Instance::new(
                super::instance::Kind::Replica,
                key.clone(),
                addr,
                down_after,
                now,
            );
            m.replicas.insert(key, r);
        }
        // The old form without a run id is ignored, as Redis ignores it.
        ("known-sentinel", 4) => {}
        ("known-sentinel", 5) => {
            let port = port_of(&a[3])?;
            let addr = resolve(&a[2], port, true).ok_or("Can't resolve instance hostname.")?;
            let m = master(st, &a[1])?;
            if m.sentinels.contains_key(&a[4]) {
                return Err("Duplicate runid for sentinel.");
            }
            let mut s = super::instance::Instance::new(
                super::instance::Kind::Sentinel,
                a[4].clone(),
                addr,
                m.inst.down_after,
                now,
            );
            s.runid = Some(a[4].clone());
            m.sentinels.insert(a[4].clone(), s);
        }
        ("rename-command", 4) => {
            let m = master(st, &a[1])?;
            if m.renamed_commands
                .iter()
                .any(|(from, _)| from.eq_ignore_ascii_case(&a[2]))
            {
                return Err("Same command renamed multiple times with rename-command.");
            }
            m.renamed_commands.push((a[2].clone(), a[3].clone()));
        }
        ("announce-ip", 2) => st.g.announce_ip = a[1].clone(),
        ("announce-port", 2) => st.g.announce_port = atoi(&a[1]).clamp(0, 65535) as u16,
        ("deny-scripts-reconfig", 2) => {
            st.g.deny_scripts_reconfig = yes_no(&a[1])
                .ok_or("Please specify yes or no for the deny-scripts-reconfig options.")?
        }
        ("sentinel-user", 2) => st.g.sentinel_user = a[1].clone(),
        ("sentinel-pass", 2) => st.g.sentinel_pass = a[1].clone(),
        ("resolve-hostnames", 2) => {
            let on = yes_no(&a[1])
                .ok_or("Please specify yes or no for the resolve-hostnames option.")?;
            st.g.resolve_hostnames = on;
            set_resolve_hostnames(on);
        }
        ("announce-hostnames", 2) => {
            st.g.announce_hostnames = yes_no(&a[1])
                .ok_or("Please specify yes or no for the announce-hostnames option.")?
        }
        ("master-reboot-down-after-period", 3) => {
            let ms = atoi(&a[2]);
            let m = master(st, &a[1])?;
            if ms < 0 {
                return Err("negative time parameter.");
            }
            m.master_reboot_down_after_period = ms as u64;
        }
        _ => return Err("Unrecognized sentinel configuration statement."),
    }
    Ok(())
}

fn port_of(s: &str) -> Result<u16, &'static str> {
    let p = atoi(s);
    if (0..=65535).contains(&p) {
        Ok(p as u16)
    } else {
        Err("Invalid port number.")
    }
}

/// Add a master to monitor (config `monitor` and SENTINEL MONITOR).
pub fn add_master(
    st: &mut State,
    name: &str,
    host: &str,
    port: i64,
    quorum: u32,
    now: u64,
) -> Result<(), &'static str> {
    if !(0..=65535).contains(&port) {
        return Err("Invalid port number.");
    }
    let addr = resolve(host, port as u16, true).ok_or("Can't resolve instance hostname.")?;
    if st.masters.contains_key(name) {
        return Err("Duplicate master name.");
    }
    let m = Master::new(name.to_string(), addr, quorum, &st.g.timing, now);
    st.masters.insert(name.to_string(), m);
    Ok(())
}

/// Change `resolve-hostnames` (SENTINEL CONFIG SET).
pub fn set_resolve(st: &mut State, on: bool) {
    st.g.resolve_hostnames = on;
    set_resolve_hostnames(on);
}

/// The `sentinel` lines that describe the current state (Redis's
/// `rewriteConfigSentinelOption`).
pub fn lines(st: &State) -> Vec<String> {
    let g = &st.g;
    let ah = g.announce_hostnames;
    let d = super::Timing::default();
    let mut out = vec![format!("sentinel myid {}", g.myid)];
    if !g.deny_scripts_reconfig {
        out.push("sentinel deny-scripts-reconfig no".into());
    }
    if g.resolve_hostnames {
        out.push("sentinel resolve-hostnames yes".into());
    }
    if g.announce_hostnames {
        out.push("sentinel announce-hostnames yes".into());
    }
    for m in st.masters.values() {
        let name = m.name();
        let cur = m.current_addr();
        out.push(format!(
            "sentinel monitor {name} {} {} {}",
            cur.announced(ah),
            cur.port,
            m.quorum
        ));
        if m.inst.down_after != d.default_down_after {
            out.push(format!(
                "sentinel down-after-milliseconds {name} {}",
                m.inst.down_after
            ));
        }
        if m.failover_timeout != d.default_failover_timeout {
            out.push(format!(
                "sentinel failover-timeout {name} {}",
                m.failover_timeout
            ));
        }
        if m.parallel_syncs != 1 {
            out.push(format!(
                "sentinel parallel-syncs {name} {}",
                m.parallel_syncs
            ));
        }
        if let Some(s) = &m.notification_script {
            out.push(format!("sentinel notification-script {name} {s}"));
        }
        if let Some(s) = &m.client_reconfig_script {
            out.push(format!("sentinel client-reconfig-script {name} {s}"));
        }
        if let Some(p) = &m.auth_pass {
            out.push(format!("sentinel auth-pass {name} {p}"));
        }
        if let Some(u) = &m.auth_user {
            out.push(format!("sentinel auth-user {name} {u}"));
        }
        if m.master_reboot_down_after_period != 0 {
            out.push(format!(
                "sentinel master-reboot-down-after-period {name} {}",
                m.master_reboot_down_after_period
            ));
        }
        out.push(format!("sentinel config-epoch {name} {}", m.config_epoch));
        out.push(format!("sentinel leader-epoch {name} {}", m.leader_epoch));
        for r in m.replicas.values() {
            // The promoted replica, mid-failover, is announced as the master: the old
            // master's address takes its place in the list.
            let a = if r.addr.same(cur) {
                &m.inst.addr
            } else {
                &r.addr
            };
            out.push(format!(
                "sentinel known-replica {name} {} {}",
                a.announced(ah),
                a.port
            ));
        }
        for s in m.sentinels.values() {
            if let Some(id) = &s.runid {
                out.push(format!(
                    "sentinel known-sentinel {name} {} {} {id}",
                    s.addr.announced(ah),
                    s.addr.port
                ));
            }
        }
        for (from, to) in &m.renamed_commands {
            out.push(format!("sentinel rename-command {name} {from} {to}"));
        }
    }
    out.push(format!("sentinel current-epoch {}", g.current_epoch));
    if !g.announce_ip.is_empty() {
        out.push(format!("sentinel announce-ip \"{}\"", g.announce_ip));
    }
    if g.announce_port != 0 {
        out.push(format!("sentinel announce-port {}", g.announce_port));
    }
    if !g.sentinel_user.is_empty() {
        out.push(format!("sentinel sentinel-user {}", g.sentinel_user));
    }
    if !g.sentinel_pass.is_empty() {
        out.push(format!("sentinel sentinel-pass {}", g.sentinel_pass));
    }
    out
}

/// The config file with its `sentinel` lines replaced by [`lines`]: (path, text).
pub fn render_file(st: &State) -> (String, String) {
    let path = st.g.config_file.clone();
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    (path, replace_sentinel_lines(&old, &lines(st), st.g.port))
}

fn replace_sentinel_lines(old: &str, new: &[String], port: u16) -> String {
    let first_word = |l: &str| {
        l.split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_lowercase()
    };
    let mut out: Vec<String> = Vec::new();
    let mut placed = false;
    let mut has_port = false;
    for l in old.lines() {
        let w = first_word(l);
        has_port |= w == "port";
        if w == "sentinel" {
            if !placed {
                out.extend(new.iter().cloned());
                placed = true;
            }
            continue;
        }
        out.push(l.to_string());
    }
    if !has_port && port != super::DEFAULT_PORT {
        out.insert(0, format!("port {port}"));
    }
    if !placed {
        out.extend(new.iter().cloned());
    }
    let mut text = out.join("\n");
    text.push('\n');
    text
}

/// Replace the file atomically.
pub fn write_file(path: &str, text: &str) -> std::io::Result<()> {
    crate::atomic_file::replace(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_lines_replace_in_place_and_others_stay() {
        let old = "# comment\nport 26390\nsentinel monitor m 127.0.0.1 6379 2\nlogfile \"\"\nsentinel down-after-milliseconds m 5000\n";
        let new = vec![
            "sentinel myid x".to_string(),
            "sentinel current-epoch 0".to_string(),
        ];
        let text = replace_sentinel_lines(old, &new, 26390);
        assert_eq!(
            text,
            "# comment\nport 26390\nsentinel myid x\nsentinel current-epoch 0\nlogfile \"\"\n"
        );
        let text = replace_sentinel_lines("", &new, 26390);
        assert_eq!(
            text,
            "port 26390\nsentinel myid x\nsentinel current-epoch 0\n"
        );
    }

    #[test]
    fn atoi_as_c() {
        assert_eq!(atoi("12abc"), 12);
        assert_eq!(atoi("-3"), -3);
        assert_eq!(atoi("x"), 0);
    }
}
