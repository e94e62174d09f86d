//! Running under a supervisor, as Redis's `supervised` option (`no`, `upstart`,
//! `systemd`, `auto`).
//!
//! **systemd.** A unit with `Type=notify` (Debian's `redis-server.service`, which
//! passes `--supervised systemd`) counts the service as started only when the process
//! says `READY=1` on the datagram socket named by `NOTIFY_SOCKET`; without it systemd
//! kills the server when `TimeoutStartSec` runs out. We send Redis's messages at
//! Redis's moments: `STATUS=Redis is loading...` when supervision starts (which also
//! tells whether the socket answers), `STATUS=Ready to accept connections` (a replica:
//! `... in read-only mode. Waiting for MASTER <-> REPLICA sync`) and `READY=1` once
//! every core listens and the data set is loaded, `STOPPING=1` when a shutdown starts,
//! and the final save's status. The protocol is one datagram per message to that
//! path (a leading `@` names an abstract socket), what libsystemd's `sd_notify` does;
//! no library is needed for it.
//!
//! **upstart** (`expect stop`): the process stops itself (SIGSTOP) once set up and the
//! supervisor resumes it.
//!
//! `auto` picks upstart if `UPSTART_JOB` is set, else systemd if `NOTIFY_SOCKET` is.
//! INFO server's `process_supervised` says which one took (`no` when none did).
//!
//! **pidfile**: with `pidfile` set, the process id is written there at start and the
//! file removed at shutdown, as Redis does (init scripts and monitoring read it).
//!
//! **daemonize**: `daemonize yes` forks into the background when no supervisor took
//! (see [`daemonize`]), writing [`DEFAULT_PIDFILE`] when no `pidfile` is set.

use crate::log::{log, warning};
use std::sync::OnceLock;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    No,
    Upstart,
    Systemd,
}

static MODE: OnceLock<Mode> = OnceLock::new();

/// The supervision that took effect (set by [`start`]).
pub fn mode() -> Mode {
    MODE.get().copied().unwrap_or(Mode::No)
}

/// INFO server's `process_supervised`.
pub fn info_value() -> &'static str {
    match mode() {
        Mode::No => "no",
        Mode::Upstart => "upstart",
        Mode::Systemd => "systemd",
    }
}

/// Set up supervision as the `supervised` option says, at start (after the
/// configuration is read, before anything is loaded).
pub fn start(option: &str) {
    let wanted = match option {
        "upstart" => Mode::Upstart,
        "systemd" => Mode::Systemd,
        "auto" if std::env::var_os("UPSTART_JOB").is_some() => Mode::Upstart,
        "auto" if std::env::var_os("NOTIFY_SOCKET").is_some() => Mode::Systemd,
        _ => Mode::No,
    };
    let took = match wanted {
        Mode::Upstart => {
            if std::env::var_os("UPSTART_JOB").is_none() {
                warning("upstart supervision requested, but UPSTART_JOB not found!");
                Mode::No
            } else {
                log("supervised by upstart, will stop to signal readiness.");
                // SAFETY: raise() only sends a signal to this process; SIGSTOP cannot
                // be caught, so no handler of ours runs, and no memory is touched.
                unsafe { libc::raise(libc::SIGSTOP) };
                std::env::remove_var("UPSTART_JOB");
                Mode::Upstart
            }
        }
        Mode::Systemd => {
            if send_to_systemd("STATUS=Redis is loading...\n") {
                log(
                    "Supervised by systemd. Please make sure you set appropriate values for \
                     TimeoutStartSec and TimeoutStopSec in your service unit.",
                );
                Mode::Systemd
            } else {
                Mode::No
            }
        }
        Mode::No => Mode::No,
    };
    let _ = MODE.set(took);
}

/// `daemonize yes`, as Redis's `daemonize()`: fork, the parent exits with 0 at once,
/// and the child goes on as the server in a new session, its standard input, output
/// and error on /dev/null (so without a `logfile` it logs nowhere, as Redis). Only
/// before any thread starts (the child would have only this one), and not under a
/// supervisor, which expects the process it started to be the server (Redis:
/// `background = daemonize && !supervised`). Errors after it (a port in use...) reach
/// only the log file and the exit code nobody waits for, as with Redis.
pub fn daemonize() -> Result<(), String> {
    let threads = std::fs::read_dir("/proc/self/task").map_or(1, |d| d.count());
    if threads > 1 {
        return Err(format!("cannot daemonize: {threads} threads already run"));
    }
    // SAFETY: the process has one thread (checked above: nothing before this point in
    // `main` starts one), so the child is a whole copy of it, with no lock held by a
    // thread that does not exist there; `fork` itself touches no Rust state.
    match unsafe { libc::fork() } {
        -1 => return Err(format!("fork: {}", std::io::Error::last_os_error())),
        0 => {}
        _ => std::process::exit(0),
    }
    // SAFETY: setsid and open take no pointers but the NUL-terminated literal, which
    // lives across the call; dup2 and close act on descriptors this process owns (the
    // standard three, and `fd`, just opened).
    unsafe {
        libc::setsid();
        let fd = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR, 0);
        if fd != -1 {
            libc::dup2(fd, libc::STDIN_FILENO);
            libc::dup2(fd, libc::STDOUT_FILENO);
            libc::dup2(fd, libc::STDERR_FILENO);
            if fd > libc::STDERR_FILENO {
                libc::close(fd);
            }
        }
    }
    Ok(())
}

/// Redis's `CONFIG_DEFAULT_PID_FILE`: where a daemonized server with no `pidfile`
/// writes its process id.
pub const DEFAULT_PIDFILE: &str = "/var/run/redis.pid";

/// The `pidfile` written at start, to remove at shutdown.
static PIDFILE: OnceLock<std::path::PathBuf> = OnceLock::new();

/// Write the process id to `path` (the `pidfile` option); a failure is logged and the
/// server goes on, as Redis's `createPidFile`.
pub fn write_pidfile(path: &str) {
    if path.is_empty() {
        return;
    }
    match std::fs::write(path, format!("{}\n", std::process::id())) {
        Ok(()) => {
            let _ = PIDFILE.set(path.into());
        }
        Err(e) => warning(&format!(
            "Failed to write PID file: {}",
            crate::log::strerror(&e)
        )),
    }
}

/// At shutdown: remove the pid file written at start, if any.
pub fn remove_pidfile() {
    if let Some(path) = PIDFILE.get() {
        log("Removing the pid file.");
        let _ = std::fs::remove_file(path);
    }
}

/// Tell systemd the server is ready (`replica`: it still has to sync with its master).
pub fn ready(replica: bool) {
    if replica {
        notify(
            "STATUS=Ready to accept connections in read-only mode. Waiting for MASTER <-> \
             REPLICA sync\n",
        );
    } else {
        notify("STATUS=Ready to accept connections\n");
    }
    notify("READY=1\n");
}

/// Send `msg` to systemd if it supervises this process.
pub fn notify(msg: &str) {
    if mode() == Mode::Systemd {
        send_to_systemd(msg);
    }
}

/// One datagram to `NOTIFY_SOCKET`; false (logged as Redis does) if it could not go.
fn send_to_systemd(msg: &str) -> bool {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        warning("systemd supervision error: NOTIFY_SOCKET not found!");
        return false;
    };
    match send_datagram(&path, msg.as_bytes()) {
        Ok(()) => true,
        Err(e) => {
            warning(&format!(
                "systemd supervision error: sd_notify: {}",
                crate::log::strerror(&e)
            ));
            false
        }
    }
}

fn send_datagram(path: &std::ffi::OsStr, msg: &[u8]) -> std::io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let bytes = path.as_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name)?,
        None => SocketAddr::from_pathname(path)?,
    };
    let sock = UnixDatagram::unbound()?;
    sock.send_to_addr(msg, &addr)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_datagram_reaches_a_path_and_an_abstract_socket() {
        let dir = std::env::temp_dir().join(format!("shardis-notify-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let rx = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        send_datagram(path.as_os_str(), b"READY=1\n").unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\n");
        let _ = std::fs::remove_dir_all(&dir);

        use std::os::linux::net::SocketAddrExt;
        let name = format!("shardis-notify-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let rx = std::os::unix::net::UnixDatagram::bind_addr(&addr).unwrap();
        send_datagram(format!("@{name}").as_ref(), b"STOPPING=1\n").unwrap();
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1\n");
    }
}
