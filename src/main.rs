//! The `shardis` binary: read the configuration, start the shards.

/// mimalloc, counting the bytes in use for INFO's `used_memory` (see `shardis::memory`).
#[global_allocator]
static GLOBAL: shardis::memory::CountingAlloc = shardis::memory::CountingAlloc;

fn main() {
    let exe = std::env::args().next().unwrap_or_default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let sentinel = shardis::sentinel::requested(&exe, &args);
    if sentinel {
        shardis::sentinel::enable();
        shardis::log::set_role(b'X');
    }
    // A Sentinel reads only the file it is given: it rewrites it with its state.
    let default_file = (!sentinel).then_some("config.toml");
    let config = match shardis::config::load_with_default(&args, default_file) {
        Ok(c) => c,
        Err(e) => fatal_config(&e),
    };
    if let Err(e) = shardis::config::check_dir(&config.dir) {
        fatal_config(&e);
    }
    if let Err(e) = shardis::commands::rename(&config.renamed_commands) {
        fatal_config(&e);
    }
    if !config.logfile.is_empty() {
        if let Err(e) = shardis::log::set_file(&config.logfile) {
            fatal_config(&e);
        }
    }
    shardis::log::set_level(&config.loglevel);
    shardis::supervise::start(config.get("supervised").unwrap_or("no"));
    let background = config.get("daemonize") == Some("yes")
        && shardis::supervise::mode() == shardis::supervise::Mode::No;
    let mut pidfile = config.get("pidfile").unwrap_or("").to_string();
    if background {
        if let Err(e) = shardis::supervise::daemonize() {
            fatal_config(&e);
        }
        if pidfile.is_empty() {
            pidfile = shardis::supervise::DEFAULT_PIDFILE.into();
        }
    }
    shardis::supervise::write_pidfile(&pidfile);
    if sentinel {
        if let Err(e) = shardis::sentinel::init(&config) {
            if e.starts_with("Reading the configuration file") {
                fatal_config(&e);
            }
            shardis::log::warning(&e);
            std::process::exit(1);
        }
    }
    if let Err(e) = shardis::acl::init(&config) {
        shardis::log::warning(&e);
        std::process::exit(1);
    }
    if let Err(e) = shardis::cluster::init(&config) {
        shardis::log::warning(&e);
        std::process::exit(1);
    }
    if let Err(e) = shardis::server::run(shardis::config::ConfigHandle::new(config)) {
        shardis::log::warning(&e);
        std::process::exit(1);
    }
}

/// A configuration the server cannot start with: Redis's banner and the reason on
/// stderr, exit code 1.
fn fatal_config(e: &str) -> ! {
    eprintln!("\n*** FATAL CONFIG FILE ERROR ***\n{e}");
    std::process::exit(1);
}
