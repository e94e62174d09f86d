//! `notification-script` and `client-reconfig-script`: the programs a Sentinel runs on
//! events, as Redis runs them. Jobs wait in a queue (at most 256; the oldest waiting
//! one is dropped for a new one), at most 16 run at once, each is killed after
//! `script-max-runtime`, and one that exits with 1 is retried up to 10 times with a
//! delay that doubles each time (other exit codes and signals are final).

use super::State;
use std::process::{Child, Command};

const MAX_QUEUE: usize = 256;
const MAX_RUNNING: usize = 16;
const MAX_RETRY: u32 = 10;

pub struct Job {
    pub argv: Vec<String>,
    pub child: Option<Child>,
    /// When it started (running) or may start (waiting); 0 = at once.
    pub start_time: u64,
    pub retry_num: u32,
}

#[derive(Default)]
pub struct Queue {
    pub jobs: Vec<Job>,
}

impl Queue {
    pub fn schedule(&mut self, argv: Vec<String>) {
        if self.jobs.len() >= MAX_QUEUE {
            if let Some(i) = self.jobs.iter().position(|j| j.child.is_none()) {
                self.jobs.remove(i);
            } else {
                return;
            }
        }
        self.jobs.push(Job {
            argv,
            child: None,
            start_time: 0,
            retry_num: 0,
        });
    }

    pub fn running(&self) -> usize {
        self.jobs.iter().filter(|j| j.child.is_some()).count()
    }
}

/// True if `path` is a file we may execute.
pub fn executable(path: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Start the jobs that are due, collect the ones that ended, kill the ones that ran
/// too long.
pub fn run_due(st: &mut State, now: u64) {
    let timing = st.g.timing.clone();
    let q = &mut st.scripts;
    let mut i = 0;
    while i < q.jobs.len() {
        let job = &mut q.jobs[i];
        let Some(child) = job.child.as_mut() else {
            i += 1;
            continue;
        };
        match child.try_wait() {
            Ok(None) => {
                if now.saturating_sub(job.start_time) > timing.script_max_runtime {
                    crate::log::warning(&format!("Killing a timed out script: {}", job.argv[0]));
                    let _ = child.kill();
                }
                i += 1;
            }
            Ok(Some(status)) => {
                job.child = None;
                if status.code() == Some(1) && job.retry_num < MAX_RETRY {
                    job.retry_num += 1;
                    job.start_time = now.saturating_add(
                        timing
                            .script_retry_delay
                            .saturating_mul(1 << (job.retry_num - 1).min(20)),
                    );
                    i += 1;
                } else {
                    if status.code() != Some(0) {
                        crate::log::warning(&format!(
                            "-script-error {} {:?} {}",
                            job.argv[0],
                            status.signal_or_code(),
                            job.retry_num
                        ));
                    }
                    q.jobs.remove(i);
                }
            }
            Err(_) => {
                q.jobs.remove(i);
            }
        }
    }
    let mut running = q.running();
    for job in q.jobs.iter_mut() {
        if running >= MAX_RUNNING {
            break;
        }
        if job.child.is_some() || job.start_time > now {
            continue;
        }
        match Command::new(&job.argv[0]).args(&job.argv[1..]).spawn() {
            Ok(child) => {
                job.child = Some(child);
                job.start_time = now;
                running += 1;
            }
            Err(e) => {
                crate::log::warning(&format!("-script-error {} {e}", job.argv[0]));
                job.retry_num = MAX_RETRY;
                job.start_time = u64::MAX;
            }
        }
    }
    q.jobs.retain(|j| j.start_time != u64::MAX);
}

trait SignalOrCode {
    fn signal_or_code(&self) -> i32;
}

impl SignalOrCode for std::process::ExitStatus {
    fn signal_or_code(&self) -> i32 {
        use std::os::unix::process::ExitStatusExt;
        self.code().or(self.signal()).unwrap_or(-1)
    }
}
