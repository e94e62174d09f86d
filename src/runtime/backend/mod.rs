//! The runtime boundary: executors, tasks, timers and TCP sockets, on one of two
//! backends chosen at start (option `runtime`, flag `--runtime`).
//!
//! - `io_uring`: glommio's executor (io_uring for readiness and timers).
//! - `epoll`: our own executor on epoll ([`epoll`]), for the places that block
//!   io_uring: Docker since 25, containerd's default seccomp profile and so
//!   Kubernetes' RuntimeDefault, hosts with `kernel.io_uring_disabled`.
//! - `auto` (default): io_uring when a probe ring can be set up, else epoll, with one
//!   log line saying which runs and why.
//!
//! Both are thread-per-core with the same semantics: a task stays on the thread that
//! spawned it, wakers may fire from any thread (that is how hops answer), sockets are
//! readiness-based (a read is tried, and only a `WouldBlock` waits). Everything above
//! this module (connections, hops, cron, persistence's background tasks) uses only what
//! is here: [`spawn`], [`sleep`], [`yield_now`], [`TcpListener`], [`TcpStream`],
//! [`start`]. Which backend a thread runs is a thread-local set by [`start`].
//!
//! Listening sockets are made here for both backends, as Redis makes them:
//! SO_REUSEADDR (so a port freed by a stopped server whose connections linger in
//! TIME_WAIT can be bound at once), SO_REUSEPORT (one listener per core, the kernel
//! spreads connections; see `probe_exclusive` for why that alone is not enough),
//! backlog `tcp-backlog`.

pub mod epoll;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// Which event loop drives the cores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    IoUring,
    Epoll,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::IoUring => "io_uring",
            Kind::Epoll => "epoll",
        }
    }
}

thread_local! {
    static CURRENT: Cell<Option<Kind>> = const { Cell::new(None) };
}

/// The backend this core runs (INFO's `multiplexing_api`); io_uring outside a
/// shard's executor (a unit test).
pub fn running() -> Kind {
    CURRENT.get().unwrap_or(Kind::IoUring)
}

/// True on a shard's executor (false in a unit test driving a command by hand).
pub fn on_executor() -> bool {
    CURRENT.get().is_some()
}

fn current() -> Kind {
    CURRENT
        .get()
        .expect("runtime call outside a shard's executor")
}

/// Pick the backend for the `runtime` option's value; the reason goes to the log.
pub fn choose(option: &str) -> Result<(Kind, String), String> {
    match option {
        "epoll" => Ok((Kind::Epoll, "runtime epoll".into())),
        "io_uring" => match probe_io_uring() {
            Ok(()) => Ok((Kind::IoUring, "runtime io_uring".into())),
            Err(e) => Err(format!(
                "{e} (runtime io_uring was asked for; `runtime epoll` or `runtime auto` runs without it)"
            )),
        },
        _ => match probe_io_uring() {
            Ok(()) => Ok((Kind::IoUring, "runtime auto, io_uring available".into())),
            Err(e) => Ok((Kind::Epoll, format!("runtime auto, {e}"))),
        },
    }
}

/// Check that io_uring can be used here; on failure, what blocks it and how to allow it.
pub fn probe_io_uring() -> Result<(), String> {
    let memlock = memlock_limit();
    if memlock < MIN_MEMLOCK {
        return Err(format!(
            "io_uring cannot be used: the locked-memory limit is {} KiB and glommio needs at \
             least {} KiB per process for its rings. To use it: `ulimit -l unlimited` (or \
             LimitMEMLOCK=infinity in the systemd unit, --ulimit memlock=-1:-1 for docker)",
            memlock / 1024,
            MIN_MEMLOCK / 1024
        ));
    }
    // io_uring_setup(entries, params): a tiny ring, closed again at once.
    let mut params = [0u8; 120];
    // SAFETY: io_uring_setup reads and writes exactly one `struct io_uring_params`
    // (120 bytes on every kernel that has the call) at the pointer we pass, which points
    // to a live 120-byte buffer for the duration of the call.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 4u32, params.as_mut_ptr()) };
    if fd >= 0 {
        // SAFETY: fd is a descriptor the kernel just returned to us and nothing else owns.
        unsafe { libc::close(fd as i32) };
        return Ok(());
    }
    let err = io::Error::last_os_error();
    let disabled =
        std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled").unwrap_or_default();
    Err(format!(
        "io_uring is unavailable ({err}). To use it: \
         the kernel sysctl kernel.io_uring_disabled (now {}) must be 0 (`sysctl -w kernel.io_uring_disabled=0`); \
         a container's seccomp profile must allow io_uring_setup, io_uring_enter and io_uring_register \
         (docker: --security-opt seccomp=<profile allowing them> or seccomp=unconfined); \
         the memlock limit must allow the rings (ulimit -l unlimited, systemd LimitMEMLOCK=infinity); \
         the kernel must be 5.8 or newer",
        disabled.trim()
    ))
}

/// glommio refuses to start an executor under this RLIMIT_MEMLOCK (its reactor's check).
const MIN_MEMLOCK: u64 = 512 * 1024;

/// The soft RLIMIT_MEMLOCK in bytes (u64::MAX when unlimited or unknown).
fn memlock_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `struct rlimit` to the pointer, which points to a
    // live, properly aligned `libc::rlimit` owned by this frame.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } != 0 {
        return u64::MAX;
    }
    lim.rlim_cur
}

/// Registered (memlocked) I/O memory per glommio executor: glommio's registered
/// buffers serve DMA file I/O, which Shardis does not use; its 10 MiB default would be
/// most of an idle shard's footprint.
const IO_MEMORY: usize = 1 << 20;

/// A started core's thread.
pub struct Thread<T: Send + 'static>(ThreadInner<T>);

enum ThreadInner<T: Send + 'static> {
    IoUring(glommio::ExecutorJoinHandle<T>),
    Epoll(std::thread::JoinHandle<io::Result<T>>),
}

impl<T: Send + 'static> Thread<T> {
    pub fn join(self) -> Result<T, String> {
        match self.0 {
            ThreadInner::IoUring(h) => h.join().map_err(|e| e.to_string()),
            ThreadInner::Epoll(h) => match h.join() {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err("the thread panicked".into()),
            },
        }
    }
}

/// Start a thread named `name`, pinned to `core` when given, running an executor of
/// `kind` whose main task is `main()`.
pub fn start<T, F, Fut>(
    kind: Kind,
    name: &str,
    core: Option<usize>,
    main: F,
) -> io::Result<Thread<T>>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
{
    match kind {
        Kind::IoUring => {
            let placement = match core {
                Some(c) => glommio::Placement::Fixed(c),
                None => glommio::Placement::Unbound,
            };
            glommio::LocalExecutorBuilder::new(placement)
                .name(name)
                .io_memory(IO_MEMORY)
                .spawn(move || {
                    CURRENT.set(Some(Kind::IoUring));
                    let main = main();
                    async move {
                        let out = main.await;
                        // Tasks dropped from here on run no more (`at_turn_end`).
                        CURRENT.set(None);
                        out
                    }
                })
                .map(|h| Thread(ThreadInner::IoUring(h)))
                .map_err(|e| io::Error::other(e.to_string()))
        }
        Kind::Epoll => std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                if let Some(c) = core {
                    core_affinity::set_for_current(core_affinity::CoreId { id: c });
                }
                CURRENT.set(Some(Kind::Epoll));
                let out = epoll::block_on(main());
                CURRENT.set(None);
                out
            })
            .map(|h| Thread(ThreadInner::Epoll(h))),
    }
}

/// A spawned task: await it for its output, or `detach` it to let it run on its own.
/// Dropping it without detaching cancels the task.
pub struct Task<T>(TaskInner<T>);

enum TaskInner<T> {
    IoUring(glommio::Task<T>),
    Epoll(async_task::Task<T>),
}

impl<T> Task<T> {
    pub fn detach(self) {
        match self.0 {
            TaskInner::IoUring(t) => {
                t.detach();
            }
            TaskInner::Epoll(t) => t.detach(),
        }
    }
}

impl<T> Future for Task<T> {
    type Output = T;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match &mut self.get_mut().0 {
            TaskInner::IoUring(t) => Pin::new(t).poll(cx),
            TaskInner::Epoll(t) => Pin::new(t).poll(cx),
        }
    }
}

/// Spawn a task on this core. glommio runs it at once, up to its first wait (so a task
/// spawned by a job that holds the shard must not take it before waiting, see
/// [`yield_once`]); the epoll backend runs it at the loop's next turn.
pub fn spawn<T: 'static>(f: impl Future<Output = T> + 'static) -> Task<T> {
    Task(match current() {
        Kind::IoUring => TaskInner::IoUring(glommio::spawn_local(f)),
        Kind::Epoll => TaskInner::Epoll(epoll::spawn(f)),
    })
}

/// Complete after `d`.
pub async fn sleep(d: Duration) {
    match current() {
        Kind::IoUring => {
            glommio::timer::sleep(d).await;
        }
        Kind::Epoll => epoll::sleep(d).await,
    }
}

/// Let the core's other tasks and its I/O run before going on (when they wait).
pub async fn yield_now() {
    match current() {
        Kind::IoUring => glommio::yield_if_needed().await,
        Kind::Epoll => yield_once().await,
    }
}

/// True when other tasks may be ready to run on this core (the epoll backend knows;
/// glommio does not say, so there it is always true).
pub fn others_ready() -> bool {
    match current() {
        Kind::IoUring => true,
        Kind::Epoll => epoll::others_ready(),
    }
}

/// Let the core's loop look at its sockets once and run the tasks that woke, then go
/// on: for a long computation that must keep the core's clients served. On io_uring
/// a timer of 10 µs makes glommio poll its rings before it fires (a plain yield may
/// not), and one more turn lets the woken tasks go first.
pub async fn after_io() {
    match current() {
        Kind::IoUring => {
            glommio::timer::sleep(Duration::from_micros(10)).await;
            yield_once().await;
        }
        Kind::Epoll => epoll::after_io().await,
    }
}

thread_local! {
    /// What [`at_turn_end`] deferred on this core, in the order it came.
    static TURN_END: RefCell<Vec<Box<dyn FnOnce()>>> = const { RefCell::new(Vec::new()) };
}

/// Run `f` once the tasks ready on this core now have run: at the end of the loop's
/// turn, after every connection whose request came in with this one. For work that
/// serves all of a turn's requests at once (waking the AOF writer: one write and one
/// fsync for every client of the turn, as Redis's `beforeSleep`). A task spawned with
/// the first deferral goes to the back of the run queue and runs them all;
/// [`run_turn_end`] runs them sooner, before a long stretch without the loop. Off a
/// core's running loop (another thread, a loop that ended) `f` runs at once.
pub fn at_turn_end(f: impl FnOnce() + 'static) {
    let looping = match CURRENT.get() {
        None => false,
        Some(Kind::IoUring) => true,
        Some(Kind::Epoll) => epoll::running(),
    };
    if !looping {
        f();
        return;
    }
    let first = TURN_END.with(|t| {
        let mut t = t.borrow_mut();
        t.push(Box::new(f));
        t.len() == 1
    });
    if first {
        spawn(async {
            yield_once().await;
            run_turn_end();
        })
        .detach();
    }
}

/// Run what [`at_turn_end`] deferred on this thread, now: before the thread keeps the
/// loop waiting for long (a script's run, a wait for another core).
pub fn run_turn_end() {
    let due = TURN_END.with(|t| std::mem::take(&mut *t.borrow_mut()));
    for f in due {
        f();
    }
}

/// Wait once, always: let the caller (the code that spawned this task) go on first.
pub async fn yield_once() {
    pend_once(|w| w.wake_by_ref()).await
}

/// Be pending exactly once, handing the task's waker to `arm`, which arranges the
/// wake-up; ready on the next poll.
async fn pend_once(arm: impl FnOnce(&std::task::Waker)) {
    let mut arm = Some(arm);
    std::future::poll_fn(|cx| match arm.take() {
        Some(arm) => {
            arm(cx.waker());
            Poll::Pending
        }
        None => Poll::Ready(()),
    })
    .await
}

/// Call `poll` in a busy loop until it gives something, for at most `limit`: for work
/// another core is about to hand over, which a spin catches sooner and cheaper than a
/// sleep and a wake-up (the epoll executor before parking, a script's remote call).
pub fn watch<T>(limit: Duration, mut poll: impl FnMut() -> Option<T>) -> Option<T> {
    let start = std::time::Instant::now();
    loop {
        for _ in 0..64 {
            if let Some(v) = poll() {
                return Some(v);
            }
            std::hint::spin_loop();
        }
        if start.elapsed() >= limit {
            return None;
        }
    }
}

/// Run `f`, waking the parked cores it queues work for only once it is done (epoll;
/// glommio wakes its own way, at once): see `epoll::deferring_wakes`.
pub fn deferring_wakes<R>(f: impl FnOnce() -> R) -> R {
    match current() {
        Kind::IoUring => f(),
        Kind::Epoll => epoll::deferring_wakes(f),
    }
}

/// While `hint` (the transactions' claims granted on this core's shard) is above zero,
/// an idle executor polls for up to `epoll::SPIN` before parking (on glommio through
/// the hint its patched loop reads: vendor/glommio/PATCHED.md).
pub fn set_spin_hint(hint: std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    match current() {
        Kind::Epoll => epoll::set_spin_hint(hint),
        Kind::IoUring => glommio::spin_hint::set(hint, epoll::SPIN),
    }
}

/// Every listening socket's descriptor, for [`stop_listening`].
static LISTENING: std::sync::Mutex<Vec<RawFd>> = std::sync::Mutex::new(Vec::new());

/// Exit the process with `code` once every port is free: what every exit after the
/// listeners are bound goes through (see [`stop_listening`]).
pub fn exit(code: i32) -> ! {
    stop_listening();
    remove_unix_socket();
    std::process::exit(code)
}

/// Stop listening on every port, just before the process exits. With io_uring the
/// kernel releases the files a dead process's rings still use only once the rings
/// are torn down, tens of milliseconds after it is gone: when the listeners had
/// accepts in flight, a redis-server started at once on the same port failed to bind
/// in 5 of 10 tries. They no longer do ([`Polled`]); this stays for whatever socket a
/// ring may hold at exit. A socket that no longer listens does not hold its port
/// against one bound with SO_REUSEADDR, as Redis's (and ours) are.
fn stop_listening() {
    let fds = LISTENING.lock().unwrap_or_else(|e| e.into_inner());
    for &fd in fds.iter() {
        // SAFETY: shutdown() reads no memory of ours; it only changes the state of the
        // socket `fd` names. The process exits right after, so should the number
        // name another socket by now (a listener closed earlier), that socket is about
        // to be closed anyway; should it name no socket, the call fails (ENOTSOCK).
        unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
    }
}

/// A listening socket on this core.
pub enum TcpListener {
    IoUring(Polled<std::net::TcpListener>),
    Epoll(epoll::TcpListener),
}

/// A listening socket served from io_uring with no operation in flight on it: the ring
/// polls an epoll instance the listener is registered with, and accepts are plain
/// non-blocking `accept4` calls. An accept in flight on the listener itself (glommio's
/// way) holds the listener's file: after SIGKILL its port stayed bound until the kernel
/// had torn the dead process's rings down, 4.5-7.6 ms after the process was reaped (10
/// of 10 immediate binds failed), where the epoll backend freed it at once. An epoll
/// instance does not keep open the files it watches, so the listener now closes with
/// the process. `EPOLLEXCLUSIVE`: the cores sharing the Unix socket's listener are not
/// all woken for each connection.
pub struct Polled<L: AsRawFd> {
    listener: L,
    epoll: std::os::fd::OwnedFd,
}

impl<L: AsRawFd> Polled<L> {
    /// Watch `listener`, which must be non-blocking.
    fn new(listener: L) -> io::Result<Polled<L>> {
        use std::os::fd::FromRawFd;
        // SAFETY: epoll_create1 takes a flag and returns a new descriptor, or -1.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if ep < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `ep` was just returned by epoll_create1: open, and owned by nothing
        // else.
        let epoll = unsafe { std::os::fd::OwnedFd::from_raw_fd(ep) };
        let mut event = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLEXCLUSIVE) as u32,
            u64: 0,
        };
        // SAFETY: both descriptors are open (owned by `epoll` and `listener`), and
        // `event` lives across the call, which only reads it.
        let r =
            unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, listener.as_raw_fd(), &mut event) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Polled { listener, epoll })
    }

    /// `accept` the next connection, waiting on the ring while there is none.
    async fn accept_with<S>(&self, accept: impl Fn(&L) -> io::Result<S>) -> io::Result<S> {
        loop {
            match accept(&self.listener) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    glommio::net::readable(self.epoll.as_raw_fd()).await?
                }
                r => return r,
            }
        }
    }
}

/// A TCP socket for `addr` with SO_REUSEADDR (an address whose last connections
/// linger in TIME_WAIT can be bound at once, as Redis's can).
fn tcp_socket(addr: SocketAddr) -> io::Result<socket2::Socket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let sk = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        sk.set_only_v6(true)?;
    }
    sk.set_reuse_address(true)?;
    Ok(sk)
}

/// Fails with `AddrInUse` if another socket listens on `addr`, shared or not. The
/// cores' listeners share their port (SO_REUSEPORT), which would let a second server
/// started on the same port bind beside the first and take half its connections; a
/// socket bound without SO_REUSEPORT cannot join a listening group, so this bind
/// fails where Redis's would. (The probe is closed before the cores bind.)
pub fn probe_exclusive(addr: SocketAddr) -> io::Result<()> {
    tcp_socket(addr)?.bind(&addr.into())
}

/// `bind()` again while it fails with `AddrInUse`, for up to a second: a server that
/// has just died may hold its port a moment longer (one built before `Polled`, whose
/// io_uring accepts kept a killed process's listener open after it exited: 67 ms
/// measured after `kill -9` under load; or another program's).
pub fn retry_in_use<T>(mut bind: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    let started = std::time::Instant::now();
    loop {
        match bind() {
            Err(e)
                if e.kind() == io::ErrorKind::AddrInUse
                    && started.elapsed() < Duration::from_secs(1) =>
            {
                std::thread::sleep(Duration::from_millis(50))
            }
            r => return r,
        }
    }
}

impl TcpListener {
    /// Bind `addr` as Redis does (SO_REUSEADDR), listening with `backlog`; `shared`:
    /// with SO_REUSEPORT, so that every core has its own listener on the same port.
    pub fn bind(addr: SocketAddr, backlog: i32, shared: bool) -> io::Result<TcpListener> {
        let sk = tcp_socket(addr)?;
        sk.set_reuse_port(shared)?;
        sk.bind(&addr.into())?;
        sk.listen(backlog)?;
        sk.set_nonblocking(true)?;
        let fd = sk.as_raw_fd();
        let std: std::net::TcpListener = sk.into();
        let listener = match current() {
            Kind::IoUring => TcpListener::IoUring(Polled::new(std)?),
            Kind::Epoll => TcpListener::Epoll(epoll::TcpListener::from_std(std)?),
        };
        LISTENING.lock().unwrap_or_else(|e| e.into_inner()).push(fd);
        Ok(listener)
    }

    /// Stop listening now, ahead of dropping the listener: the port is free at once
    /// for a listener bound with SO_REUSEADDR, and a pending accept fails (CONFIG SET
    /// port / bind: `runtime::listen::rebind`). It no longer counts for `stop_listening`.
    pub fn stop(&self) {
        let fd = match self {
            TcpListener::IoUring(l) => l.listener.as_raw_fd(),
            TcpListener::Epoll(l) => l.as_raw_fd(),
        };
        LISTENING
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|&f| f != fd);
        // SAFETY: `fd` is this listener's socket, open while `self` lives (the borrow
        // lasts the call); shutdown() reads no memory of ours.
        unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
    }

    pub async fn accept(&self) -> io::Result<TcpStream> {
        match self {
            TcpListener::IoUring(l) => {
                let (socket, _) = l.accept_with(|l| l.accept()).await?;
                TcpStream::from_std(socket)
            }
            TcpListener::Epoll(l) => l.accept().await.map(TcpStream::Epoll),
        }
    }
}

/// The listening Unix domain socket of `unixsocket`, bound once at start
/// ([`bind_unix`]); every core accepts on a copy of it ([`UnixListener::on_this_core`]).
pub enum UnixListener {
    IoUring(Polled<std::os::unix::net::UnixListener>),
    Epoll(epoll::UnixListener),
}

/// Where the Unix socket is, to remove it at exit as Redis does.
static UNIX_PATH: std::sync::Mutex<Option<std::path::PathBuf>> = std::sync::Mutex::new(None);

/// Bind and listen on the Unix domain socket `path` with `backlog`, as Redis does: a
/// file left there (by a server that did not exit cleanly) is removed first, and
/// `perm`, if not 0, becomes the file's mode. The socket is removed again at exit.
/// The error names the call that failed, as Redis's (`bind: No such file or
/// directory`); a mode that cannot be set is left, as Redis leaves it.
pub fn bind_unix(
    path: &str,
    perm: u32,
    backlog: i32,
) -> Result<std::os::unix::net::UnixListener, String> {
    use socket2::{Domain, SockAddr, Socket, Type};
    let failed = |call: &str, e: io::Error| format!("{call}: {}", crate::log::strerror(&e));
    let _ = std::fs::remove_file(path);
    let sk = Socket::new(Domain::UNIX, Type::STREAM, None).map_err(|e| failed("socket", e))?;
    let addr = SockAddr::unix(path).map_err(|e| failed("bind", e))?;
    sk.bind(&addr).map_err(|e| failed("bind", e))?;
    if perm != 0 {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(perm));
    }
    sk.listen(backlog).map_err(|e| failed("listen", e))?;
    sk.set_nonblocking(true).map_err(|e| failed("fcntl", e))?;
    *UNIX_PATH.lock().unwrap_or_else(|e| e.into_inner()) = Some(path.into());
    let listener: std::os::unix::net::UnixListener = sk.into();
    LISTENING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(listener.as_raw_fd());
    Ok(listener)
}

impl UnixListener {
    /// This core's listener on `shared` (a copy of its descriptor).
    pub fn on_this_core(shared: &std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        let copy = shared.try_clone()?;
        Ok(match current() {
            Kind::IoUring => UnixListener::IoUring(Polled::new(copy)?),
            Kind::Epoll => UnixListener::Epoll(epoll::UnixListener::from_std(copy)?),
        })
    }

    pub async fn accept(&self) -> io::Result<TcpStream> {
        match self {
            UnixListener::IoUring(l) => {
                let (socket, _) = l.accept_with(|l| l.accept()).await?;
                TcpStream::adopt(StdStream::Unix(socket))
            }
            UnixListener::Epoll(l) => l.accept().await.map(TcpStream::EpollUnix),
        }
    }
}

/// Remove the Unix socket's file, if one was bound (at exit).
fn remove_unix_socket() {
    if let Some(path) = UNIX_PATH.lock().unwrap_or_else(|e| e.into_inner()).take() {
        crate::log::log("Removing the unix socket file.");
        let _ = std::fs::remove_file(path);
    }
}

/// Connect to `addr` (host:port) within `timeout`: the connect runs on a helper thread
/// so the core's loop never blocks on it, then the socket joins this core's loop.
pub async fn connect(addr: String, timeout: std::time::Duration) -> io::Result<TcpStream> {
    let (tx, rx) = flume::bounded(1);
    std::thread::Builder::new()
        .name("connect".into())
        .spawn(move || {
            use std::net::ToSocketAddrs;
            let r = addr.to_socket_addrs().and_then(|mut a| {
                let a = a
                    .next()
                    .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))?;
                std::net::TcpStream::connect_timeout(&a, timeout)
            });
            let _ = tx.send(r);
        })?;
    let std = rx
        .recv_async()
        .await
        .map_err(|_| io::Error::other("the connecting thread stopped"))??;
    TcpStream::from_std(std)
}

/// A connected socket on this core: TCP, or a client of the Unix domain socket
/// (`unixsocket`).
pub enum TcpStream {
    IoUring(glommio::net::TcpStream),
    Epoll(epoll::TcpStream),
    IoUringUnix(glommio::net::UnixStream),
    EpollUnix(epoll::UnixStream),
}

/// A client's socket on its way from one core to another (see
/// [`TcpStream::duplicate`]): a TCP connection or a client of the Unix socket.
pub enum StdStream {
    Tcp(std::net::TcpStream),
    Unix(std::os::unix::net::UnixStream),
}

impl TcpStream {
    /// A connected socket, joining this core's loop.
    pub fn from_std(std: std::net::TcpStream) -> io::Result<TcpStream> {
        std.set_nonblocking(true)?;
        Ok(match current() {
            Kind::IoUring => {
                use std::os::fd::{FromRawFd, IntoRawFd};
                let fd = std.into_raw_fd();
                // SAFETY: `fd` is a connected TCP socket whose ownership `into_raw_fd`
                // just gave up; glommio's stream takes it over and is its only owner (it
                // closes it on drop).
                TcpStream::IoUring(unsafe { glommio::net::TcpStream::from_raw_fd(fd) })
            }
            Kind::Epoll => TcpStream::Epoll(epoll::TcpStream::from_std(std)?),
        })
    }

    /// True for a client of the Unix domain socket.
    pub fn is_unix(&self) -> bool {
        matches!(self, TcpStream::IoUringUnix(_) | TcpStream::EpollUnix(_))
    }

    /// A second descriptor of this socket (`dup`), to hand the connection to another
    /// core: once this stream is dropped (leaving this core's loop; the epoll backend
    /// deregisters before it closes), the socket lives on in the copy.
    pub fn duplicate(&self) -> io::Result<StdStream> {
        // SAFETY: the descriptor is open while `self` lives, and the borrow ends
        // within this call, before `self` can be dropped.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(self.as_raw_fd()) };
        let copy = fd.try_clone_to_owned()?;
        Ok(if self.is_unix() {
            StdStream::Unix(copy.into())
        } else {
            StdStream::Tcp(copy.into())
        })
    }

    /// A socket [`duplicate`](Self::duplicate)d on another core, joining this core's
    /// loop.
    pub fn adopt(socket: StdStream) -> io::Result<TcpStream> {
        let std = match socket {
            StdStream::Tcp(s) => return TcpStream::from_std(s),
            StdStream::Unix(s) => s,
        };
        std.set_nonblocking(true)?;
        Ok(match current() {
            Kind::IoUring => {
                use std::os::fd::{FromRawFd, IntoRawFd};
                let fd = std.into_raw_fd();
                // SAFETY: `fd` is a connected Unix stream socket whose ownership
                // `into_raw_fd` just gave up; glommio's stream takes it over and is its
                // only owner (it closes it on drop).
                TcpStream::IoUringUnix(unsafe { glommio::net::UnixStream::from_raw_fd(fd) })
            }
            Kind::Epoll => TcpStream::EpollUnix(epoll::UnixStream::from_std(std)?),
        })
    }

    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        match self {
            TcpStream::IoUring(s) => s.set_nodelay(on).map_err(io::Error::from),
            TcpStream::Epoll(s) => s.set_nodelay(on),
            TcpStream::IoUringUnix(_) | TcpStream::EpollUnix(_) => Ok(()),
        }
    }
    /// `tcp-keepalive`: probe an idle peer after `secs` seconds, then every third of
    /// that, and give up after 3 unanswered probes (Redis's `anetKeepAlive`), so a
    /// client gone without a FIN (a cut network, a dead host) is closed at last; 0
    /// (or less) leaves the socket as it is, as Redis's option does.
    pub fn set_keepalive(&self, secs: i64) -> io::Result<()> {
        if secs <= 0 || self.is_unix() {
            return Ok(());
        }
        let secs = secs as u64;
        let time = Duration::from_secs(secs);
        let interval = Duration::from_secs((secs / 3).max(1));
        let ka = socket2::TcpKeepalive::new()
            .with_time(time)
            .with_interval(interval)
            .with_retries(3);
        // SAFETY: the descriptor is open while `self` lives, and the borrow ends
        // within this call, before `self` can be dropped.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(self.as_raw_fd()) };
        socket2::SockRef::from(&fd).set_tcp_keepalive(&ka)
    }

    /// The peer's address (a Unix socket's client has none: `Unsupported`).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        match self {
            TcpStream::IoUring(s) => s.peer_addr().map_err(io::Error::from),
            TcpStream::Epoll(s) => s.peer_addr(),
            TcpStream::IoUringUnix(_) | TcpStream::EpollUnix(_) => {
                Err(io::ErrorKind::Unsupported.into())
            }
        }
    }
    /// This end's address (a Unix socket's client has none: `Unsupported`).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            TcpStream::IoUring(s) => s.local_addr().map_err(io::Error::from),
            TcpStream::Epoll(s) => s.local_addr(),
            TcpStream::IoUringUnix(_) | TcpStream::EpollUnix(_) => {
                Err(io::ErrorKind::Unsupported.into())
            }
        }
    }

    /// Read into `buf` what the socket has (at least one byte; 0 at end of stream).
    pub fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        match self {
            TcpStream::IoUring(s) => futures_lite::AsyncRead::poll_read(Pin::new(s), cx, buf),
            TcpStream::Epoll(s) => s.poll_read(cx, buf),
            TcpStream::IoUringUnix(s) => futures_lite::AsyncRead::poll_read(Pin::new(s), cx, buf),
            TcpStream::EpollUnix(s) => s.poll_read(cx, buf),
        }
    }

    /// Write what the socket takes of `buf` now (at least one byte).
    pub fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self {
            TcpStream::IoUring(s) => futures_lite::AsyncWrite::poll_write(Pin::new(s), cx, buf),
            TcpStream::Epoll(s) => s.poll_write(cx, buf),
            TcpStream::IoUringUnix(s) => futures_lite::AsyncWrite::poll_write(Pin::new(s), cx, buf),
            TcpStream::EpollUnix(s) => s.poll_write(cx, buf),
        }
    }

    /// Write all of `buf`.
    pub async fn write_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let n = std::future::poll_fn(|cx| self.poll_write(cx, buf)).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            buf = &buf[n..];
        }
        Ok(())
    }
}

impl AsRawFd for TcpStream {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            TcpStream::IoUring(s) => s.as_raw_fd(),
            TcpStream::Epoll(s) => s.as_raw_fd(),
            TcpStream::IoUringUnix(s) => s.as_raw_fd(),
            TcpStream::EpollUnix(s) => s.as_raw_fd(),
        }
    }
}
