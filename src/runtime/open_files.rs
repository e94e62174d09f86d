//! The open file limit and `maxclients`, as Redis's `adjustOpenFilesLimit`: at start
//! (and when CONFIG SET raises `maxclients`) the soft `RLIMIT_NOFILE` is raised to
//! what `maxclients` clients need; where the system refuses, the highest limit it
//! allows (tried in steps of 16 down from the need) is kept and `maxclients` lowered
//! to fit, with Redis's three warnings; below the reserve the server does not start.
//!
//! The reserve differs from Redis's: Redis keeps 32 descriptors for its listeners,
//! files and links; each shard here also holds its own (listening socket, wake-up
//! eventfd, io_uring rings or epoll instance, AOF file and its fsync handle: 6-8
//! measured at 2 shards), so the reserve is 32 plus [`PER_SHARD`] per shard. Without
//! it, a low `ulimit -n` left `maxclients` at 10000: past the limit `accept` failed
//! and clients waited on a connection no one answered, instead of getting `-ERR max
//! number of clients reached`.

/// Redis's `CONFIG_MIN_RESERVED_FDS`.
const RESERVED: u64 = 32;
/// Descriptors a shard holds besides its clients (see the module comment).
const PER_SHARD: u64 = 8;

/// Descriptors kept for other uses than clients with `shards` shards.
fn reserved(shards: usize) -> u64 {
    RESERVED + PER_SHARD * shards as u64
}

/// What became of the limit.
#[derive(Debug, PartialEq, Eq)]
pub enum Fit {
    /// The limit allows `maxclients` (it was raised from `from` when `Some`).
    Enough { raised_from: Option<u64>, to: u64 },
    /// The system allows `limit` descriptors only (`error`: why a higher one was
    /// refused): `maxclients` clients fit.
    Reduced {
        limit: u64,
        maxclients: usize,
        error: String,
    },
    /// Not even the reserve fits under `limit` (`needed`: what the configuration
    /// asked for).
    TooLow { limit: u64, needed: u64 },
}

/// Raise the soft open file limit for `maxclients` clients and `shards` shards.
pub fn fit(maxclients: usize, shards: usize) -> Fit {
    let needed = maxclients as u64 + reserved(shards);
    let Some(old) = get() else {
        // (Redis assumes 1024 then.)
        return reduced_to(1024, needed, shards, "getrlimit failed".into());
    };
    if old >= needed {
        return Fit::Enough {
            raised_from: None,
            to: old,
        };
    }
    let mut best = needed;
    let mut error = String::new();
    while best > old {
        match set(best) {
            Ok(()) => break,
            Err(e) => error = e,
        }
        if best < 16 {
            best = old;
            break;
        }
        best -= 16;
    }
    let best = best.max(old);
    if best >= needed {
        return Fit::Enough {
            raised_from: Some(old),
            to: best,
        };
    }
    reduced_to(best, needed, shards, error)
}

/// The limit stays at `limit`, short of `needed`.
fn reduced_to(limit: u64, needed: u64, shards: usize, error: String) -> Fit {
    let reserve = reserved(shards);
    if limit <= reserve {
        return Fit::TooLow { limit, needed };
    }
    Fit::Reduced {
        limit,
        maxclients: (limit - reserve) as usize,
        error,
    }
}

/// At start: fit the limit to the configuration, log as Redis does, and return the
/// `maxclients` to run with (Err: the fatal line).
pub fn at_start(maxclients: usize, shards: usize) -> Result<usize, String> {
    match fit(maxclients, shards) {
        Fit::Enough {
            raised_from: Some(old),
            to,
        } => {
            crate::log::log(&format!(
                "Increased maximum number of open files to {to} (it was originally set to {old})."
            ));
            Ok(maxclients)
        }
        Fit::Enough { .. } => Ok(maxclients),
        Fit::Reduced {
            limit,
            maxclients: fitted,
            error,
        } => {
            let needed = maxclients as u64 + reserved(shards);
            crate::log::warning(&format!(
                "You requested maxclients of {maxclients} requiring at least {needed} max file descriptors."
            ));
            crate::log::warning(&format!(
                "Server can't set maximum open files to {needed} because of OS error: {error}."
            ));
            crate::log::warning(&format!(
                "Current maximum open files is {limit}. maxclients has been reduced to {fitted} to compensate for low ulimit. If you need higher maxclients increase 'ulimit -n'."
            ));
            Ok(fitted)
        }
        Fit::TooLow { limit, needed } => Err(format!(
            "Your current 'ulimit -n' of {limit} is not enough for the server to start. Please increase your open file limit to at least {needed}. Exiting."
        )),
    }
}

/// CONFIG SET maxclients: Err with Redis's reason when the system cannot hold that
/// many clients.
pub fn on_config_set(maxclients: usize, shards: usize) -> Result<(), String> {
    match fit(maxclients, shards) {
        Fit::Enough { .. } => Ok(()),
        Fit::Reduced {
            maxclients: fitted, ..
        } => Err(format!(
            "The operating system is not able to handle the specified number of clients, try with {fitted}"
        )),
        // (Not reached: the limit held the previous `maxclients` and the reserve.)
        Fit::TooLow { .. } => Err(
            "The operating system is not able to handle the specified number of clients".into(),
        ),
    }
}

/// The soft `RLIMIT_NOFILE`.
fn get() -> Option<u64> {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `struct rlimit` to `l`, a live local of that type.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) } == 0;
    ok.then_some(l.rlim_cur)
}

/// Set both limits to `n`, as Redis does; Err: the system's reason.
fn set(n: u64) -> Result<(), String> {
    let l = libc::rlimit {
        rlim_cur: n,
        rlim_max: n,
    };
    // SAFETY: setrlimit reads one `struct rlimit` from `l`, a live local of that type.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &l) } == 0 {
        Ok(())
    } else {
        Err(crate::log::strerror(&std::io::Error::last_os_error()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_grows_with_the_shards() {
        assert_eq!(reserved(1), 40);
        assert_eq!(reserved(2), 48);
        assert_eq!(
            reduced_to(64, 10048, 2, String::new()),
            Fit::Reduced {
                limit: 64,
                maxclients: 16,
                error: String::new()
            }
        );
        assert_eq!(
            reduced_to(48, 10048, 2, String::new()),
            Fit::TooLow {
                limit: 48,
                needed: 10048
            }
        );
    }

    #[test]
    fn a_limit_already_high_enough_is_left_alone() {
        let soft = get().unwrap();
        assert!(soft > reserved(1));
        let fits = (soft - reserved(1)) as usize;
        assert_eq!(
            fit(fits, 1),
            Fit::Enough {
                raised_from: None,
                to: soft
            }
        );
    }
}
