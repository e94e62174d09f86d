//! An ACL user and its selectors: the rules of ACL SETUSER applied one by one, and
//! described back in the words ACL LIST, ACL GETUSER and the ACL file use.
//!
//! A user is a set of flags (`on`/`off`, `nopass`, the payload sanitizing choice), its
//! passwords (SHA-256, hex) and one or more selectors: the root one, which the plain
//! rules change, and the `(...)` ones added after it. A command is allowed when any
//! selector allows it whole (the command, every key with the access it needs, every
//! channel). A selector holds one bit per command of [`Universe`] plus one for the
//! commands "yet to come" (Redis's last bit: set by `+@all`, what makes a description
//! start from `+@all`), the first arguments allowed for commands otherwise refused
//! (`+select|0`), key patterns with their read/write permission, and channel patterns.

use super::universe::{Universe, CATEGORIES};
use crate::storage::glob::glob_match;
use std::fmt::Write;

/// Read and write permissions of a key pattern (`%R~`, `%W~`, `~` = both).
pub const READ: u8 = 1;
pub const WRITE: u8 = 2;

#[derive(Clone, Debug, PartialEq)]
pub struct Selector {
    pub root: bool,
    pub allkeys: bool,
    pub allchannels: bool,
    pub allcommands: bool,
    /// One bit per command id, and the "future commands" bit last.
    bits: Vec<u64>,
    /// Command id -> first arguments allowed although the command's bit is clear.
    firstargs: Vec<(usize, Vec<String>)>,
    /// Key patterns in the order given, each with [`READ`] / [`WRITE`].
    pub patterns: Vec<(Vec<u8>, u8)>,
    pub channels: Vec<Vec<u8>>,
}

/// Why a rule was refused: Redis's `ACLSetUserStringError` texts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RuleError {
    Unknown,
    Syntax,
    KeyAfterAll,
    ChannelAfterAll,
    NoSuchPassword,
    BadHash,
    FirstArgOfSub,
}

impl RuleError {
    pub fn text(self) -> &'static str {
        match self {
            RuleError::Unknown => "Unknown command or category name in ACL",
            RuleError::Syntax => "Syntax error",
            RuleError::KeyAfterAll => {
                "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid \
                 and does not have any effect. Try 'resetkeys' to start with an empty list of \
                 patterns"
            }
            RuleError::ChannelAfterAll => {
                "Adding a pattern after the * pattern (or the 'allchannels' flag) is not \
                 valid and does not have any effect. Try 'resetchannels' to start with an \
                 empty list of channels"
            }
            RuleError::NoSuchPassword => {
                "The password you are trying to remove from the user does not exist"
            }
            RuleError::BadHash => {
                "The password hash must be exactly 64 characters and contain only lowercase \
                 hexadecimal characters"
            }
            RuleError::FirstArgOfSub => "Allowing first-arg of a subcommand is not supported",
        }
    }
}

/// True if `s` has a space or a NUL (Redis's `ACLStringHasSpaces`).
pub fn has_spaces(s: &[u8]) -> bool {
    s.iter().any(|&b| b == b' ' || b == 0)
}

impl Selector {
    pub fn new(root: bool, allchannels: bool) -> Selector {
        let n = Universe::get().len() + 1;
        Selector {
            root,
            allkeys: false,
            allchannels,
            allcommands: false,
            bits: vec![0; n.div_ceil(64)],
            firstargs: Vec::new(),
            patterns: Vec::new(),
            channels: Vec::new(),
        }
    }

    pub fn bit(&self, id: usize) -> bool {
        self.bits[id / 64] & (1 << (id % 64)) != 0
    }

    fn set_bit(&mut self, id: usize, on: bool) {
        if on {
            self.bits[id / 64] |= 1 << (id % 64);
        } else {
            self.bits[id / 64] &= !(1 << (id % 64));
            self.allcommands = false;
        }
    }

    fn future_bit(&self) -> bool {
        self.bit(Universe::get().len())
    }

    /// Allow or deny a command and its subcommands (Redis's `ACLChangeSelectorPerm`).
    fn change(&mut self, id: usize, allow: bool) {
        self.set_bit(id, allow);
        self.firstargs.retain(|(c, _)| *c != id);
        for &sub in &Universe::get().subs[id] {
            self.set_bit(sub, allow);
        }
    }

    fn change_category(&mut self, cat: u32, allow: bool) {
        let u = Universe::get();
        for id in 0..u.len() {
            if u.cats[id] & cat != 0 {
                self.change(id, allow);
            }
        }
    }

    fn all_commands(&mut self, allow: bool) {
        let fill = if allow { u64::MAX } else { 0 };
        self.bits.iter_mut().for_each(|w| *w = fill);
        self.allcommands = allow;
        self.firstargs.clear();
    }

    /// Apply one selector rule (Redis's `ACLSetSelector`).
    pub fn apply(&mut self, op: &[u8]) -> Result<(), RuleError> {
        let lower = op.to_ascii_lowercase();
        match &lower[..] {
            b"allkeys" | b"~*" => {
                self.allkeys = true;
                self.patterns.clear();
            }
            b"resetkeys" => {
                self.allkeys = false;
                self.patterns.clear();
            }
            b"allchannels" | b"&*" => {
                self.allchannels = true;
                self.channels.clear();
            }
            b"resetchannels" => {
                self.allchannels = false;
                self.channels.clear();
            }
            b"allcommands" | b"+@all" => self.all_commands(true),
            b"nocommands" | b"-@all" => self.all_commands(false),
            _ => match op[0] {
                b'~' | b'%' => self.add_key_pattern(op)?,
                b'&' => {
                    if self.allchannels {
                        return Err(RuleError::ChannelAfterAll);
                    }
                    if has_spaces(&op[1..]) {
                        return Err(RuleError::Syntax);
                    }
                    if !self.channels.iter().any(|c| c[..] == op[1..]) {
                        self.channels.push(op[1..].to_vec());
                    }
                    self.allchannels = false;
                }
                b'+' | b'-' if op.get(1) == Some(&b'@') => {
                    let cat = category(&lower[2..]).ok_or(RuleError::Unknown)?;
                    self.change_category(cat, op[0] == b'+');
                }
                b'+' => self.allow_command(&lower[1..], &op[1..])?,
                b'-' => {
                    let id = Universe::get().id(&lower[1..]).ok_or(RuleError::Unknown)?;
                    self.change(id, false);
                }
                _ => return Err(RuleError::Syntax),
            },
        }
        Ok(())
    }

    fn add_key_pattern(&mut self, op: &[u8]) -> Result<(), RuleError> {
        if self.allkeys {
            return Err(RuleError::KeyAfterAll);
        }
        let (mut flags, mut offset) = (0u8, 1);
        if op[0] == b'%' {
            loop {
                match op.get(offset).map(u8::to_ascii_uppercase) {
                    Some(b'R') if flags & READ == 0 => flags |= READ,
                    Some(b'W') if flags & WRITE == 0 => flags |= WRITE,
                    Some(b'~') => {
                        offset += 1;
                        break;
                    }
                    // (Redis accepts `%RW` with no `~` as an empty pattern.)
                    None => break,
                    _ => return Err(RuleError::Syntax),
                }
                offset += 1;
            }
        } else {
            flags = READ | WRITE;
        }
        let pattern = &op[offset.min(op.len())..];
        if has_spaces(pattern) {
            return Err(RuleError::Syntax);
        }
        match self.patterns.iter_mut().find(|(p, _)| p[..] == *pattern) {
            Some((_, f)) => *f |= flags,
            None => self.patterns.push((pattern.to_vec(), flags)),
        }
        self.allkeys = false;
        Ok(())
    }

    /// `+cmd`, `+container|sub`, or `+cmd|firstarg` (deprecated by Redis, still served).
    fn allow_command(&mut self, lower: &[u8], given: &[u8]) -> Result<(), RuleError> {
        let u = Universe::get();
        let Some(bar) = lower.iter().rposition(|&b| b == b'|') else {
            let id = u.id(lower).ok_or(RuleError::Unknown)?;
            self.change(id, true);
            return Ok(());
        };
        let id = u.id(&lower[..bar]).ok_or(RuleError::Unknown)?;
        if u.parent[id].is_some() {
            return Err(RuleError::FirstArgOfSub);
        }
        if bar + 1 == lower.len() {
            return Err(RuleError::Syntax);
        }
        if !u.subs[id].is_empty() {
            let sub = u.id(lower).ok_or(RuleError::Unknown)?;
            self.change(sub, true);
            return Ok(());
        }
        crate::log::warning(&format!(
            "Deprecation warning: Allowing a first arg of an otherwise blocked command is a \
             misuse of ACL and may get disabled in the future (offender: +{})",
            String::from_utf8_lossy(given)
        ));
        let arg = String::from_utf8_lossy(&given[bar + 1..]).into_owned();
        match self.firstargs.iter_mut().find(|(c, _)| *c == id) {
            Some((_, args)) => {
                if !args.iter().any(|a| a.eq_ignore_ascii_case(&arg)) {
                    args.push(arg);
                }
            }
            None => self.firstargs.push((id, vec![arg])),
        }
        Ok(())
    }

    /// May this selector run command `id` with these arguments (bits and first args)?
    pub fn allows_command(&self, id: usize, argv: &[bytes::Bytes]) -> bool {
        if self.allcommands || self.bit(id) || Universe::get().no_auth[id] {
            return true;
        }
        let Some((_, args)) = self.firstargs.iter().find(|(c, _)| *c == id) else {
            return false;
        };
        let idx = if Universe::get().parent[id].is_some() {
            2
        } else {
            1
        };
        argv.get(idx)
            .is_some_and(|a| args.iter().any(|x| x.as_bytes().eq_ignore_ascii_case(a)))
    }

    /// May this selector touch `key` with the access `need` ([`READ`] | [`WRITE`])?
    pub fn allows_key(&self, key: &[u8], need: u8) -> bool {
        self.allkeys
            || self
                .patterns
                .iter()
                .any(|(p, f)| f & need == need && glob_match(p, key, false))
    }

    /// May this selector use `channel` (a pattern itself when `pattern`: then only an
    /// identical pattern allows it, as Redis checks PSUBSCRIBE)?
    pub fn allows_channel(&self, channel: &[u8], pattern: bool) -> bool {
        self.allchannels
            || self.channels.iter().any(|p| {
                if pattern {
                    p[..] == *channel
                } else {
                    glob_match(p, channel, false)
                }
            })
    }

    /// The command rules, as Redis writes them: from `+@all` or `-@all`, the categories
    /// that get closest (each chosen greedily: fewest commands to correct, then most
    /// commands matched), then the commands that still differ, and allowed first args.
    pub fn describe_commands(&self) -> String {
        let u = Universe::get();
        let additive = !self.future_bit();
        let mut rules = String::from(if additive { "-@all " } else { "+@all " });
        let mut fake = Selector::new(false, false);
        fake.all_commands(!additive);
        let mut temp = self.clone();
        let mut applied = [false; CATEGORIES.len()];
        loop {
            let mut best = None;
            let (mut mindiff, mut maxsame) = (usize::MAX, 0);
            for (j, &(_, cat)) in CATEGORIES.iter().enumerate() {
                if applied[j] {
                    continue;
                }
                let (mut on, mut off) = (0, 0);
                for id in (0..u.len()).filter(|&id| u.cats[id] & cat != 0) {
                    if temp.bit(id) {
                        on += 1;
                    } else {
                        off += 1;
                    }
                }
                let (diff, same) = if additive { (off, on) } else { (on, off) };
                if same > diff && (diff < mindiff || (diff == mindiff && same > maxsame)) {
                    best = Some(j);
                    mindiff = diff;
                    maxsame = same;
                }
            }
            let Some(j) = best else { break };
            let (name, cat) = CATEGORIES[j];
            fake.change_category(cat, additive);
            temp.change_category(cat, !additive);
            let _ = write!(rules, "{}@{name} ", if additive { '+' } else { '-' });
            applied[j] = true;
        }
        for &id in &u.order {
            let mine = self.bit(id);
            if mine != fake.bit(id) {
                let _ = write!(rules, "{}{} ", if mine { '+' } else { '-' }, u.names[id]);
                fake.change(id, mine);
            }
            if !mine {
                if let Some((_, args)) = self.firstargs.iter().find(|(c, _)| *c == id) {
                    for a in args {
                        let _ = write!(rules, "+{}|{a} ", u.names[id]);
                    }
                }
            }
        }
        rules.pop();
        rules
    }

    /// The key patterns as GETUSER's `keys` field writes them.
    pub fn describe_keys(&self) -> String {
        if self.allkeys {
            return "~*".into();
        }
        let pats: Vec<String> = self.patterns.iter().map(pattern_text).collect();
        pats.join(" ")
    }

    /// The channel patterns as GETUSER's `channels` field writes them.
    pub fn describe_channels(&self) -> String {
        if self.allchannels {
            return "&*".into();
        }
        let pats: Vec<String> = self
            .channels
            .iter()
            .map(|c| format!("&{}", String::from_utf8_lossy(c)))
            .collect();
        pats.join(" ")
    }

    /// The whole selector in rule form (Redis's `ACLDescribeSelector`).
    pub fn describe(&self) -> String {
        let mut s = String::new();
        if self.allkeys {
            s.push_str("~* ");
        } else {
            for p in &self.patterns {
                s.push_str(&pattern_text(p));
                s.push(' ');
            }
        }
        if self.allchannels {
            s.push_str("&* ");
        } else {
            s.push_str("resetchannels ");
            for c in &self.channels {
                let _ = write!(s, "&{} ", String::from_utf8_lossy(c));
            }
        }
        s.push_str(&self.describe_commands());
        s
    }
}

fn pattern_text((p, flags): &(Vec<u8>, u8)) -> String {
    let prefix = match *flags {
        READ => "%R~",
        WRITE => "%W~",
        _ => "~",
    };
    format!("{prefix}{}", String::from_utf8_lossy(p))
}

/// A category's bit by name (without `@`).
pub fn category(name: &[u8]) -> Option<u32> {
    CATEGORIES
        .iter()
        .find(|(n, _)| n.as_bytes().eq_ignore_ascii_case(name))
        .map(|&(_, bit)| bit)
}

/// Redis's user flags, in the order its descriptions list them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Sanitize {
    #[default]
    Unset,
    Sanitize,
    Skip,
}

#[derive(Clone, Debug, PartialEq)]
pub struct User {
    pub name: String,
    pub enabled: bool,
    pub nopass: bool,
    pub sanitize: Sanitize,
    /// SHA-256 of each password, lower-case hex, in the order added.
    pub passwords: Vec<String>,
    /// The root selector first.
    pub selectors: Vec<Selector>,
}

impl User {
    /// A new user: off, no password, no keys, no commands; channels as
    /// `acl-pubsub-default` says.
    pub fn new(name: &str, allchannels: bool) -> User {
        User {
            name: name.to_string(),
            enabled: false,
            nopass: false,
            sanitize: Sanitize::Unset,
            passwords: Vec::new(),
            selectors: vec![Selector::new(true, allchannels)],
        }
    }

    /// The `default` user as Redis creates it: everything allowed, no password.
    pub fn default_user() -> User {
        let mut u = User::new("default", false);
        for op in ["+@all", "~*", "&*", "on", "nopass"] {
            let _ = u.apply(op.as_bytes(), false);
        }
        u
    }

    pub fn root(&self) -> &Selector {
        &self.selectors[0]
    }

    /// True if nothing is refused to this user: the check can be skipped. (Read
    /// before every command: the root selector first, the others only if it is not.)
    #[inline]
    pub fn unrestricted(&self) -> bool {
        let open = |s: &Selector| s.allcommands && s.allkeys && s.allchannels;
        open(&self.selectors[0]) || self.selectors[1..].iter().any(open)
    }

    /// Apply one rule (Redis's `ACLSetUser`); `allchannels` is `acl-pubsub-default`.
    pub fn apply(&mut self, op: &[u8], allchannels: bool) -> Result<(), RuleError> {
        if op.is_empty() {
            return Ok(());
        }
        let lower = op.to_ascii_lowercase();
        match &lower[..] {
            b"on" => self.enabled = true,
            b"off" => self.enabled = false,
            b"skip-sanitize-payload" => self.sanitize = Sanitize::Skip,
            b"sanitize-payload" => self.sanitize = Sanitize::Sanitize,
            b"nopass" => {
                self.nopass = true;
                self.passwords.clear();
            }
            b"resetpass" => {
                self.nopass = false;
                self.passwords.clear();
            }
            b"clearselectors" => self.selectors.truncate(1),
            b"reset" => {
                for op in ["resetpass", "resetkeys", "resetchannels"] {
                    self.apply(op.as_bytes(), allchannels)?;
                }
                if allchannels {
                    self.apply(b"allchannels", allchannels)?;
                }
                for op in ["off", "sanitize-payload", "clearselectors", "-@all"] {
                    self.apply(op.as_bytes(), allchannels)?;
                }
            }
            _ => match op[0] {
                b'>' | b'#' => {
                    let hash = password_arg(op)?;
                    if !self.passwords.contains(&hash) {
                        self.passwords.push(hash);
                    }
                    self.nopass = false;
                }
                b'<' | b'!' => {
                    let hash = password_arg(op)?;
                    let at = self.passwords.iter().position(|p| *p == hash);
                    self.passwords.remove(at.ok_or(RuleError::NoSuchPassword)?);
                }
                b'(' if op.ends_with(b")") && op.len() >= 2 => {
                    let mut s = Selector::new(false, allchannels);
                    let inner = &op[1..op.len() - 1];
                    let words = crate::protocol::parse::split_args(inner);
                    for w in words.ok_or(RuleError::Syntax)? {
                        s.apply(&w)?;
                    }
                    self.selectors.push(s);
                }
                _ => self.selectors[0].apply(op)?,
            },
        }
        Ok(())
    }

    /// The flags GETUSER lists, in Redis's order.
    pub fn flags(&self) -> Vec<&'static str> {
        let mut f = vec![if self.enabled { "on" } else { "off" }];
        if self.nopass {
            f.push("nopass");
        }
        match self.sanitize {
            Sanitize::Skip => f.push("skip-sanitize-payload"),
            Sanitize::Sanitize => f.push("sanitize-payload"),
            Sanitize::Unset => {}
        }
        f
    }

    /// The user in rule form, as ACL LIST and the ACL file write it (without `user
    /// <name> `).
    pub fn describe(&self) -> String {
        let mut s = String::new();
        for f in self.flags() {
            s.push_str(f);
            s.push(' ');
        }
        for p in &self.passwords {
            let _ = write!(s, "#{p} ");
        }
        s.push_str(&self.selectors[0].describe());
        for sel in &self.selectors[1..] {
            let _ = write!(s, " ({})", sel.describe());
        }
        s
    }

    /// True if `password` is one of this user's (or it needs none).
    pub fn password_ok(&self, password: &[u8]) -> bool {
        if self.nopass {
            return true;
        }
        let hashed = hash_password(password);
        // Compared in full each time (no early exit), as Redis's time-independent
        // comparison.
        self.passwords.iter().fold(false, |ok, p| {
            let same = p
                .bytes()
                .zip(hashed.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            ok | (same == 0 && p.len() == hashed.len())
        })
    }
}

/// The hash a `>`, `<`, `#` or `!` rule names.
fn password_arg(op: &[u8]) -> Result<String, RuleError> {
    if matches!(op[0], b'>' | b'<') {
        return Ok(hash_password(&op[1..]));
    }
    let h = &op[1..];
    if h.len() != 64
        || !h
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    {
        return Err(RuleError::BadHash);
    }
    Ok(String::from_utf8_lossy(h).into_owned())
}

/// SHA-256 of a password, lower-case hex (what Redis stores and shows).
pub fn hash_password(p: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(p);
    let mut s = String::with_capacity(64);
    for b in digest {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(rules: &[&str]) -> User {
        let mut u = User::new("u", false);
        for r in rules {
            u.apply(r.as_bytes(), false).unwrap();
        }
        u
    }

    #[test]
    fn new_and_default_users_describe_as_redis() {
        assert_eq!(
            User::new("bob", false).describe(),
            "off resetchannels -@all"
        );
        assert_eq!(User::default_user().describe(), "on nopass ~* &* +@all");
    }

    #[test]
    fn passwords_are_sha256_hex() {
        let u = user(&["on", ">p1"]);
        assert_eq!(
            u.passwords,
            ["f64551fcd6f07823cb87971cfb91446425da18286b3ab1ef935e0cbd7a69f68a"]
        );
        assert!(u.password_ok(b"p1"));
        assert!(!u.password_ok(b"p2"));
        let mut u = u;
        assert_eq!(u.apply(b"<p2", false), Err(RuleError::NoSuchPassword));
        assert_eq!(u.apply(b"#abc", false), Err(RuleError::BadHash));
        u.apply(b"<p1", false).unwrap();
        assert!(u.passwords.is_empty() && !u.password_ok(b"p1"));
    }

    #[test]
    fn commands_categories_and_first_args() {
        let u = Universe::get();
        let get = u.id(b"get").unwrap();
        let set = u.id(b"set").unwrap();
        let cfg_get = u.id(b"config|get").unwrap();
        let cfg_set = u.id(b"config|set").unwrap();
        let s = &user(&["+@read", "-@string", "+set", "+config|get"]).selectors[0];
        assert!(!s.allows_command(get, &[]) && s.allows_command(set, &[]));
        assert!(s.allows_command(cfg_get, &[]) && !s.allows_command(cfg_set, &[]));
        let s = &user(&["+@all", "-config"]).selectors[0];
        assert!(!s.allows_command(cfg_get, &[]));
        assert_eq!(s.describe_commands(), "+@all -config");
        let select = u.id(b"select").unwrap();
        let s = &user(&["+select|0"]).selectors[0];
        let argv = |a: &str| {
            vec![
                bytes::Bytes::from("select"),
                bytes::Bytes::from(a.to_string()),
            ]
        };
        assert!(s.allows_command(select, &argv("0")) && !s.allows_command(select, &argv("1")));
        assert_eq!(s.describe_commands(), "-@all +select|0");
        let mut bad = User::new("b", false);
        assert_eq!(bad.apply(b"+nosuch", false), Err(RuleError::Unknown));
        assert_eq!(bad.apply(b"+@nosuch", false), Err(RuleError::Unknown));
        assert_eq!(
            bad.apply(b"+config|get|x", false),
            Err(RuleError::FirstArgOfSub)
        );
        assert_eq!(bad.apply(b"+get|", false), Err(RuleError::Syntax));
        assert_eq!(bad.apply(b"bogus", false), Err(RuleError::Syntax));
    }

    #[test]
    fn keys_and_channels() {
        let s = &user(&["~k*", "%R~r*", "%W~w*", "&ch*"]).selectors[0];
        assert!(s.allows_key(b"k1", READ | WRITE));
        assert!(s.allows_key(b"r1", READ) && !s.allows_key(b"r1", WRITE));
        assert!(s.allows_key(b"w1", WRITE) && !s.allows_key(b"w1", READ));
        assert!(s.allows_channel(b"chan", false) && !s.allows_channel(b"other", false));
        assert!(s.allows_channel(b"ch*", true) && !s.allows_channel(b"c*", true));
        assert_eq!(s.describe_keys(), "~k* %R~r* %W~w*");
        let mut u = user(&["~*"]);
        assert_eq!(u.apply(b"~x", false), Err(RuleError::KeyAfterAll));
        u.apply(b"&*", false).unwrap();
        assert_eq!(u.apply(b"&x", false), Err(RuleError::ChannelAfterAll));
        // The same pattern twice merges its permissions.
        let s = &user(&["%R~a", "%W~a"]).selectors[0];
        assert_eq!(s.patterns, vec![(b"a".to_vec(), READ | WRITE)]);
    }

    #[test]
    fn selectors_and_reset() {
        let u = user(&[
            "on",
            "nopass",
            "~*",
            "&*",
            "+@all",
            "-@dangerous",
            "(+get ~x*)",
        ]);
        assert_eq!(
            u.describe(),
            "on nopass ~* &* +@all -@dangerous (~x* resetchannels -@all +get)"
        );
        let mut u = u;
        u.apply(b"reset", false).unwrap();
        assert_eq!(u.describe(), "off sanitize-payload resetchannels -@all");
    }
}
