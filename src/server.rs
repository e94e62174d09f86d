//! The server's start-up: what runs before the shards, and what each shard starts
//! besides serving clients.
//!
//! The runtime knows cores, connections and hops; persistence knows files and drives
//! the shards through the runtime. This module is above both and puts them together:
//! it builds the process-wide [`ServerInfo`] with persistence installed as its
//! durability hooks, decides whether a data set is to be loaded (clients get
//! `-LOADING` until it is), turns SIGINT / SIGTERM into a shutdown, and has the
//! runtime start the shards with a hook that starts each shard's persistence tasks:
//! its snapshot driver, and on shard 0 the load, then the signal watch, automatic AOF
//! rewrites and the save points. Stopping is `persistence::shutdown` (SHUTDOWN and the
//! signals both end there).

use crate::config::ConfigHandle;
use crate::log::log;
use crate::persistence::shutdown::Flags;
use crate::persistence::{self, aof, load, save, Persistence};
use crate::replication;
use crate::runtime::{self, ServerInfo, Shards};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Start the server and block until it exits (SHUTDOWN or a signal ends the process).
pub fn run(config: ConfigHandle) -> Result<(), String> {
    let cfg = config.current();
    let server = Arc::new(ServerInfo::new(config, Box::<Persistence>::default()));
    save::init(&server);
    // Until shard 0 has loaded the data set, every core answers -LOADING. With the AOF
    // on, also while there is nothing to load: a write accepted before every shard has
    // its AOF attached would not be logged, and a crash would lose it acknowledged.
    let to_load = if crate::sentinel::enabled() {
        false
    } else if cfg.get_bool("appendonly") {
        true
    } else {
        save::rdb_path(&cfg).exists()
    };
    server.loading.store(to_load, Ordering::SeqCst);
    let (shutdown_tx, shutdown_rx) = flume::bounded::<i32>(1);
    install_signal_handlers(shutdown_tx);
    runtime::run(server, move |shards| start_shard(shards, &shutdown_rx))
}

/// A shard's persistence tasks, started on its thread before it accepts connections.
fn start_shard(shards: Rc<Shards>, shutdown_rx: &flume::Receiver<i32>) {
    if crate::sentinel::enabled() {
        start_sentinel(shards, shutdown_rx);
        return;
    }
    runtime::backend::spawn(save::driver(shards.local.clone())).detach();
    if shards.local_id == 0 {
        let shutdown_rx = shutdown_rx.clone();
        runtime::backend::spawn(async move {
            load::at_start(&shards).await;
            runtime::backend::spawn(on_signals(shards.clone(), shutdown_rx)).detach();
            runtime::backend::spawn(aof::auto_rewrite(shards.clone())).detach();
            if crate::cluster::enabled() {
                runtime::backend::spawn(crate::cluster::run(shards.clone())).detach();
            }
            runtime::backend::spawn(replication::master::ping_task(shards.clone())).detach();
            let replicaof = shards
                .local
                .borrow()
                .config
                .get("replicaof")
                .map(str::to_owned);
            // Loaded and listening: what systemd waits for (Redis: after loading).
            runtime::listen::all_listening(&shards).await;
            let master = replicaof.as_deref().and_then(|v| v.split_once(' '));
            crate::supervise::ready(master.is_some());
            if let Some((host, port)) = master {
                if let Ok(port) = port.trim().parse::<u16>() {
                    replication::replica::start(&shards, host.to_string(), port).await;
                }
            }
            save::save_points(shards).await
        })
        .detach();
    }
}

/// Sentinel mode: no data set to load or save; core 0 runs the Sentinel.
fn start_sentinel(shards: Rc<Shards>, shutdown_rx: &flume::Receiver<i32>) {
    if shards.local_id != 0 {
        return;
    }
    runtime::backend::spawn(on_signals(shards.clone(), shutdown_rx.clone())).detach();
    let listening = shards.clone();
    runtime::backend::spawn(async move {
        runtime::listen::all_listening(&listening).await;
        crate::supervise::ready(false);
    })
    .detach();
    runtime::backend::spawn(crate::sentinel::run(shards)).detach();
}

/// A shutdown was asked for by a signal and has not been cancelled (Redis's
/// `shutdown_asap`): a second SIGINT then exits at once.
static SIGNALLED: AtomicBool = AtomicBool::new(false);

/// Shut down on each signal the handler thread passes on, with the flags of
/// `shutdown-on-sigint` / `shutdown-on-sigterm`; a shutdown that fails or is aborted
/// leaves the server running, waiting for the next.
async fn on_signals(shards: Rc<Shards>, signals: flume::Receiver<i32>) {
    use signal_hook::consts::SIGINT;
    while let Ok(sig) = signals.recv_async().await {
        let option = if sig == SIGINT {
            "shutdown-on-sigint"
        } else {
            "shutdown-on-sigterm"
        };
        let value = shards
            .local
            .borrow()
            .config
            .get(option)
            .unwrap_or_default()
            .to_owned();
        persistence::shutdown(&shards, Flags::from_config(&value)).await;
        SIGNALLED.store(false, Ordering::SeqCst);
    }
}

fn install_signal_handlers(shutdown: flume::Sender<i32>) {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    // SIGHUP is taken and ignored, as Redis ignores it: by default it ends the process
    // without a save or a log line (a closed terminal, a `kill -HUP` meant to reload).
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
        log("cannot install signal handlers");
        return;
    };
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if sig == SIGHUP {
                    continue;
                }
                if SIGNALLED.load(Ordering::SeqCst) && sig == SIGINT {
                    // Ctrl+C twice: the user wants out now, without saving or waiting.
                    crate::log::warning("You insist... exiting now.");
                    std::process::exit(1);
                }
                let name = if sig == SIGINT { "SIGINT" } else { "SIGTERM" };
                crate::log::warning(&format!("Received {name} scheduling shutdown..."));
                if !SIGNALLED.swap(true, Ordering::SeqCst) {
                    let _ = shutdown.send(sig);
                }
            }
        })
        .ok();
}
