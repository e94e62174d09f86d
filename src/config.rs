//! Configuration: `config.toml` defaults, a TOML or redis.conf file, `--name value` flags,
//! and CONFIG GET / SET / REWRITE, all with Redis's option names.
//!
//! The live configuration is an immutable [`Config`] behind [`ConfigHandle`]; CONFIG SET
//! publishes a new one with a higher generation, and each shard refreshes its cached
//! `Arc<Config>` when it sees the generation change. So the data path reads its settings
//! without a lock or a shared cache line.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

#[derive(Clone, Debug)]
pub struct Config {
    /// Bumped by every change; shards compare it to refresh their copy.
    pub generation: u64,
    pub port: u16,
    pub bind: Vec<String>,
    /// Number of shards (one per core); 0 = all cores.
    pub threads: usize,
    pub requirepass: Option<String>,
    pub protected_mode: bool,
    pub databases: usize,
    pub hz: u32,
    pub maxclients: usize,
    pub timeout: u64,
    pub proto_max_bulk_len: usize,
    pub client_query_buffer_limit: usize,
    pub slowlog_log_slower_than: i64,
    pub slowlog_max_len: usize,
    pub latency_tracking: bool,
    pub latency_tracking_info_percentiles: Vec<f64>,
    pub dir: String,
    pub dbfilename: String,
    pub logfile: String,
    pub loglevel: String,
    pub maxmemory: u64,
    pub maxmemory_policy: String,
    /// The file the configuration was loaded from (CONFIG REWRITE target).
    pub config_file: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            generation: 0,
            port: 6379,
            bind: vec!["127.0.0.1".into(), "-::1".into()],
            threads: 0,
            requirepass: None,
            protected_mode: true,
            databases: 16,
            hz: 10,
            maxclients: 10000,
            timeout: 0,
            proto_max_bulk_len: 512 * 1024 * 1024,
            client_query_buffer_limit: 1024 * 1024 * 1024,
            slowlog_log_slower_than: 10000,
            slowlog_max_len: 128,
            latency_tracking: true,
            latency_tracking_info_percentiles: vec![50.0, 99.0, 99.9],
            dir: ".".into(),
            dbfilename: "dump.rdb".into(),
            logfile: String::new(),
            loglevel: "notice".into(),
            maxmemory: 0,
            maxmemory_policy: "noeviction".into(),
            config_file: None,
        }
    }
}

/// The shared, swappable configuration.
#[derive(Clone)]
pub struct ConfigHandle {
    inner: Arc<(RwLock<Arc<Config>>, AtomicU64)>,
}

impl ConfigHandle {
    pub fn new(c: Config) -> Self {
        let g = c.generation;
        ConfigHandle {
            inner: Arc::new((RwLock::new(Arc::new(c)), AtomicU64::new(g))),
        }
    }
    pub fn current(&self) -> Arc<Config> {
        self.inner
            .0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    pub fn generation(&self) -> u64 {
        self.inner.1.load(Ordering::Acquire)
    }
    /// Apply `f` to a copy of the current config and publish it.
    pub fn update<R>(&self, f: impl FnOnce(&mut Config) -> R) -> R {
        let mut guard = self.inner.0.write().unwrap_or_else(|e| e.into_inner());
        let mut next = (**guard).clone();
        let r = f(&mut next);
        next.generation = guard.generation + 1;
        self.inner.1.store(next.generation, Ordering::Release);
        *guard = Arc::new(next);
        r
    }
}

/// Build the configuration from the command line: `[config-file] [--name value ...]`.
/// Placeholder: the full TOML / redis.conf / flag loader replaces this.
pub fn load(args: &[String]) -> Result<Config, String> {
    let mut c = Config::default();
    let mut i = 0;
    while i < args.len() {
        if let Some(name) = args[i].strip_prefix("--") {
            let v = args
                .get(i + 1)
                .ok_or_else(|| format!("missing value for --{name}"))?;
            match name {
                "port" => c.port = v.parse().map_err(|_| "bad port".to_string())?,
                "threads" => c.threads = v.parse().map_err(|_| "bad threads".to_string())?,
                "requirepass" => c.requirepass = Some(v.clone()),
                _ => {}
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    Ok(c)
}
