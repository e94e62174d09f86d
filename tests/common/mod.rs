//! Test harness: start the real `shardis` binary or a real `redis-server` on a free
//! loopback port, wait until it answers, and kill it when the handle drops.
//!
//! The one idea to hold: every process a test starts is owned by a [`Server`] value, so
//! it is killed and reaped by `Drop` on every path out of the test, panics included.
//! Server output goes to a log file (not a pipe, which could fill and stall the
//! server); a start-up failure panics with that log so the cause is on screen.
//!
//! [`RawConn`] speaks RESP over a plain `TcpStream` for the tests that need exact
//! bytes (protocol errors, inline commands, RESP3 type markers). [`key_slot`] and
//! [`shard_of`] compute where Shardis puts a key, so tests can choose keys on
//! different shards on purpose; [`Duo`] sends the same script of commands, over several
//! connections, to Shardis and to redis-server and compares every reply.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Which program a [`Server`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Shardis,
    Redis,
}

/// Send `req` on `s` and read one whole reply; `None` if the connection fails, closes
/// or times out first.
fn request(s: &mut TcpStream, req: &[u8]) -> Option<Frame> {
    s.write_all(req).ok()?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some((frame, _)) = parse_frame(&got) {
            return Some(frame);
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// `wait_ready`'s reason when another process answers on the port.
const ANOTHER_PROCESS: &str = "another process answers on this port";

thread_local! {
    /// Environment variables for the servers this thread starts (`Server::with_env`).
    static SERVER_ENV: std::cell::RefCell<Vec<(String, String)>> = const { std::cell::RefCell::new(Vec::new()) };
    /// Resource limits for the servers this thread starts (`Server::with_file_size_limit`,
    /// `Server::with_open_files_limit`).
    static SERVER_LIMITS: std::cell::Cell<Limits> = const { std::cell::Cell::new(Limits { fsize: 0, nofile: 0 }) };
    /// The `cgroup.procs` file the servers this thread starts join (`Server::in_cgroup`).
    static SERVER_CGROUP: std::cell::RefCell<Option<std::ffi::CString>> = const { std::cell::RefCell::new(None) };
}

/// Make `cmd`'s process join the cgroup whose `cgroup.procs` is `procs` before it runs
/// its program ("0" written there moves the writer, in cgroup v1 and v2).
fn join_cgroup(cmd: &mut Command, procs: std::ffi::CString) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec and calls only open,
    // write and close, all async-signal-safe, on a path it owns; it allocates nothing
    // (an `io::Error` from the OS error code holds just the code).
    unsafe {
        cmd.pre_exec(move || {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let written = libc::write(fd, b"0".as_ptr().cast(), 1);
            let err = std::io::Error::last_os_error();
            libc::close(fd);
            if written != 1 {
                return Err(err);
            }
            Ok(())
        });
    }
}

/// Resource limits for a server process (0: none).
#[derive(Clone, Copy)]
pub struct Limits {
    /// `RLIMIT_FSIZE` (soft; writes past it fail with `EFBIG`, `SIGXFSZ` ignored).
    pub fsize: u64,
    /// `RLIMIT_NOFILE` (soft and hard).
    pub nofile: u64,
}

impl Limits {
    /// Set these limits in `cmd`'s process before it runs its program.
    pub fn apply(self, cmd: &mut Command) {
        use std::os::unix::process::CommandExt;
        if self.fsize == 0 && self.nofile == 0 {
            return;
        }
        // (The hard file size limit stays: a test may raise the soft one again.)
        let fsize = libc::rlimit {
            rlim_cur: self.fsize,
            rlim_max: libc::RLIM_INFINITY,
        };
        let nofile = libc::rlimit {
            rlim_cur: self.nofile,
            rlim_max: self.nofile,
        };
        let set = |resource, limit: &libc::rlimit| {
            // SAFETY: setrlimit reads one `struct rlimit`, which `limit` points to.
            if unsafe { libc::setrlimit(resource, limit) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        };
        // SAFETY: the closure runs in the forked child before exec and calls only
        // setrlimit and signal, both async-signal-safe; it allocates nothing and
        // touches no lock (the limits are plain copies).
        unsafe {
            cmd.pre_exec(move || {
                if fsize.rlim_cur != 0 {
                    libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                    set(libc::RLIMIT_FSIZE, &fsize)?;
                }
                if nofile.rlim_cur != 0 {
                    set(libc::RLIMIT_NOFILE, &nofile)?;
                }
                Ok(())
            });
        }
    }
}

/// A running server process, killed and reaped on drop.
pub struct Server {
    pub kind: Kind,
    pub port: u16,
    child: Option<Child>,
    log: PathBuf,
    dir: PathBuf,
}

/// A port that was free a moment ago (bind port 0, read it, release it).
pub fn free_port() -> u16 {
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = l.local_addr().expect("local_addr").port();
        if !RESERVED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&port)
        {
            return port;
        }
    }
}

/// Ports `free_port` no longer hands out: those a crashed server comes back on.
static RESERVED: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());

/// Keep `free_port` from giving `port` to another test: a crashed server will bind it
/// again (a cluster node's bus port, say, read from its nodes.conf).
pub fn reserve_port(port: u16) {
    RESERVED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(port);
}

fn scratch_path(tag: &str, port: u16) -> PathBuf {
    std::env::temp_dir().join(format!(
        "shardis-test-{}-{}-{}",
        std::process::id(),
        tag,
        port
    ))
}

/// The scratch directory of a server on `fixed` (a restart: the directory its last
/// run left, if any), or a free port and a new, empty directory for it. The tests of
/// one binary share a process id, so a port is skipped while its directory exists: a
/// server that `crash`ed left its files there for its restart, and a new server given
/// that port would start from them (a cluster node from the dead one's nodes.conf).
fn scratch_dir(tag: &str, fixed: Option<u16>) -> (u16, PathBuf) {
    if let Some(port) = fixed {
        let d = scratch_path(tag, port);
        std::fs::create_dir_all(&d).expect("create scratch dir");
        return (port, d);
    }
    loop {
        let port = free_port();
        let other = if tag == "redis" { "shardis" } else { "redis" };
        if scratch_path(other, port).exists() {
            continue;
        }
        let d = scratch_path(tag, port);
        match std::fs::create_dir(&d) {
            Ok(()) => return (port, d),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("create scratch dir {}: {e}", d.display()),
        }
    }
}

impl Server {
    /// Shardis with `threads` shards and no persistence.
    pub fn shardis(threads: usize) -> Server {
        Server::shardis_with(threads, &[])
    }

    /// Shardis with `threads` shards, no persistence, and extra `--name value` flags.
    pub fn shardis_with(threads: usize, extra: &[&str]) -> Server {
        let threads = threads.to_string();
        let mut args = vec!["--threads", threads.as_str()];
        args.extend_from_slice(extra);
        Server::start(Kind::Shardis, None, &args)
    }

    /// Shardis with `threads` shards on the given port (no retry on another one).
    pub fn shardis_on_port(port: u16, threads: usize) -> Server {
        Server::shardis_on_port_with(port, threads, &[])
    }

    /// [`Server::shardis_on_port`] with extra flags. The same port means the same
    /// scratch directory, so a restart finds the files the last run left.
    pub fn shardis_on_port_with(port: u16, threads: usize, extra: &[&str]) -> Server {
        let threads = threads.to_string();
        let mut args = vec!["--threads", threads.as_str()];
        args.extend_from_slice(extra);
        Server::start_on(Kind::Shardis, Some(port), None, &args)
    }

    /// Shardis reading `config_file` first, then the harness's flags and `extra`.
    pub fn shardis_config(config_file: &str, extra: &[&str]) -> Server {
        Server::start(Kind::Shardis, Some(config_file), extra)
    }

    /// [`Server::shardis_config`] on the given port: a restart from the same file.
    pub fn shardis_config_on_port(port: u16, config_file: &str, extra: &[&str]) -> Server {
        Server::start_on(Kind::Shardis, Some(port), Some(config_file), extra)
    }

    /// A real redis-server with no persistence.
    pub fn redis() -> Server {
        Server::redis_with(&[])
    }

    pub fn redis_with(extra: &[&str]) -> Server {
        Server::start(Kind::Redis, None, extra)
    }

    /// A real redis-server reading `config_file` first, then the harness's flags and
    /// `extra`.
    pub fn redis_config(config_file: &str, extra: &[&str]) -> Server {
        Server::start(Kind::Redis, Some(config_file), extra)
    }

    /// `start` a server with these environment variables added (the test's thread
    /// only: other tests' servers do not see them).
    pub fn with_env<R>(vars: &[(&str, &str)], start: impl FnOnce() -> R) -> R {
        let owned = vars.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        SERVER_ENV.set(owned.collect());
        let r = start();
        SERVER_ENV.set(Vec::new());
        r
    }

    /// `start` a server that cannot write a file past `bytes` (`RLIMIT_FSIZE`, with
    /// `SIGXFSZ` ignored so the write fails with `EFBIG` instead of killing it): a
    /// disk that fills up, for one server, without privileges.
    pub fn with_file_size_limit<R>(bytes: u64, start: impl FnOnce() -> R) -> R {
        Server::with_limits(
            Limits {
                fsize: bytes,
                nofile: 0,
            },
            start,
        )
    }

    /// `start` a server that may open `n` descriptors at most (`ulimit -n`, soft and
    /// hard: it cannot raise it).
    pub fn with_open_files_limit<R>(n: u64, start: impl FnOnce() -> R) -> R {
        Server::with_limits(
            Limits {
                fsize: 0,
                nofile: n,
            },
            start,
        )
    }

    /// `start` a server inside the cgroup whose `cgroup.procs` file is `procs` (it
    /// joins it before it runs, so it starts under that group's limits).
    pub fn in_cgroup<R>(procs: &std::path::Path, start: impl FnOnce() -> R) -> R {
        use std::os::unix::ffi::OsStrExt;
        let path = std::ffi::CString::new(procs.as_os_str().as_bytes()).expect("a path");
        SERVER_CGROUP.set(Some(path));
        let r = start();
        SERVER_CGROUP.set(None);
        r
    }

    fn with_limits<R>(limits: Limits, start: impl FnOnce() -> R) -> R {
        SERVER_LIMITS.set(limits);
        let r = start();
        SERVER_LIMITS.set(Limits {
            fsize: 0,
            nofile: 0,
        });
        r
    }

    /// Lift the file size limit `with_file_size_limit` set: the disk has room again.
    pub fn lift_file_size_limit(&self) {
        let none = libc::rlimit {
            rlim_cur: libc::RLIM_INFINITY,
            rlim_max: libc::RLIM_INFINITY,
        };
        // SAFETY: prlimit reads one `struct rlimit` from `none`, which lives across the
        // call, and writes nothing (the old-limit pointer is null).
        let r = unsafe {
            libc::prlimit(
                self.pid() as libc::pid_t,
                libc::RLIMIT_FSIZE,
                &none,
                std::ptr::null_mut(),
            )
        };
        assert_eq!(r, 0, "prlimit: {}", std::io::Error::last_os_error());
    }

    fn start(kind: Kind, config_file: Option<&str>, extra: &[&str]) -> Server {
        Server::start_on(kind, None, config_file, extra)
    }

    fn start_on(
        kind: Kind,
        fixed: Option<u16>,
        config_file: Option<&str>,
        extra: &[&str],
    ) -> Server {
        // The port may be taken between probing and binding by a test running in
        // parallel; when the process dies at start-up, try again on another port.
        let mut last_log = String::new();
        for _attempt in 0..5 {
            let tag = match kind {
                Kind::Shardis => "shardis",
                Kind::Redis => "redis",
            };
            let (port, dir) = scratch_dir(tag, fixed);
            let log = dir.join("server.log");
            let out = std::fs::File::create(&log).expect("create server log");
            let err = out.try_clone().expect("clone log handle");
            let program = match kind {
                Kind::Shardis => env!("CARGO_BIN_EXE_shardis").to_string(),
                Kind::Redis => "redis-server".to_string(),
            };
            let mut cmd = Command::new(&program);
            if let Some(f) = config_file {
                cmd.arg(f);
            }
            cmd.arg("--port").arg(port.to_string());
            if kind == Kind::Redis {
                cmd.args(["--daemonize", "no"]);
            }
            cmd.args(["--save", "", "--appendonly", "no"]);
            // A Shardis master's full syncs start at once, as they did before it kept
            // `repl-diskless-sync-delay` (5 s by default); a test may ask for a delay.
            if kind == Kind::Shardis && !extra.contains(&"--sentinel") {
                cmd.args(["--repl-diskless-sync-delay", "0"]);
            }
            cmd.arg("--dir").arg(&dir);
            // SHARDIS_RUNTIME=epoll (or io_uring) runs the suite on that backend.
            if let (Kind::Shardis, Ok(rt)) = (kind, std::env::var("SHARDIS_RUNTIME")) {
                cmd.args(["--runtime", rt.as_str()]);
            }
            cmd.args(extra);
            SERVER_ENV.with_borrow(|vars| cmd.envs(vars.iter().map(|(k, v)| (k, v))));
            SERVER_LIMITS.get().apply(&mut cmd);
            if let Some(procs) = SERVER_CGROUP.with_borrow(|p| p.clone()) {
                join_cgroup(&mut cmd, procs);
            }
            cmd.stdin(Stdio::null()).stdout(out).stderr(err);
            let child = match cmd.spawn() {
                Ok(c) => c,
                Err(e) => panic!("cannot start {program}: {e} (is it installed and on PATH?)"),
            };
            let mut server = Server {
                kind,
                port,
                child: Some(child),
                log,
                dir,
            };
            match server.wait_ready(Duration::from_secs(10)) {
                Ok(()) => return server,
                Err(why) => {
                    last_log = server.log_text();
                    let exited = server.try_exit_status().is_some();
                    drop(server);
                    let taken = why == ANOTHER_PROCESS
                        || exited && last_log.contains("ddress already in use");
                    if taken && fixed.is_none() {
                        continue;
                    }
                    panic!(
                        "{kind:?} on port {port} did not answer PING within 10 s ({why}).\n\
                         args: {extra:?}\n--- server output ---\n{last_log}\n---------------------"
                    );
                }
            }
        }
        panic!("{kind:?} could not bind a free port in 5 attempts; last output:\n{last_log}");
    }

    /// Err if the process answering on our port is not ours: the port was free when
    /// probed, but another test's server took it first (ours then exits with "Address
    /// already in use", after a second of retries). Servers that do not say (INFO
    /// refused, as before AUTH) count as ours.
    fn check_process(&self, s: &mut TcpStream) -> Result<(), String> {
        let Some(pid) = self.child.as_ref().map(|c| c.id()) else {
            return Ok(());
        };
        if let Some(Frame::Bulk(text)) = request(s, b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n") {
            let text = String::from_utf8_lossy(&text);
            let ours = format!("process_id:{pid}\r\n");
            if text.contains("process_id:") && !text.contains(&ours) {
                return Err(ANOTHER_PROCESS.into());
            }
        }
        Ok(())
    }

    /// Poll until a PING gets any complete reply line but -LOADING (an error counts: the
    /// server is up and parsing), or the process exits, or the deadline passes.
    fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.try_exit_status() {
                return Err(format!("process exited with {st}"));
            }
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                match request(&mut s, b"*1\r\n$4\r\nPING\r\n") {
                    // Still loading (or attaching its AOF): not ready for writes.
                    Some(Frame::Error(e)) if e.starts_with("LOADING") => {}
                    Some(_) => return self.check_process(&mut s),
                    None => {}
                }
            }
            if Instant::now() >= deadline {
                return Err("timed out".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).expect("redis client")
    }

    /// A RESP2 connection through the `redis` crate.
    pub fn conn(&self) -> redis::Connection {
        self.client()
            .get_connection_with_timeout(Duration::from_secs(10))
            .unwrap_or_else(|e| {
                panic!(
                    "connect to {:?} at {}: {e}\n--- server output ---\n{}",
                    self.kind,
                    self.addr(),
                    self.log_text()
                )
            })
    }

    /// A raw TCP connection with a 10 s read timeout.
    pub fn raw(&self) -> RawConn {
        RawConn::connect(self.port)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The exit status if the process has ended.
    pub fn try_exit_status(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Wait up to `timeout` for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.try_exit_status() {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Server {
    /// SIGKILL the process, as a crash, and leave its directory for a restart on the
    /// same port (which owns and removes it then).
    /// The directory the server works in (its RDB file, its AOF).
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    pub fn crash(mut self) {
        reserve_port(self.port);
        if let Some(mut c) = self.child.take() {
            let _ = c.kill(); // SIGKILL
            let _ = c.wait();
        }
        self.dir = PathBuf::new();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if !self.dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A RESP reply as bytes on the wire say it, kept exact for comparisons.
#[derive(Clone, Debug, PartialEq)]
pub enum Frame {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    /// `$-1`
    NullBulk,
    /// `*-1`
    NullArray,
    Array(Vec<Frame>),
    /// RESP3 types, with their marker and raw payload where it is scalar.
    Null,
    Double(String),
    Bool(bool),
    BigNumber(String),
    Verbatim(Vec<u8>),
    Map(Vec<(Frame, Frame)>),
    /// An attribute (`|`), read as a frame of its own before the reply it annotates.
    Attribute(Vec<(Frame, Frame)>),
    Set(Vec<Frame>),
    Push(Vec<Frame>),
}

/// A minimal blocking RESP client over a plain socket.
pub struct RawConn {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl RawConn {
    pub fn connect(port: u16) -> RawConn {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("set_read_timeout");
        let _ = stream.set_nodelay(true);
        RawConn {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn from_stream(stream: TcpStream) -> RawConn {
        RawConn {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to server");
    }

    /// Send argv as a multibulk request.
    pub fn send_cmd(&mut self, argv: &[&[u8]]) {
        let req = encode_request(argv);
        self.send(&req);
    }

    /// Send argv and read one reply.
    pub fn cmd(&mut self, argv: &[&str]) -> Frame {
        let v: Vec<&[u8]> = argv.iter().map(|a| a.as_bytes()).collect();
        self.send_cmd(&v);
        self.read_frame()
    }

    fn fill(&mut self) -> usize {
        let mut tmp = [0u8; 16384];
        match self.stream.read(&mut tmp) {
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                n
            }
            Err(e) => panic!(
                "read from server failed: {e}; unparsed so far: {:?}",
                String::from_utf8_lossy(&self.buf)
            ),
        }
    }

    /// Read one whole reply; panics on EOF or timeout.
    pub fn read_frame(&mut self) -> Frame {
        loop {
            if let Some((f, used)) = parse_frame(&self.buf) {
                self.buf.drain(..used);
                return f;
            }
            if self.fill() == 0 {
                panic!(
                    "server closed the connection; unparsed bytes: {:?}",
                    String::from_utf8_lossy(&self.buf)
                );
            }
        }
    }

    /// Read everything until the server closes the connection (or 10 s pass).
    pub fn read_to_close(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.buf);
        let mut tmp = [0u8; 16384];
        loop {
            match self.stream.read(&mut tmp) {
                Ok(0) => return out,
                Ok(n) => out.extend_from_slice(&tmp[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return out,
                Err(e) => panic!(
                    "waiting for close: {e}; got so far {:?}",
                    String::from_utf8_lossy(&out)
                ),
            }
        }
    }

    /// True if the server has closed the connection (reads EOF within the timeout).
    pub fn is_closed(&mut self, timeout: Duration) -> bool {
        let _ = self.stream.set_read_timeout(Some(timeout));
        let mut tmp = [0u8; 64];
        let closed = match self.stream.read(&mut tmp) {
            Ok(0) => true,
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                false
            }
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        };
        let _ = self.stream.set_read_timeout(Some(Duration::from_secs(10)));
        closed
    }

    pub fn close(self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

pub fn encode_request(argv: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", argv.len()).into_bytes();
    for a in argv {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn line(buf: &[u8]) -> Option<(&[u8], usize)> {
    let i = buf.windows(2).position(|w| w == b"\r\n")?;
    Some((&buf[..i], i + 2))
}

fn parse_len(b: &[u8]) -> i64 {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad length in reply: {:?}", String::from_utf8_lossy(b)))
}

/// A status or error line as text, with every byte that is not valid UTF-8 written as
/// `\xNN` (not U+FFFD, which would make a raw byte and a replacement character look
/// the same, and hide a server that mangles the bytes it echoes in an error).
pub fn exact_text(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len());
    for chunk in b.utf8_chunks() {
        s.push_str(chunk.valid());
        for byte in chunk.invalid() {
            s.push_str(&format!("\\x{byte:02x}"));
        }
    }
    s
}

/// Parse one reply from the front of `buf`: `Some((frame, bytes used))` when complete.
pub fn parse_frame(buf: &[u8]) -> Option<(Frame, usize)> {
    let (&marker, _) = buf.split_first()?;
    let (body, mut used) = line(&buf[1..])?;
    used += 1;
    let text = || exact_text(body);
    let f = match marker {
        b'+' => Frame::Simple(text()),
        b'-' => Frame::Error(text()),
        b':' => Frame::Int(parse_len(body)),
        b'_' => Frame::Null,
        b',' => Frame::Double(text()),
        b'#' => Frame::Bool(body == b"t"),
        b'(' => Frame::BigNumber(text()),
        b'$' | b'=' => {
            let n = parse_len(body);
            if n < 0 {
                Frame::NullBulk
            } else {
                let n = n as usize;
                if buf.len() < used + n + 2 {
                    return None;
                }
                let data = buf[used..used + n].to_vec();
                used += n + 2;
                if marker == b'$' {
                    Frame::Bulk(data)
                } else {
                    Frame::Verbatim(data)
                }
            }
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let n = parse_len(body);
            if n < 0 {
                Frame::NullArray
            } else {
                let count = if matches!(marker, b'%' | b'|') {
                    n * 2
                } else {
                    n
                } as usize;
                let mut items = Vec::with_capacity(count.min(1024));
                for _ in 0..count {
                    let (f, u) = parse_frame(&buf[used..])?;
                    used += u;
                    items.push(f);
                }
                match marker {
                    b'*' => Frame::Array(items),
                    b'~' => Frame::Set(items),
                    b'>' => Frame::Push(items),
                    _ => {
                        let mut pairs = Vec::with_capacity(items.len() / 2);
                        let mut it = items.into_iter();
                        while let (Some(k), Some(v)) = (it.next(), it.next()) {
                            pairs.push((k, v));
                        }
                        if marker == b'|' {
                            Frame::Attribute(pairs)
                        } else {
                            Frame::Map(pairs)
                        }
                    }
                }
            }
        }
        other => panic!(
            "unexpected reply marker {:?} in {:?}",
            other as char,
            String::from_utf8_lossy(buf)
        ),
    };
    Some((f, used))
}

/// Quote one argument the way `redis-cli` would print it back.
pub fn cli_quote(a: &[u8]) -> String {
    let plain = !a.is_empty()
        && a.iter()
            .all(|&b| b.is_ascii_graphic() && b != b'"' && b != b'\'' && b != b'\\');
    if plain {
        return String::from_utf8_lossy(a).into_owned();
    }
    let mut s = String::from("\"");
    for &b in a {
        match b {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s.push('"');
    s
}

/// One request as a `redis-cli` line.
pub fn cli_line(argv: &[Vec<u8>]) -> String {
    argv.iter()
        .map(|a| cli_quote(a))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The value of `name=` in a CLIENT LIST / CLIENT INFO line.
pub fn client_field(line: &str, name: &str) -> String {
    line.split_whitespace()
        .find_map(|f| f.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name}= in {line}"))
        .to_string()
}

/// The core a Shardis connection landed on (CLIENT INFO `shard=`).
pub fn core_of(c: &mut RawConn) -> usize {
    let info = match c.cmd(&["CLIENT", "INFO"]) {
        Frame::Bulk(b) | Frame::Verbatim(b) => String::from_utf8_lossy(&b).into_owned(),
        other => panic!("CLIENT INFO: {}", show(&other)),
    };
    client_field(&info, "shard")
        .parse()
        .expect("shard= is a number")
}

/// A connection to Shardis that landed on `core`, opening new ones until the kernel's
/// SO_REUSEPORT spreading puts one there (for a few seconds at most).
pub fn conn_on(server: &Server, core: usize) -> RawConn {
    for _ in 0..500 {
        let mut c = server.raw();
        if core_of(&mut c) == core {
            return c;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("no connection landed on core {core} in 500 tries");
}

/// Every file under `dir`, read whole, joined (an AOF's parts, whatever the layout).
pub fn files_under(dir: &std::path::Path) -> Vec<u8> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else if let Ok(b) = std::fs::read(&p) {
            out.extend(b);
        }
    }
    out
}

/// Poll `f` every 50 ms until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A reply as one readable line: strings quoted the redis-cli way, types marked.
pub fn show(f: &Frame) -> String {
    match f {
        Frame::Simple(s) => format!("+{s}"),
        Frame::Error(e) => format!("-{e}"),
        Frame::Int(i) => format!(":{i}"),
        Frame::Bulk(b) => format!("${}", cli_quote_always(b)),
        Frame::NullBulk => "$-1 (nil)".into(),
        Frame::NullArray => "*-1 (nil)".into(),
        Frame::Null => "_ (null)".into(),
        Frame::Double(d) => format!(",{d}"),
        Frame::Bool(b) => format!("#{b}"),
        Frame::BigNumber(n) => format!("({n}"),
        Frame::Verbatim(v) => format!("={}", cli_quote_always(v)),
        Frame::Array(xs) => format!("*[{}]", xs.iter().map(show).collect::<Vec<_>>().join(", ")),
        Frame::Set(xs) => format!("~[{}]", xs.iter().map(show).collect::<Vec<_>>().join(", ")),
        Frame::Push(xs) => format!(">[{}]", xs.iter().map(show).collect::<Vec<_>>().join(", ")),
        Frame::Map(kv) | Frame::Attribute(kv) => format!(
            "{}{{{}}}",
            if matches!(f, Frame::Map(_)) { "%" } else { "|" },
            kv.iter()
                .map(|(k, v)| format!("{} => {}", show(k), show(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn cli_quote_always(b: &[u8]) -> String {
    let q = cli_quote(b);
    if q.starts_with('"') {
        q
    } else {
        format!("\"{q}\"")
    }
}

/// Redis's key slot: CRC16-XMODEM of the hash tag (the first non-empty `{...}`), mod 16384.
pub fn key_slot(key: &[u8]) -> u16 {
    let mut tagged = key;
    if let Some(open) = key.iter().position(|&c| c == b'{') {
        if let Some(len) = key[open + 1..].iter().position(|&c| c == b'}') {
            if len > 0 {
                tagged = &key[open + 1..open + 1 + len];
            }
        }
    }
    crc16::State::<crc16::XMODEM>::calculate(tagged) & 16383
}

/// The shard that owns `key` when Shardis runs `nshards` shards (contiguous slot ranges).
pub fn shard_of(key: &[u8], nshards: usize) -> usize {
    key_slot(key) as usize * nshards / 16384
}

/// `n` keys named `<prefix><i>`, the first `min(n, nshards)` of them on pairwise
/// different shards, the rest cycling through the shards again.
pub fn keys_on_distinct_shards(prefix: &str, n: usize, nshards: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(n);
    let mut i = 0u32;
    while out.len() < n {
        let want = out.len() % nshards;
        let k = format!("{prefix}{i}");
        if shard_of(k.as_bytes(), nshards) == want {
            out.push(k);
        }
        i += 1;
    }
    out
}

/// One step of a [`Duo`] script.
#[derive(Clone, Debug)]
pub enum Step {
    /// Send argv on connection `conn` and compare both servers' replies.
    Cmd(usize, Vec<String>),
    /// Send argv on connection `conn` but compare only that both replied (HELLO).
    Any(usize, Vec<String>),
    /// Sleep this many milliseconds (both servers at once).
    Sleep(u64),
    /// Close connection `conn` on both sides and open a fresh one in its place.
    Reconnect(usize),
}

/// `Step::Cmd` from a redis-cli-like line (arguments split on spaces).
pub fn on(conn: usize, line: &str) -> Step {
    Step::Cmd(conn, line.split_whitespace().map(str::to_string).collect())
}

/// Shardis and redis-server side by side, with `n` connections to each, for scripts
/// whose every reply must be the same on both.
pub struct Duo {
    pub shardis: Server,
    pub redis: Server,
    pub s: Vec<RawConn>,
    pub r: Vec<RawConn>,
    transcript: Vec<String>,
}

impl Duo {
    pub fn new(shardis: Server, conns: usize) -> Duo {
        Duo::pair(shardis, Server::redis(), conns)
    }

    /// A Duo of these two servers (started with the same options, say).
    pub fn pair(shardis: Server, redis: Server, conns: usize) -> Duo {
        let s = (0..conns).map(|_| shardis.raw()).collect();
        let r = (0..conns).map(|_| redis.raw()).collect();
        Duo {
            shardis,
            redis,
            s,
            r,
            transcript: Vec::new(),
        }
    }

    /// Run `steps` from the current state; panics on the first differing reply with
    /// the whole transcript of this Duo so far (`[conn] command -> reply`).
    pub fn run(&mut self, name: &str, steps: &[Step]) {
        self.transcript.push(format!("--- {name} ---"));
        for step in steps {
            match step {
                Step::Sleep(ms) => {
                    self.transcript.push(format!("(sleep {ms} ms)"));
                    std::thread::sleep(Duration::from_millis(*ms));
                }
                Step::Reconnect(c) => {
                    self.transcript.push(format!("[{c}] (reconnect)"));
                    let fresh_s = self.shardis.raw();
                    let fresh_r = self.redis.raw();
                    std::mem::replace(&mut self.s[*c], fresh_s).close();
                    std::mem::replace(&mut self.r[*c], fresh_r).close();
                }
                Step::Cmd(c, argv) | Step::Any(c, argv) => {
                    let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
                    let line = format!("[{c}] {}", argv.join(" "));
                    let r = self.r[*c].cmd(&refs);
                    let s = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        self.s[*c].cmd(&refs)
                    })) {
                        Ok(f) => f,
                        Err(_) => panic!(
                            "{name}: Shardis gave no reply to `{line}`\n--- transcript ---\n{}\n\
                             --- shardis output ---\n{}",
                            self.transcript.join("\n"),
                            self.shardis.log_text()
                        ),
                    };
                    let exact = matches!(step, Step::Cmd(..));
                    if exact && s != r {
                        panic!(
                            "{name}: replies differ at `{line}`\nshardis: {}\nredis:   {}\n\
                             --- transcript (redis's replies) ---\n{}\n{line}",
                            show(&s),
                            show(&r),
                            self.transcript.join("\n"),
                        );
                    }
                    self.transcript.push(format!("{line} -> {}", show(&r)));
                }
            }
        }
    }

    /// Everything sent so far with Redis's replies (print with `--nocapture` to review).
    pub fn transcript(&self) -> String {
        self.transcript.join("\n")
    }

    /// FLUSHALL on both and fresh connections, so the next script starts clean.
    pub fn reset(&mut self) {
        for c in 0..self.s.len() {
            self.run("reset", &[Step::Reconnect(c)]);
        }
        self.run("reset", &[on(0, "FLUSHALL")]);
    }
}

/// `blocked_clients` from INFO clients.
pub fn blocked_clients(c: &mut RawConn) -> usize {
    match c.cmd(&["INFO", "clients"]) {
        Frame::Bulk(b) | Frame::Verbatim(b) => String::from_utf8_lossy(&b)
            .lines()
            .find_map(|l| l.strip_prefix("blocked_clients:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0),
        other => panic!("INFO: {other:?}"),
    }
}

/// Wait until `n` clients are blocked (bounded: a hang fails).
pub fn await_blocked(c: &mut RawConn, n: usize) {
    assert!(
        wait_until(Duration::from_secs(10), || blocked_clients(c) == n),
        "expected {n} blocked clients, have {}",
        blocked_clients(c)
    );
}

/// A field of INFO (every section) from `c`, or an empty string if it has none.
pub fn info_field(c: &mut RawConn, name: &str) -> String {
    let text = match c.cmd(&["INFO", "everything"]) {
        Frame::Bulk(b) | Frame::Verbatim(b) => String::from_utf8_lossy(&b).into_owned(),
        other => panic!("INFO: {}", show(&other)),
    };
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or("")
        .trim()
        .to_string()
}

/// Make `replica` follow `master` (REPLICAOF) and wait until its link is up.
pub fn follow(replica: &Server, master: &Server) {
    let mut c = replica.raw();
    let port = master.port.to_string();
    let r = c.cmd(&["REPLICAOF", "127.0.0.1", &port]);
    assert!(matches!(r, Frame::Simple(_)), "REPLICAOF: {}", show(&r));
    let up = wait_until(Duration::from_secs(30), || {
        info_field(&mut c, "master_link_status") == "up"
    });
    assert!(up, "replica of {} never synced", master.port);
}

/// Wait until `replica` applied everything `master` sent (equal `master_repl_offset`)
/// and both hold the same data (`DEBUG DIGEST`, so both need `enable-debug-command`);
/// panics with both digests and offsets if they never agree.
pub fn assert_in_sync(master: &Server, replica: &Server) {
    let (mut m, mut r) = (master.raw(), replica.raw());
    let mut last = String::new();
    let same = wait_until(Duration::from_secs(60), || {
        let mo = info_field(&mut m, "master_repl_offset");
        let ro = info_field(&mut r, "master_repl_offset");
        let md = show(&m.cmd(&["DEBUG", "DIGEST"]));
        let rd = show(&r.cmd(&["DEBUG", "DIGEST"]));
        last = format!("master offset {mo} digest {md}, replica offset {ro} digest {rd}");
        mo == ro && md == rd
    });
    if !same {
        panic!(
            "replica never caught up: {last}\n{}",
            differences(&mut m, &mut r)
        );
    }
}

/// The keys whose type, value (DEBUG DIGEST-VALUE) or TTL differ between two servers,
/// one line each, for a failure report.
fn differences(a: &mut RawConn, b: &mut RawConn) -> String {
    let mut out = String::new();
    for db in 0..16 {
        let db = db.to_string();
        a.cmd(&["SELECT", &db]);
        b.cmd(&["SELECT", &db]);
        let keys = |c: &mut RawConn| match c.cmd(&["KEYS", "*"]) {
            Frame::Array(items) => items
                .into_iter()
                .map(|f| match f {
                    Frame::Bulk(k) => k,
                    other => panic!("KEYS: {}", show(&other)),
                })
                .collect::<std::collections::BTreeSet<_>>(),
            other => panic!("KEYS: {}", show(&other)),
        };
        let all: std::collections::BTreeSet<Vec<u8>> = keys(a).union(&keys(b)).cloned().collect();
        for k in all {
            let k = String::from_utf8_lossy(&k).into_owned();
            let probe = |c: &mut RawConn| {
                format!(
                    "{} {} ttl {}",
                    show(&c.cmd(&["TYPE", &k])),
                    show(&c.cmd(&["DEBUG", "DIGEST-VALUE", &k])),
                    show(&c.cmd(&["PTTL", &k]))
                )
            };
            let (x, y) = (probe(a), probe(b));
            if x != y {
                out += &format!("db {db} key {k:?}: master {x} / replica {y}\n");
            }
        }
    }
    out
}

/// A query on a fresh connection to `port` (authenticated with `password` if given),
/// or None while the node is down or refuses: for tests whose nodes come and go
/// (failovers kill normal clients).
pub fn query_port<T: redis::FromRedisValue>(
    port: u16,
    password: Option<&str>,
    args: &[&str],
) -> Option<T> {
    let url = match password {
        Some(p) => format!("redis://:{p}@127.0.0.1:{port}/"),
        None => format!("redis://127.0.0.1:{port}/"),
    };
    let mut c = redis::Client::open(url)
        .ok()?
        .get_connection_with_timeout(Duration::from_secs(2))
        .ok()?;
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(&mut c).ok()
}

/// Run `tests/clients/<script>` with python3 and redis-py 8.1.0 from the wheel kept
/// there (Python imports from it directly); its standard output. Panics with both
/// outputs if the script fails.
pub fn python_client(script: &str, args: &[String]) -> String {
    let out = python_command(script, args)
        .output()
        .expect("python3 runs (.ci/run installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{script}: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// The command that runs `script` of tests/clients with the redis-py wheel (to
/// spawn it and let it run beside the test).
pub fn python_command(script: &str, args: &[String]) -> Command {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients");
    let path = format!(
        "{}:{}",
        dir.join("redis-8.1.0-py3-none-any.whl").display(),
        dir.join("stub").display()
    );
    let mut cmd = Command::new("python3");
    cmd.arg("-s")
        .arg(dir.join(script))
        .args(args)
        .env("PYTHONPATH", path);
    cmd
}

/// A command's reply (or error) on a fresh connection to `port`, as text: for
/// comparing two servers' answers.
pub fn shown(port: u16, args: &[&str]) -> String {
    let mut c = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(2))
        .unwrap();
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    match cmd.query::<redis::Value>(&mut c) {
        Ok(v) => format!("{v:?}"),
        Err(e) => format!("ERR {:?} {}", e.code(), e.detail().unwrap_or("")),
    }
}
