//! The server log, in Redis's line format. A leaf: everyone may import it.
//!
//! Lines go to standard output, as Redis's do with `logfile ""` (one write per line, so
//! that a supervisor or a test reading it sees each line at once), or with `logfile`
//! set to that file, appended: opened for each
//! line, as Redis's `serverLogRaw` does, so a file moved away by logrotate is followed
//! by a new one without a signal. A line that cannot be written there is lost, as in
//! Redis; the file is checked once at start ([`set_file`]).

/// Log a line in Redis's format (`pid:M dd Mon yyyy hh:mm:ss.mmm * msg`) at Redis's
/// `notice` level: not written under `loglevel warning`.
pub fn log(msg: &str) {
    if LEVEL.load(std::sync::atomic::Ordering::Relaxed) <= NOTICE {
        write(b'*', msg);
    }
}

/// `loglevel`: debug, verbose, notice, warning (Redis's order); the lines below it are
/// not written. Shardis's lines are `verbose`, `notice` ([`log`]) or `warning`.
static LEVEL: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(NOTICE);
const NOTICE: u8 = 2;
const VERBOSE: u8 = 1;

/// Apply the `loglevel` option (at start and when CONFIG SET changes it).
pub fn set_level(name: &str) {
    let level = match name {
        "debug" => 0,
        "verbose" => VERBOSE,
        "warning" => 3,
        _ => NOTICE,
    };
    LEVEL.store(level, std::sync::atomic::Ordering::Relaxed);
}

/// Log a line at Redis's `verbose` level (marked `-`): written under `loglevel
/// verbose` or `debug` only.
pub fn verbose(msg: &str) {
    if LEVEL.load(std::sync::atomic::Ordering::Relaxed) <= VERBOSE {
        write(b'-', msg);
    }
}

/// Log a warning: Redis marks its `LL_WARNING` lines with `#` instead of `*`.
pub fn warning(msg: &str) {
    write(b'#', msg);
}

/// The role letter of the log lines: `M` for a data server, `X` for a Sentinel.
static ROLE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(b'M');

/// Mark this process's log lines as a Sentinel's (`X`), as Redis does.
pub fn set_role(role: u8) {
    ROLE.store(role, std::sync::atomic::Ordering::Relaxed);
}

/// The `logfile`, once set.
static FILE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// Log to `path` (the `logfile` option) from now on; Err (Redis's text) if it cannot
/// be opened for appending.
pub fn set_file(path: &str) -> Result<(), String> {
    append_to(std::path::Path::new(path), b"")
        .map_err(|e| format!("Can't open the log file: {}", strerror(&e)))?;
    let _ = FILE.set(path.into());
    Ok(())
}

/// An I/O error as C's `strerror` words it ("No such file or directory"), without
/// Rust's " (os error N)": what Redis's messages quote.
pub fn strerror(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

fn append_to(path: &std::path::Path, line: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)?;
    f.write_all(line)
}

fn write(level: u8, msg: &str) {
    let ms = crate::clock::now_ms();
    let secs = (ms / 1000) as i64;
    let (y, mo, d, h, mi, s) = civil(secs);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let line = format!(
        "{}:{} {:02} {} {} {:02}:{:02}:{:02}.{:03} {} {}\n",
        std::process::id(),
        ROLE.load(std::sync::atomic::Ordering::Relaxed) as char,
        d,
        MONTHS[(mo - 1) as usize],
        y,
        h,
        mi,
        s,
        ms % 1000,
        level as char,
        msg
    );
    match FILE.get() {
        Some(path) => {
            let _ = append_to(path, line.as_bytes());
        }
        None => {
            use std::io::Write;
            // (Not `print!`, which panics when standard output is closed.)
            let _ = std::io::stdout().lock().write_all(line.as_bytes());
        }
    }
}

/// UTC calendar fields (year, month, day, hour, minute, second) from unix seconds
/// (days-from-civil inverse).
pub fn civil(secs: i64) -> (i64, i64, i64, i64, i64, i64) {
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y, m, d, rem / 3600, rem % 3600 / 60, rem % 60)
}
