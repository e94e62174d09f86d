//! MONITOR: a line for every command any client runs, on whichever core, to every
//! monitoring connection (Redis's `replicationFeedMonitors`).
//!
//! **Zero cost when nobody monitors.** [`Monitors::active`] is one relaxed load of a
//! process-wide count; `dispatch` asks it once per command and does nothing else when
//! it is zero. Only when some connection monitors does it keep the command's arguments
//! (cheap `Bytes` clones) to [`Shown::feed`] them once the command has run.
//!
//! **Where monitors live.** As Pub/Sub's subscribers (see `pubsub`): each core keeps its
//! own monitoring connections in a thread-local list, with each one's [`Pushes`] queue,
//! which its connection task writes while waiting for input; MONITOR and RESET or a
//! disconnection never leave the core. Every core also publishes how many monitors it
//! has (in [`Monitors`], shared by all cores), so a line goes only to cores that have
//! one.
//!
//! **Delivery and order.** A line is built once, after its command ran (its database is
//! the client's then, as Redis's: `SELECT 3` shows `[3 ...]`). It is queued at once for
//! this core's monitors, and appended to this core's outbox for each other core that
//! has one; `dispatch` calls [`flush`] at the end of each read's batch, which sends one
//! control job per core with all that core's lines of the batch. Lines are fed in
//! request order, local ones at once and remote ones through FIFO inboxes, so every
//! monitor sees one client's commands in execution order. Lines of clients on
//! different cores have no order between them: a command another client sends once it
//! has a reply may be shown before the line that reply followed, if that line is still
//! in its core's job (Redis, one thread, shows them as they ran). The lines for the commands
//! EXEC ran are fed just before EXEC's own, and only if they ran (not after a WATCHed
//! key changed or a queuing error), each with the database it ran in.
//!
//! **Scripts.** A script's commands are shown as Redis shows them, `[<db> lua] ...`,
//! right after the line of the EVAL or FCALL that ran it (inside EXEC too). A script
//! may run on another core's thread, so its lines cannot be sent as they are made:
//! [`Shown::before`] marks the client (`Client::script_lines`), the script then
//! collects its commands' lines in a buffer it carries (`scripting::run`, only while
//! marked), the script command leaves them with the client as one block, and
//! [`Shown::feed`] sends each block after its command's line. A run abandoned to run
//! again holding every shard drops its lines (the second run shows them).
//!
//! **What is shown.** As Redis 7.0's `call()`: every command that was executed, even if
//! it answered an error, except those whose table entry is flagged `admin` or
//! `skip_monitor`; a command refused before it ran (unknown, wrong arity, NOAUTH...) is
//! not. Arguments a command's entry names as secrets ([`Command::redact`]: AUTH's, HELLO
//! AUTH's) are shown as `"(redacted)"`. A command that blocks is shown once, when it is
//! issued. The line is Redis's byte for byte: `+<secs>.<micros> [<db> <ip:port>]`, then
//! each argument quoted as `sdscatrepr` does, written as is in RESP2 and RESP3.
//!
//! **Output buffer limit.** A monitor is of the `normal` class, as in Redis 7.0 (it is
//! flagged as a replica there but classed as normal), so the normal class's
//! `client-output-buffer-limit` (none by default) applies to its queue, checked as each
//! line is queued (see `output`).

use crate::client::{ClientRef, Pushes};
use crate::commands::{traits, Command};
use crate::protocol::Reply;
use crate::runtime::Shards;
use bytes::{Bytes, BytesMut};
use std::cell::{Cell, RefCell};
use std::io::Write;
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::OnceLock;

/// How many connections monitor, in all and per core (see the module doc).
#[derive(Default)]
pub struct Monitors {
    count: AtomicUsize,
    cores: OnceLock<Box<[AtomicU32]>>,
}

impl Monitors {
    /// True while any connection monitors: the one check on the call path.
    #[inline]
    pub fn active(&self) -> bool {
        self.count.load(Ordering::Relaxed) > 0
    }
    fn cores(&self, n: usize) -> &[AtomicU32] {
        self.cores
            .get_or_init(|| (0..n).map(|_| AtomicU32::new(0)).collect())
    }
}

thread_local! {
    /// This core's monitoring connections: client id and queue, in MONITOR order.
    static LOCAL: RefCell<Vec<(u64, Rc<Pushes>)>> = const { RefCell::new(Vec::new()) };
    /// Lines for other cores' monitors, by core, until [`flush`].
    static OUTBOX: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
    static OUTBOX_USED: Cell<bool> = const { Cell::new(false) };
}

/// MONITOR: from now on every command's line is queued for `client`. Nothing is
/// answered to a client that already monitors (Redis ignores it).
pub fn start(client: &ClientRef, shards: &Shards) -> Reply {
    let mut c = client.borrow_mut();
    if c.monitor {
        return Reply::NoReply;
    }
    c.monitor = true;
    let pushes = c.push_queue();
    LOCAL.with_borrow_mut(|l| l.push((c.id, pushes)));
    let m = &shards.server.monitors;
    m.cores(shards.count())[shards.local_id].fetch_add(1, Ordering::Release);
    m.count.fetch_add(1, Ordering::Relaxed);
    Reply::ok()
}

/// End `client`'s monitoring, if it monitors (RESET, disconnection).
pub fn stop(client: &ClientRef, shards: &Shards) {
    let mut c = client.borrow_mut();
    if !std::mem::take(&mut c.monitor) {
        return;
    }
    let id = c.id;
    LOCAL.with_borrow_mut(|l| l.retain(|(m, _)| *m != id));
    let m = &shards.server.monitors;
    m.cores(shards.count())[shards.local_id].fetch_sub(1, Ordering::Release);
    m.count.fetch_sub(1, Ordering::Relaxed);
}

/// True if MONITOR shows `cmd` (Redis 7.0: not `admin` nor `skip_monitor` ones, but
/// the script commands, `skip_monitor` so that `call()` leaves them out, are fed by
/// their own handlers).
pub fn shows(cmd: &Command) -> bool {
    !cmd.has_flag(crate::commands::flag::ADMIN)
        && (runs_script(cmd) || !cmd.has_flag(crate::commands::flag::SKIP_MONITOR))
}

/// True for the commands that run a script, whose own line is followed by those of
/// the commands the script ran (`[<db> lua] ...`).
fn runs_script(cmd: &Command) -> bool {
    matches!(
        cmd.name,
        "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro"
    )
}

/// What is kept of a command about to run, to feed its line once it has run (taken
/// only while someone monitors).
pub struct Shown {
    cmd: &'static Command,
    argv: Vec<Bytes>,
    /// For EXEC: the queued commands and the database they start in.
    queued: Option<(usize, Vec<Vec<Bytes>>)>,
    /// For a script command: when it started (its line comes before its script's).
    started: Option<std::time::SystemTime>,
}

impl Shown {
    pub fn before(client: &ClientRef, cmd: &'static Command, argv: &[Bytes]) -> Shown {
        let mut c = client.borrow_mut();
        let queued = if cmd.has_trait(traits::ENDS_MULTI) {
            c.multi.clone().map(|q| (c.db, q))
        } else {
            None
        };
        let script = runs_script(cmd);
        let scripts_queued = queued.as_ref().is_some_and(|(_, q)| {
            q.iter()
                .any(|argv| crate::runtime::admission::resolve(argv).is_ok_and(runs_script))
        });
        if script || scripts_queued {
            // The scripts it runs keep their commands' lines here (`scripting::run`).
            c.script_lines = Some(Default::default());
        }
        Shown {
            cmd,
            argv: argv.to_vec(),
            queued,
            started: script.then(std::time::SystemTime::now),
        }
    }

    /// Feed the lines of the command that ran (`reply`: its reply, if it has one yet):
    /// for EXEC, first those of the commands it ran.
    /// Its scripts' commands follow each script command's line (Redis's scripts feed
    /// the monitors as they run, after their command's line).
    pub fn feed(self, client: &ClientRef, shards: &Shards, reply: Option<&Reply>) {
        let (from, mut blocks) = {
            let mut c = client.borrow_mut();
            (
                c.addr.monitor_form(),
                c.script_lines.take().unwrap_or_default(),
            )
        };
        let mut show = |db: usize, cmd: &Command, argv: &[Bytes], at| {
            if shows(cmd) {
                send(shards, line(db, &from, cmd, argv, at));
            }
            if runs_script(cmd) {
                if let Some(block) = blocks.pop_front().filter(|b| !b.is_empty()) {
                    send(shards, BytesMut::from(&block[..]));
                }
            }
        };
        if let (Some((mut db, queued)), Some(Reply::Array(replies))) = (self.queued, reply) {
            for (argv, r) in queued.iter().zip(replies) {
                let Ok(cmd) = crate::runtime::admission::resolve(argv) else {
                    continue;
                };
                if cmd.has_trait(traits::SELECTS_DB) && !r.is_error() {
                    if let Some(n) = crate::protocol::parse::parse_i64(&argv[1]) {
                        db = n as usize;
                    }
                }
                show(db, cmd, argv, None);
            }
        }
        let db = client.borrow().db;
        show(db, self.cmd, &self.argv, self.started);
    }
}

/// One line, as Redis's `replicationFeedMonitors` writes it, with the time `at`, or
/// now.
pub fn line(
    db: usize,
    from: &dyn std::fmt::Display,
    cmd: &Command,
    argv: &[Bytes],
    at: Option<std::time::SystemTime>,
) -> BytesMut {
    let now = at
        .unwrap_or_else(std::time::SystemTime::now)
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let argv = cmd.redacted(argv);
    let mut out = Vec::with_capacity(48 + argv.iter().map(|a| a.len() + 3).sum::<usize>());
    let _ = write!(
        out,
        "+{}.{:06} [{} {}]",
        now.as_secs(),
        now.subsec_micros(),
        db,
        from
    );
    for a in argv.iter() {
        out.push(b' ');
        repr(&mut out, a);
    }
    out.extend_from_slice(b"\r\n");
    BytesMut::from(&out[..])
}

/// `s` quoted as Redis's `sdscatrepr` does: `\"`, `\\`, `\n`, `\r`, `\t`, `\a`, `\b`,
/// other bytes outside printable ASCII as `\xhh`.
pub fn repr(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &b in s {
        match b {
            b'\\' | b'"' => out.extend_from_slice(&[b'\\', b]),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x07 => out.extend_from_slice(b"\\a"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x20..=0x7e => out.push(b),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out.push(b'"');
}

/// Queue a line for this core's monitors now, and for other cores' at [`flush`].
fn send(shards: &Shards, line: BytesMut) {
    deliver(&line);
    let cores = shards.server.monitors.cores(shards.count());
    for (id, n) in cores.iter().enumerate() {
        if id == shards.local_id || n.load(Ordering::Acquire) == 0 {
            continue;
        }
        OUTBOX.with_borrow_mut(|o| {
            if o.len() < cores.len() {
                o.resize_with(cores.len(), BytesMut::new);
            }
            o[id].extend_from_slice(&line);
        });
        OUTBOX_USED.set(true);
    }
}

/// Send the lines queued for other cores: one job per core (end of a read's batch).
pub fn flush(shards: &Shards) {
    if !OUTBOX_USED.replace(false) {
        return;
    }
    OUTBOX.with_borrow_mut(|o| {
        for (id, lines) in o.iter_mut().enumerate() {
            if lines.is_empty() {
                continue;
            }
            let lines = lines.split().freeze();
            // Nothing to wait for: the job's result is not needed.
            drop(shards.send_control(id, move |_| deliver(&lines)));
        }
    });
}

/// Queue lines for every monitor of this core.
fn deliver(lines: &[u8]) {
    LOCAL.with_borrow(|l| {
        for (_, p) in l {
            p.push(lines);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quoted(s: &[u8]) -> String {
        let mut out = Vec::new();
        repr(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn arguments_are_quoted_as_sdscatrepr_does() {
        assert_eq!(quoted(b"plain text"), r#""plain text""#);
        assert_eq!(
            quoted(b"a\"b\\c\n\r\t\x07\x08\x01\xff \xc3\xa9"),
            r#""a\"b\\c\n\r\t\a\b\x01\xff \xc3\xa9""#
        );
        assert_eq!(quoted(b""), r#""""#);
        assert_eq!(quoted(b"\x7f~ "), r#""\x7f~ ""#);
    }

    #[test]
    fn a_line_has_the_time_the_database_the_address_and_redacted_secrets() {
        let auth = crate::commands::lookup(b"auth").unwrap();
        let argv: Vec<Bytes> = ["AUTH", "user", "pass"]
            .iter()
            .map(|s| Bytes::from(*s))
            .collect();
        let from: std::net::SocketAddr = "127.0.0.1:5555".parse().unwrap();
        let l = line(3, &from, auth, &argv, None);
        let text = std::str::from_utf8(&l).unwrap();
        let (time, rest) = text[1..].split_once(' ').unwrap();
        let (secs, micros) = time.split_once('.').unwrap();
        assert!(secs.parse::<u64>().unwrap() > 1_600_000_000);
        assert_eq!(micros.len(), 6);
        assert_eq!(
            rest,
            "[3 127.0.0.1:5555] \"AUTH\" \"(redacted)\" \"(redacted)\"\r\n"
        );
    }
}
