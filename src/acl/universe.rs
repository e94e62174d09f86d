//! The commands ACL rules name, with the id of each one's permission bit: every command
//! and subcommand Redis 7.0 has (`commands::meta`), so a rule naming one Shardis does
//! not serve yet (`+lolwut`) is accepted as Redis accepts it, and category rules cover
//! the same commands as Redis's, which makes the descriptions that pick categories by
//! counting them (`Selector::describe_commands`) come out the same. In Sentinel mode,
//! the commands a Sentinel serves, as redis-sentinel's.

use std::collections::HashMap;
use std::sync::OnceLock;

/// Redis's categories, in the order its replies list them, with their bits.
pub const CATEGORIES: [(&str, u32); 21] = [
    ("keyspace", 1 << 0),
    ("read", 1 << 1),
    ("write", 1 << 2),
    ("set", 1 << 3),
    ("sortedset", 1 << 4),
    ("list", 1 << 5),
    ("hash", 1 << 6),
    ("string", 1 << 7),
    ("bitmap", 1 << 8),
    ("hyperloglog", 1 << 9),
    ("geo", 1 << 10),
    ("stream", 1 << 11),
    ("pubsub", 1 << 12),
    ("admin", 1 << 13),
    ("fast", 1 << 14),
    ("slow", 1 << 15),
    ("blocking", 1 << 16),
    ("dangerous", 1 << 17),
    ("connection", 1 << 18),
    ("transaction", 1 << 19),
    ("scripting", 1 << 20),
];

pub struct Universe {
    /// Full names (`config|get`) by id.
    pub names: Vec<&'static str>,
    /// Category bits by id.
    pub cats: Vec<u32>,
    /// `no_auth` commands (AUTH, HELLO): never refused.
    pub no_auth: Vec<bool>,
    /// A subcommand's container.
    pub parent: Vec<Option<usize>>,
    /// A container's subcommands.
    pub subs: Vec<Vec<usize>>,
    /// Ids in the order descriptions and ACL CAT list them: by name, each container
    /// followed by its subcommands.
    pub order: Vec<usize>,
    ids: HashMap<&'static str, usize>,
}

impl Universe {
    pub fn get() -> &'static Universe {
        static U: OnceLock<Universe> = OnceLock::new();
        U.get_or_init(build)
    }

    /// Number of commands (the "future commands" bit is this id).
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The id of a command by lower-case full name.
    pub fn id(&self, lower: &[u8]) -> Option<usize> {
        let name = std::str::from_utf8(lower).ok()?;
        self.ids.get(name).copied()
    }
}

/// A command's name, category words (with or without `@`) and whether it is `no_auth`.
type Entry = (&'static str, Vec<&'static str>, bool);

/// Redis 7.0's commands from its metadata; in Sentinel mode the commands a Sentinel
/// serves, as redis-sentinel's ACL knows only its own table.
fn entries() -> Vec<Entry> {
    if crate::sentinel::enabled() {
        return crate::commands::families()
            .flat_map(|c| std::iter::once(c).chain(c.subcommands.iter()))
            .map(|c| {
                let words = c.acl.split_whitespace().collect();
                (c.name, words, c.has_flag(crate::commands::flag::NO_AUTH))
            })
            .collect();
    }
    crate::commands::meta::all()
        .iter()
        .map(|(&name, m)| (name, m.words(6), m.words(2).contains(&"no_auth")))
        .collect()
}

fn build() -> Universe {
    let mut all = entries();
    let key = |n: &'static str| n.split_once('|').unwrap_or((n, ""));
    all.sort_by(|a, b| key(a.0).cmp(&key(b.0)));
    let names: Vec<&'static str> = all.iter().map(|e| e.0).collect();
    let ids: HashMap<&'static str, usize> =
        names.iter().enumerate().map(|(i, &n)| (n, i)).collect();
    let mut cats = Vec::with_capacity(names.len());
    let mut no_auth = Vec::with_capacity(names.len());
    let mut parent = Vec::with_capacity(names.len());
    let mut subs = vec![Vec::new(); names.len()];
    for (id, (name, words, open)) in all.iter().enumerate() {
        let bits = words.iter().fold(0, |acc, w| {
            let w = w.trim_start_matches('@');
            acc | CATEGORIES
                .iter()
                .find(|(n, _)| *n == w)
                .map_or(0, |&(_, b)| b)
        });
        cats.push(bits);
        no_auth.push(*open);
        let p = name.split_once('|').and_then(|(c, _)| ids.get(c).copied());
        if let Some(p) = p {
            subs[p].push(id);
        }
        parent.push(p);
    }
    Universe {
        order: (0..names.len()).collect(),
        names,
        cats,
        no_auth,
        parent,
        subs,
        ids,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_every_redis_command_with_its_categories() {
        let u = Universe::get();
        let get = u.id(b"get").unwrap();
        assert_eq!(u.cats[get], 1 << 1 | 1 << 7 | 1 << 14);
        let cfg = u.id(b"config").unwrap();
        let cfg_get = u.id(b"config|get").unwrap();
        assert_eq!(u.parent[cfg_get], Some(cfg));
        assert!(u.subs[cfg].contains(&cfg_get));
        assert!(u.no_auth[u.id(b"auth").unwrap()]);
        assert!(u.id(b"lolwut").is_some());
        // Each container just before its subcommands.
        let at = |id| u.order.iter().position(|&x| x == id).unwrap();
        assert!(at(cfg) + 1 == u.subs[cfg].iter().map(|&s| at(s)).min().unwrap());
    }
}
