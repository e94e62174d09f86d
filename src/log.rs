//! The server log, in Redis's line format. A leaf: everyone may import it.

/// Log a line in Redis's format (`pid:M dd Mon yyyy hh:mm:ss.mmm * msg`) to stderr.
pub fn log(msg: &str) {
    write(b'*', msg);
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

fn write(level: u8, msg: &str) {
    let ms = crate::clock::now_ms();
    let secs = (ms / 1000) as i64;
    let (y, mo, d, h, mi, s) = civil(secs);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    eprintln!(
        "{}:{} {:02} {} {} {:02}:{:02}:{:02}.{:03} {} {}",
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
