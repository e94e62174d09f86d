//! Access control lists, as Redis 7.0's (`acl.c`): named users with passwords, and
//! what each may run, touch and publish to.
//!
//! Plan:
//! - One registry for the process ([`registry`]): the users by name (in byte order,
//!   as Redis's radix tree lists them), the ACL LOG, and a generation counter bumped
//!   by every change. A user is an immutable [`User`] behind an `Arc`; a change
//!   (ACL SETUSER, DELUSER, LOAD, CONFIG SET requirepass) builds the new user aside
//!   and swaps it in whole, so a rule that fails leaves the user untouched, as in
//!   Redis, and no core ever sees a half-applied one.
//! - A connection holds its user's `Arc` and the generation it was read at. Before
//!   each command it compares that with the registry's (one atomic load) and reads
//!   its user again only when they differ, so a SETUSER reaches every connection of
//!   that user at its next command, as Redis's shared `user` struct does, without a
//!   lock on the command path. A user with everything allowed (`default` out of the
//!   box) skips the check ([`User::unrestricted`]).
//! - The check ([`check`]) is Redis's `ACLCheckAllUserCommandPerm`: a command is
//!   allowed if one selector allows the command (or its first argument), every key
//!   with the access its key spec says (`access` needs `%R`, `insert`, `update` and
//!   `delete` need `%W`), and every channel it publishes or subscribes to; otherwise
//!   the most telling refusal is reported (a channel over a key over the command,
//!   then the later argument). The admission step refuses with Redis's `-NOPERM`
//!   texts and logs the refusal in ACL LOG; EXEC checks again what it queued; a
//!   script's `redis.call` is checked for the caller's user.
//! - Deleting a user (DELUSER, or LOAD of a file without it) closes its connections,
//!   as Redis frees them; narrowing a user's channels closes its subscribers whose
//!   subscriptions the new rules would refuse.
//! - The ACL file (`aclfile`) and `user` lines of the config file are read at start,
//!   in Redis's way (both at once is an error); ACL LOAD replaces every user only when
//!   the whole file is valid, ACL SAVE writes the file atomically.

pub mod universe;
pub mod user;

use crate::commands::Command;
use bytes::Bytes;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
pub use user::{RuleError, User};

/// Why a command was refused, ordered as Redis weighs them: a later variant is more
/// telling, and of two alike the later argument (the derived order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Denied {
    Command,
    /// The argument index of the key.
    Key(usize),
    Auth,
    /// The argument index of the channel.
    Channel(usize),
}

impl Denied {
    /// The `-NOPERM` reply of a refused command.
    pub fn error(self, cmd: &Command) -> String {
        match self {
            Denied::Command => format!(
                "NOPERM this user has no permissions to run the '{}' command",
                cmd.name
            ),
            Denied::Key(_) => {
                "NOPERM this user has no permissions to access one of the keys used as arguments"
                    .into()
            }
            Denied::Channel(_) => "NOPERM this user has no permissions to access one of the \
                                   channels used as arguments"
                .into(),
            Denied::Auth => "NOPERM no permission".into(),
        }
    }

    /// How a script's error says it (Redis's `getAclErrorMessage`).
    pub fn script_text(self) -> &'static str {
        match self {
            Denied::Command => "can't run this command or subcommand",
            Denied::Key(_) => {
                "can't access at least one of the keys mentioned in the command arguments"
            }
            Denied::Channel(_) => "can't publish to the channel mentioned in the command",
            Denied::Auth => "lacking the permissions for the command",
        }
    }

    /// EXEC's reason for a queued command refused after the ACL changed.
    pub fn exec_reason(self) -> &'static str {
        match self {
            Denied::Command => "no permission to execute the command or subcommand",
            Denied::Key(_) => "no permission to touch the specified keys",
            Denied::Channel(_) => "no permission to access one of the channels used as arguments",
            Denied::Auth => "no permission",
        }
    }

    /// What the log entry names: the command, or the key or channel argument.
    pub fn object(self, cmd: &Command, argv: &[Bytes]) -> String {
        match self {
            Denied::Command => cmd.name.to_string(),
            Denied::Key(i) | Denied::Channel(i) => String::from_utf8_lossy(&argv[i]).into_owned(),
            Denied::Auth => String::from_utf8_lossy(&argv[0]).into_owned(),
        }
    }

    fn reason(self) -> &'static str {
        match self {
            Denied::Command => "command",
            Denied::Key(_) => "key",
            Denied::Channel(_) => "channel",
            Denied::Auth => "auth",
        }
    }
}

/// Where a refusal happened (ACL LOG `context`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Context {
    Toplevel,
    Multi,
    Lua,
}

impl Context {
    fn name(self) -> &'static str {
        match self {
            Context::Toplevel => "toplevel",
            Context::Multi => "multi",
            Context::Lua => "lua",
        }
    }
}

/// One ACL LOG entry; refusals alike within a minute are counted in one.
#[derive(Clone, Debug)]
pub struct LogEntry {
    pub count: u64,
    pub reason: &'static str,
    pub context: &'static str,
    pub object: String,
    pub username: String,
    pub ctime_ms: u64,
    pub client_info: String,
}

pub struct Registry {
    state: Mutex<State>,
    generation: AtomicU64,
    /// True while a new connection must authenticate: the default user has a password
    /// or is off (Redis's `authRequired`).
    default_needs_auth: AtomicBool,
    /// `acllog-max-len`.
    log_max: AtomicUsize,
}

#[derive(Default)]
struct State {
    users: BTreeMap<Vec<u8>, Arc<User>>,
    log: VecDeque<LogEntry>,
}

/// The process's users.
pub fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(|| {
        let r = Registry {
            state: Mutex::default(),
            generation: AtomicU64::new(1),
            default_needs_auth: AtomicBool::new(false),
            log_max: AtomicUsize::new(128),
        };
        r.lock()
            .users
            .insert(b"default".to_vec(), Arc::new(User::default_user()));
        r
    })
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn default_needs_auth(&self) -> bool {
        self.default_needs_auth.load(Ordering::Relaxed)
    }

    pub fn user(&self, name: &[u8]) -> Option<Arc<User>> {
        self.lock().users.get(name).cloned()
    }

    pub fn default_user(&self) -> Arc<User> {
        self.user(b"default")
            .unwrap_or_else(|| Arc::new(User::default_user()))
    }

    /// Every user, in name order.
    pub fn users(&self) -> Vec<Arc<User>> {
        self.lock().users.values().cloned().collect()
    }

    fn changed(&self, st: &State) {
        if let Some(d) = st.users.get(&b"default"[..]) {
            let open = d.enabled && d.nopass;
            self.default_needs_auth.store(!open, Ordering::Relaxed);
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// ACL SETUSER: apply `rules` to a copy of the user (a new one if absent) and put
    /// it in place if every rule applied. Returns the user before and after.
    pub fn set_user(
        &self,
        name: &[u8],
        rules: &[Bytes],
        allchannels: bool,
    ) -> Result<(Option<Arc<User>>, Arc<User>), String> {
        let merged = merge_selector_args(rules)?;
        let mut st = self.lock();
        let old = st.users.get(name).cloned();
        let mut u = match &old {
            Some(u) => (**u).clone(),
            None => User::new(&String::from_utf8_lossy(name), allchannels),
        };
        for r in &merged {
            if let Err(e) = u.apply(r, allchannels) {
                return Err(format!(
                    "Error in ACL SETUSER modifier '{}': {}",
                    String::from_utf8_lossy(r),
                    e.text()
                ));
            }
        }
        let new = Arc::new(u);
        st.users.insert(name.to_vec(), new.clone());
        self.changed(&st);
        Ok((old, new))
    }

    /// ACL DELUSER of one user; true if it existed.
    pub fn delete(&self, name: &[u8]) -> bool {
        let mut st = self.lock();
        let gone = st.users.remove(name).is_some();
        if gone {
            self.changed(&st);
        }
        gone
    }

    /// Replace every user (ACL LOAD, the start): the default user too, kept as
    /// `default_user()` if `users` lacks it.
    pub fn replace_all(&self, users: Vec<User>) {
        let mut st = self.lock();
        st.users = users
            .into_iter()
            .map(|u| (u.name.as_bytes().to_vec(), Arc::new(u)))
            .collect();
        st.users
            .entry(b"default".to_vec())
            .or_insert_with(|| Arc::new(User::default_user()));
        self.changed(&st);
    }

    /// `requirepass` (at start and by CONFIG SET): the default user's only password,
    /// or `nopass` when empty (Redis's `ACLUpdateDefaultUserPassword`).
    pub fn set_default_password(&self, password: Option<&str>) {
        let mut st = self.lock();
        let mut u = st
            .users
            .get(&b"default"[..])
            .map_or_else(User::default_user, |u| (**u).clone());
        let _ = u.apply(b"resetpass", false);
        match password {
            Some(p) => {
                let _ = u.apply(format!(">{p}").as_bytes(), false);
            }
            None => {
                let _ = u.apply(b"nopass", false);
            }
        }
        st.users.insert(b"default".to_vec(), Arc::new(u));
        self.changed(&st);
    }

    /// AUTH / HELLO AUTH: the user if it exists, is on and the password is its.
    pub fn authenticate(&self, name: &[u8], password: &[u8]) -> Option<Arc<User>> {
        let u = self.user(name)?;
        (u.enabled && u.password_ok(password)).then_some(u)
    }

    /// Record a refusal in ACL LOG (Redis's `addACLLogEntry`): alike entries of the
    /// last ten, within a minute, are counted in one, moved to the front.
    pub fn log(&self, mut entry: LogEntry) {
        let max_len = self.log_max.load(Ordering::Relaxed);
        let mut st = self.lock();
        let same = st.log.iter().take(10).position(|e| {
            e.reason == entry.reason
                && e.context == entry.context
                && e.ctime_ms.abs_diff(entry.ctime_ms) <= 60_000
                && e.object == entry.object
                && e.username == entry.username
        });
        if let Some(i) = same {
            if let Some(mut old) = st.log.remove(i) {
                old.count += 1;
                old.ctime_ms = entry.ctime_ms;
                old.client_info = std::mem::take(&mut entry.client_info);
                st.log.push_front(old);
            }
            return;
        }
        st.log.push_front(entry);
        st.log.truncate(max_len);
    }

    /// `acllog-max-len` (at start and by CONFIG SET): entries past it are dropped.
    pub fn set_log_max(&self, n: i64) {
        self.log_max.store(n.max(0) as usize, Ordering::Relaxed);
        let mut st = self.lock();
        st.log.truncate(n.max(0) as usize);
    }

    pub fn log_entries(&self, count: usize) -> Vec<LogEntry> {
        self.lock().log.iter().take(count).cloned().collect()
    }

    pub fn log_reset(&self) {
        self.lock().log.clear();
    }
}

/// A new log entry for a refusal of `user` (`object` as [`Denied::object`]).
pub fn entry(
    denied: Denied,
    context: Context,
    object: String,
    username: &str,
    client_info: String,
) -> LogEntry {
    LogEntry {
        count: 1,
        reason: denied.reason(),
        context: context.name(),
        object,
        username: username.to_string(),
        ctime_ms: crate::clock::now_ms(),
        client_info,
    }
}

/// Join `(` ... `)` arguments of a selector given as several words (Redis's
/// `ACLMergeSelectorArguments`).
pub fn merge_selector_args(args: &[Bytes]) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    let mut open: Option<(usize, Vec<u8>)> = None;
    for (j, a) in args.iter().enumerate() {
        if let Some((_, sel)) = open.as_mut() {
            sel.push(b' ');
            sel.extend_from_slice(a);
            if a.ends_with(b")") {
                out.push(open.take().map(|(_, s)| s).unwrap_or_default());
            }
            continue;
        }
        if a.starts_with(b"(") && !a.ends_with(b")") {
            open = Some((j, a.to_vec()));
            continue;
        }
        out.push(a.to_vec());
    }
    if let Some((j, _)) = open {
        return Err(format!(
            "Unmatched parenthesis in acl selector starting at '{}'.",
            String::from_utf8_lossy(&args[j])
        ));
    }
    Ok(out)
}

/// Access a key spec's flags ask for: `access` reads, `insert`/`update`/`delete` write.
fn needed_access(flags: &[&str]) -> u8 {
    let mut need = 0;
    for f in flags {
        match *f {
            "access" => need |= user::READ,
            "insert" | "update" | "delete" => need |= user::WRITE,
            _ => {}
        }
    }
    need
}

/// The channels of a Pub/Sub command that ACLs check: (argument index, is a pattern).
fn channels(cmd: &Command, argc: usize) -> Vec<(usize, bool)> {
    match cmd.name {
        "subscribe" | "ssubscribe" => (1..argc).map(|i| (i, false)).collect(),
        "psubscribe" => (1..argc).map(|i| (i, true)).collect(),
        "publish" | "spublish" if argc > 1 => vec![(1, false)],
        _ => Vec::new(),
    }
}

/// May `user` run `argv` as `cmd`? (Redis's `ACLCheckAllUserCommandPerm`.)
pub fn check(user: &User, cmd: &'static Command, argv: &[Bytes]) -> Result<(), Denied> {
    if user.unrestricted() {
        return Ok(());
    }
    let mut keys = None;
    let mut worst = Denied::Command;
    for s in &user.selectors {
        match check_selector(s, cmd, argv, &mut keys) {
            Ok(()) => return Ok(()),
            Err(d) if d > worst => worst = d,
            Err(_) => {}
        }
    }
    Err(worst)
}

/// One selector's verdict; `keys` caches the command's keys and the access each needs
/// across selectors.
fn check_selector(
    s: &user::Selector,
    cmd: &'static Command,
    argv: &[Bytes],
    keys: &mut Option<Vec<(usize, u8)>>,
) -> Result<(), Denied> {
    let id = universe::Universe::get().id(cmd.name.as_bytes());
    if !id.is_some_and(|id| s.allows_command(id, argv)) {
        return Err(Denied::Command);
    }
    if !s.allkeys {
        let keys = keys.get_or_insert_with(|| {
            crate::commands::server::keys_with_flags(cmd, argv)
                .into_iter()
                .map(|(i, f)| (i, needed_access(&f)))
                .collect()
        });
        if let Some(&(i, _)) = keys
            .iter()
            .find(|(i, need)| !s.allows_key(&argv[*i], *need))
        {
            return Err(Denied::Key(i));
        }
    }
    if !s.allchannels {
        let refused = channels(cmd, argv.len())
            .into_iter()
            .find(|&(i, pattern)| !s.allows_channel(&argv[i], pattern));
        if let Some((i, _)) = refused {
            return Err(Denied::Channel(i));
        }
    }
    Ok(())
}

/// SORT's BY (with a pattern) and GET read keys its key spec does not name: Redis
/// allows them only to a user that may read every key with this command (a selector
/// allowing the command with `allkeys` or a `*` read pattern). The error SORT gives
/// otherwise, found by reading its options as SORT does (up to a syntax error, which
/// SORT itself reports).
pub fn sort_refusal(user: &User, cmd: &'static Command, argv: &[Bytes]) -> Option<&'static str> {
    if !matches!(cmd.name, "sort" | "sort_ro") || user.unrestricted() || crate::cluster::enabled() {
        return None;
    }
    let full = user.selectors.iter().any(|s| {
        check_selector(s, cmd, argv, &mut None).is_ok()
            && (s.allkeys
                || s.patterns
                    .iter()
                    .any(|(p, f)| p == b"*" && f & user::READ != 0))
    });
    if full {
        return None;
    }
    let mut j = 2;
    while j < argv.len() {
        let left = argv.len() - j - 1;
        let a = argv[j].to_ascii_lowercase();
        match &a[..] {
            b"asc" | b"desc" | b"alpha" => {}
            b"limit" if left >= 2 => {
                let int = |b: &Bytes| crate::commands::args::int(b).is_ok();
                if !int(&argv[j + 1]) || !int(&argv[j + 2]) {
                    return None;
                }
                j += 2;
            }
            b"store" if cmd.name == "sort" && left >= 1 => j += 1,
            b"by" if left >= 1 => {
                if argv[j + 1].contains(&b'*') {
                    return Some(
                        "ERR BY option of SORT denied due to insufficient ACL permissions.",
                    );
                }
                j += 1;
            }
            b"get" if left >= 1 => {
                return Some("ERR GET option of SORT denied due to insufficient ACL permissions.")
            }
            _ => return None,
        }
        j += 1;
    }
    None
}

/// May `user` subscribe to (or have) this channel or pattern?
pub fn channel_allowed(user: &User, channel: &[u8], pattern: bool) -> bool {
    user.selectors
        .iter()
        .any(|s| s.allows_channel(channel, pattern))
}

/// Read the users at start: `user` lines of the config file, or the ACL file, then
/// `requirepass` (Redis's `ACLLoadUsersAtStartup`). An error is fatal.
pub fn init(config: &crate::config::Config) -> Result<(), String> {
    let aclfile = config.get("aclfile").unwrap_or("");
    let allchannels = config.get("acl-pubsub-default") == Some("allchannels");
    if !aclfile.is_empty() && !config.users.is_empty() {
        return Err(
            "Configuring Redis with users defined in redis.conf and at the same setting \
                    an ACL file path is invalid. This setup is very likely to lead to \
                    configuration errors and security holes, please define either an ACL file \
                    or declare users directly in your redis.conf, but not both."
                .into(),
        );
    }
    let r = registry();
    r.set_log_max(config.get_int("acllog-max-len"));
    if let Some(p) = config.requirepass.as_deref() {
        r.set_default_password(Some(p));
    }
    let mut users: Vec<User> = vec![(*r.default_user()).clone()];
    for line in &config.users {
        let name = &line[0];
        if has_spaces_str(name) {
            crate::log::warning("Spaces not allowed in ACL usernames");
            return Err(CRITICAL.into());
        }
        if users[1..].iter().any(|u| u.name == *name) {
            return Err(format!(
                "Error in user declaration '{name}': Duplicate user found. A user can only be \
                 defined once in config files"
            ));
        }
        let mut u = match users.iter().position(|u| u.name == *name) {
            Some(0) => {
                let mut d = users.remove(0);
                let _ = d.apply(b"reset", allchannels);
                d
            }
            _ => User::new(name, allchannels),
        };
        let args: Vec<Bytes> = line[1..].iter().map(|a| Bytes::from(a.clone())).collect();
        for rule in merge_selector_args(&args)? {
            if let Err(e) = u.apply(&rule, allchannels) {
                crate::log::warning(&format!(
                    "Error loading ACL rule '{}' for the user named '{name}': {}",
                    String::from_utf8_lossy(&rule),
                    e.text()
                ));
                return Err(CRITICAL.into());
            }
        }
        if !u.enabled {
            crate::log::log(&format!(
                "The user '{name}' is disabled (there is no 'on' modifier in the user \
                 description). Make sure this is not a configuration error."
            ));
        }
        users.push(u);
    }
    r.replace_all(users);
    if !aclfile.is_empty() {
        load_file(aclfile, &config.dir, allchannels)
            .map_err(|e| format!("Aborting Redis startup because of ACL errors: {e}"))?;
    }
    Ok(())
}

const CRITICAL: &str = "Critical error while loading ACLs. Exiting.";

fn has_spaces_str(s: &str) -> bool {
    user::has_spaces(s.as_bytes())
}

/// ACL LOAD (and the start): every user from the ACL file, or an error naming each
/// problem and nothing changed (Redis's `ACLLoadFromFile`).
pub fn load_file(path: &str, dir: &str, allchannels: bool) -> Result<(), String> {
    let text = std::fs::read(in_dir(dir, path)).map_err(|e| {
        format!(
            "Error loading ACLs, opening file '{path}': {}",
            crate::log::strerror(&e)
        )
    })?;
    let mut errors = String::new();
    let mut users: Vec<User> = Vec::new();
    for (i, raw) in text.split(|&b| b == b'\n').enumerate() {
        let linenum = i + 1;
        let line = trim(raw, b" \t\r\n");
        if line.is_empty() {
            continue;
        }
        let argv: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
        if argv[0] != b"user" || argv.len() < 2 {
            errors.push_str(&format!(
                "{path}:{linenum} should start with user keyword followed by the username. "
            ));
            continue;
        }
        let name = String::from_utf8_lossy(argv[1]).into_owned();
        if user::has_spaces(argv[1]) || argv[1].is_empty() {
            errors.push_str(&format!(
                "'{path}:{linenum}: username '{name}' contains invalid characters. "
            ));
            continue;
        }
        if users.iter().any(|u| u.name == name) {
            errors.push_str(&format!(
                "WARNING: Duplicate user '{name}' found on line {linenum}. "
            ));
            continue;
        }
        let mut u = User::new(&name, allchannels);
        let args: Vec<Bytes> = argv[2..]
            .iter()
            .map(|a| Bytes::copy_from_slice(a))
            .collect();
        let rules = match merge_selector_args(&args) {
            Ok(r) => r,
            Err(_) => {
                errors.push_str(&format!(
                    "{path}:{linenum}: Unmatched parenthesis in selector definition."
                ));
                Vec::new()
            }
        };
        let mut syntax_error = false;
        for rule in rules {
            let rule = trim(&rule, b"\t\r\n");
            if let Err(e) = u.apply(rule, allchannels) {
                if e == RuleError::Unknown {
                    errors.push_str(&format!(
                        "{path}:{linenum}: Error in applying operation '{}': {}. ",
                        String::from_utf8_lossy(rule),
                        e.text()
                    ));
                } else if !syntax_error {
                    errors.push_str(&format!("{path}:{linenum}: {}. ", e.text()));
                    syntax_error = true;
                }
            }
        }
        users.push(u);
    }
    if !errors.is_empty() {
        errors.push_str(
            "WARNING: ACL errors detected, no change to the previously active ACL rules was \
             performed",
        );
        return Err(errors);
    }
    registry().replace_all(users);
    Ok(())
}

fn trim<'a>(s: &'a [u8], set: &[u8]) -> &'a [u8] {
    let start = s.iter().position(|b| !set.contains(b)).unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !set.contains(b))
        .map_or(start, |e| e + 1);
    &s[start..end.max(start)]
}

/// ACL SAVE: every user as a `user` line, written whole or not at all.
pub fn save_file(path: &str, dir: &str) -> std::io::Result<()> {
    let mut text = String::new();
    for u in registry().users() {
        text.push_str(&format!("user {} {}\n", u.name, u.describe()));
    }
    crate::atomic_file::replace(&in_dir(dir, path), &text)
}

/// A relative `aclfile` names a file in `dir`, as Redis, which works in `dir`, opens
/// it (error messages name it as configured).
fn in_dir(dir: &str, path: &str) -> String {
    std::path::Path::new(dir).join(path).display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_words_are_merged() {
        let args: Vec<Bytes> = ["on", "(+get", "~x*)", "(+set)"]
            .iter()
            .map(|s| Bytes::from(*s))
            .collect();
        let m = merge_selector_args(&args).unwrap();
        assert_eq!(
            m,
            vec![b"on".to_vec(), b"(+get ~x*)".to_vec(), b"(+set)".to_vec()]
        );
        let bad: Vec<Bytes> = vec![Bytes::from("(+get")];
        assert_eq!(
            merge_selector_args(&bad).unwrap_err(),
            "Unmatched parenthesis in acl selector starting at '(+get'."
        );
    }

    #[test]
    fn the_most_telling_refusal_wins() {
        let mut u = User::new("u", false);
        for r in ["on", "+get", "~a*", "(+set ~b*)"] {
            u.apply(r.as_bytes(), false).unwrap();
        }
        let get = crate::commands::lookup(b"get").unwrap();
        let set = crate::commands::lookup(b"set").unwrap();
        let argv = |a: &[&str]| {
            a.iter()
                .map(|s| Bytes::from(s.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(check(&u, get, &argv(&["get", "a1"])), Ok(()));
        assert_eq!(check(&u, get, &argv(&["get", "b1"])), Err(Denied::Key(1)));
        assert_eq!(check(&u, set, &argv(&["set", "b1", "v"])), Ok(()));
        assert_eq!(
            check(&u, set, &argv(&["set", "a1", "v"])),
            Err(Denied::Key(1))
        );
        let publish = crate::commands::lookup(b"publish").unwrap();
        assert_eq!(
            check(&u, publish, &argv(&["publish", "c", "m"])),
            Err(Denied::Command)
        );
    }
}
