//! Redis 7.0's per-command metadata: what COMMAND DOCS says of a command (summary,
//! since, group, complexity, doc_flags, deprecated_since, replaced_by, history,
//! arguments) and the key specs of COMMAND INFO, read from redis-server itself.
//!
//! Why data and not code: these replies are interface, like error texts. redis-cli
//! draws its hints from the docs' `arguments`, cluster clients (redis-py, ioredis)
//! find keys with the key specs, and what they expect is exactly what redis-server 7.0
//! says, down to a note's wording. Hand-writing ~240 commands' argument trees would
//! only create a second, drifting copy; so `tests/command_meta.rs` (`generate`,
//! ignored) asks a local redis-server 7.0 for COMMAND INFO and COMMAND DOCS over RESP3
//! and writes `meta/redis70.txt`, which is embedded here and parsed on first use.
//!
//! The file holds every command Redis 7.0 has, not only ours: implementing a command
//! needs no regeneration, and COMMAND DOCS / INFO still answer only for the commands
//! in our table (the lookups start from the table). What stays in the table is what
//! drives execution: arity, flags, first/last/step, ACL categories. COMMAND INFO
//! reports those from the table, and a test checks that they agree with the data for
//! every command we implement; the documentary fields (summary, since, group,
//! complexity, history, arguments..., the tips, the key specs) exist only here, so
//! there is one copy of them.
//!
//! `meta/extra.txt`, in the same notation, holds the few commands we implement that
//! Redis 7.0 lacks (CLIENT SETINFO, CLIENT NO-TOUCH: Redis 7.2's), written by hand.
//!
//! The format: one command a line, `<name> <INFO entry> <DOCS map>`, the INFO entry
//! being COMMAND INFO's first nine fields and the DOCS map lacking `subcommands` (both
//! are rebuilt from our table, since we may implement only some subcommands). A value
//! is written as RESP3 would type it: `[..]` an array, `{k v ..}` a map, `<..>` a set,
//! `+word` a status, a bare integer an integer, and a bulk string either bare (no
//! space, no bracket, quote or backslash, not a number, not starting with `+`/`-`) or
//! in double quotes with `\"`, `\\`, `\n`, `\r`, `\t` escapes.
//!
//! Cost: nothing at start-up. The 175 KB of text (24 KB compressed in git) is parsed,
//! once, by the first COMMAND DOCS / INFO / GETKEYS (3-5 ms measured in the dev build,
//! a first `COMMAND DOCS get` against 0.1 ms for the next), bare strings borrowed
//! from the embedded text; a reply clones the parsed tree (reference counts for the
//! strings).

use crate::protocol::Reply;
use bytes::Bytes;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::OnceLock;

static DATA: &str = include_str!("meta/redis70.txt");
/// The commands we implement that Redis 7.0 lacks (see the file's header).
static EXTRA: &str = include_str!("meta/extra.txt");

/// What Redis 7.0 says of one command (subcommands are `container|sub`).
pub struct Meta {
    /// COMMAND INFO's first nine fields: name, arity, flags, first, last, step, ACL
    /// categories, tips, key specs.
    pub info: Vec<Reply>,
    /// COMMAND DOCS's map for the command, without `subcommands`.
    pub docs: Vec<(Reply, Reply)>,
    /// The key specs, decoded for GETKEYS.
    pub key_specs: Vec<KeySpec>,
}

impl Meta {
    pub fn arity(&self) -> i64 {
        int(&self.info[1])
    }
    /// Flags, ACL categories (with their `@`) or tips: fields 2, 6 and 7.
    pub fn words(&self, field: usize) -> Vec<&str> {
        match &self.info[field] {
            Reply::Set(xs) => xs.iter().map(word).collect(),
            _ => Vec::new(),
        }
    }
    /// first, last, step.
    pub fn key_range(&self) -> (i64, i64, i64) {
        (int(&self.info[3]), int(&self.info[4]), int(&self.info[5]))
    }
}

fn int(r: &Reply) -> i64 {
    match r {
        Reply::Int(i) => *i,
        _ => 0,
    }
}

fn word(r: &Reply) -> &str {
    match r {
        Reply::Status(s) => s,
        Reply::Bulk(b) => std::str::from_utf8(b).unwrap_or(""),
        _ => "",
    }
}

/// Where a key spec's search begins (Redis's `begin_search`).
#[derive(Clone, Debug, PartialEq)]
pub enum Begin {
    Index(i64),
    Keyword { keyword: Bytes, startfrom: i64 },
    Unknown,
}

/// How a key spec finds its keys from there (Redis's `find_keys`).
#[derive(Clone, Debug, PartialEq)]
pub enum Find {
    Range {
        lastkey: i64,
        keystep: i64,
        limit: i64,
    },
    Keynum {
        keynumidx: i64,
        firstkey: i64,
        keystep: i64,
    },
    Unknown,
}

#[derive(Clone, Debug, PartialEq)]
pub struct KeySpec {
    /// The flags as COMMAND INFO writes them (`RW`, `access`, `update`...).
    pub flags: Vec<&'static str>,
    pub begin: Begin,
    pub find: Find,
}

impl KeySpec {
    pub fn has_flag(&self, f: &str) -> bool {
        self.flags.contains(&f)
    }
}

/// Redis 7.0's metadata for `name` (lower case, `container|sub` for a subcommand).
pub fn get(name: &str) -> Option<&'static Meta> {
    all().get(name)
}

/// Every command of the data file by name.
pub fn all() -> &'static HashMap<&'static str, Meta> {
    static ALL: OnceLock<HashMap<&'static str, Meta>> = OnceLock::new();
    ALL.get_or_init(|| {
        let mut all = parse_file(DATA).unwrap_or_else(|e| panic!("meta/redis70.txt: {e}"));
        for (name, m) in parse_file(EXTRA).unwrap_or_else(|e| panic!("meta/extra.txt: {e}")) {
            assert!(all.insert(name, m).is_none(), "{name} is in both files");
        }
        all
    })
}

fn parse_file(data: &'static str) -> Result<HashMap<&'static str, Meta>, String> {
    let mut out = HashMap::new();
    for (n, line) in data.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = |e: String| format!("line {}: {e}", n + 1);
        let (name, rest) = line.split_once(' ').ok_or_else(|| at("no fields".into()))?;
        let mut p = Parser { s: rest, i: 0 };
        let info = match p.value().map_err(at)? {
            Reply::Array(f) if f.len() == 9 => f,
            _ => return Err(at("INFO entry is not an array of 9".into())),
        };
        let docs = match p.value().map_err(at)? {
            Reply::Map(d) => d,
            _ => return Err(at("DOCS is not a map".into())),
        };
        p.skip_spaces();
        if p.i != rest.len() {
            return Err(at("trailing text".into()));
        }
        let key_specs = match &info[8] {
            Reply::Set(specs) | Reply::Array(specs) => specs
                .iter()
                .map(key_spec)
                .collect::<Result<_, _>>()
                .map_err(at)?,
            _ => return Err(at("key specs are not a set".into())),
        };
        out.insert(
            name,
            Meta {
                info,
                docs,
                key_specs,
            },
        );
    }
    Ok(out)
}

/// The value under `key` in a map reply.
fn field<'a>(m: &'a Reply, key: &str) -> Option<&'a Reply> {
    match m {
        Reply::Map(kv) => kv.iter().find(|(k, _)| word(k) == key).map(|(_, v)| v),
        _ => None,
    }
}

fn key_spec(r: &Reply) -> Result<KeySpec, String> {
    let flags = match field(r, "flags") {
        Some(Reply::Set(xs)) => xs
            .iter()
            .map(|x| match x {
                Reply::Status(Cow::Borrowed(s)) => Ok(*s),
                _ => Err(format!("key spec flag {x:?}")),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err("key spec without flags".into()),
    };
    let part = |name: &str| -> Result<(&str, Option<&Reply>), String> {
        let p = field(r, name).ok_or_else(|| format!("key spec without {name}"))?;
        let ty = field(p, "type").map(word).unwrap_or("");
        Ok((ty, field(p, "spec")))
    };
    let num = |spec: Option<&Reply>, k: &str| spec.and_then(|s| field(s, k)).map(int).unwrap_or(0);
    let begin = match part("begin_search")? {
        ("index", s) => Begin::Index(num(s, "index")),
        ("keyword", s) => Begin::Keyword {
            keyword: match s.and_then(|s| field(s, "keyword")) {
                Some(Reply::Bulk(b)) => b.clone(),
                _ => return Err("keyword spec without keyword".into()),
            },
            startfrom: num(s, "startfrom"),
        },
        _ => Begin::Unknown,
    };
    let find = match part("find_keys")? {
        ("range", s) => Find::Range {
            lastkey: num(s, "lastkey"),
            keystep: num(s, "keystep"),
            limit: num(s, "limit"),
        },
        ("keynum", s) => Find::Keynum {
            keynumidx: num(s, "keynumidx"),
            firstkey: num(s, "firstkey"),
            keystep: num(s, "keystep"),
        },
        _ => Find::Unknown,
    };
    Ok(KeySpec { flags, begin, find })
}

struct Parser {
    s: &'static str,
    i: usize,
}

impl Parser {
    fn skip_spaces(&mut self) {
        while self.s.as_bytes().get(self.i) == Some(&b' ') {
            self.i += 1;
        }
    }

    fn list(&mut self, close: u8) -> Result<Vec<Reply>, String> {
        self.i += 1;
        let mut items = Vec::new();
        loop {
            self.skip_spaces();
            match self.s.as_bytes().get(self.i) {
                None => return Err(format!("missing {:?}", close as char)),
                Some(&c) if c == close => {
                    self.i += 1;
                    return Ok(items);
                }
                Some(_) => items.push(self.value()?),
            }
        }
    }

    fn value(&mut self) -> Result<Reply, String> {
        self.skip_spaces();
        let b = self.s.as_bytes();
        match b.get(self.i) {
            None => Err("value expected".into()),
            Some(b'[') => Ok(Reply::Array(self.list(b']')?)),
            Some(b'<') => Ok(Reply::Set(self.list(b'>')?)),
            Some(b'{') => {
                let flat = self.list(b'}')?;
                if flat.len() % 2 != 0 {
                    return Err("map with an odd number of values".into());
                }
                let mut it = flat.into_iter();
                let mut kv = Vec::new();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    kv.push((k, v));
                }
                Ok(Reply::Map(kv))
            }
            Some(b'"') => {
                let mut s = String::new();
                let mut chars = self.s[self.i + 1..].char_indices();
                loop {
                    match chars.next() {
                        None => return Err("unterminated string".into()),
                        Some((n, '"')) => {
                            self.i += 1 + n + 1;
                            return Ok(Reply::Bulk(Bytes::from(s)));
                        }
                        Some((_, '\\')) => match chars.next() {
                            Some((_, 'n')) => s.push('\n'),
                            Some((_, 'r')) => s.push('\r'),
                            Some((_, 't')) => s.push('\t'),
                            Some((_, c @ ('"' | '\\'))) => s.push(c),
                            other => return Err(format!("bad escape {other:?}")),
                        },
                        Some((_, c)) => s.push(c),
                    }
                }
            }
            Some(_) => {
                let start = self.i;
                while let Some(&c) = b.get(self.i) {
                    if matches!(c, b' ' | b']' | b'}' | b'>') {
                        break;
                    }
                    self.i += 1;
                }
                let tok: &'static str = &self.s[start..self.i];
                if let Some(status) = tok.strip_prefix('+') {
                    Ok(Reply::Status(Cow::Borrowed(status)))
                } else if let Ok(n) = tok.parse::<i64>() {
                    Ok(Reply::Int(n))
                } else {
                    Ok(Reply::Bulk(Bytes::from_static(tok.as_bytes())))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_line() {
        let all = all();
        assert!(all.len() > 200, "{} commands", all.len());
        let set = get("set").unwrap();
        assert_eq!(set.arity(), -3);
        assert_eq!(word(&set.docs[0].0), "summary");
        let z = get("zunionstore").unwrap();
        assert_eq!(
            z.key_specs[1].find,
            Find::Keynum {
                keynumidx: 0,
                firstkey: 1,
                keystep: 1
            }
        );
        assert!(get("config|get").is_some());
    }

    #[test]
    fn notation() {
        let mut p = Parser {
            s: r#"[1 -2 +ok abc "a \"b\"\n" <> {k [x]}]"#,
            i: 0,
        };
        assert_eq!(
            p.value().unwrap(),
            Reply::Array(vec![
                Reply::Int(1),
                Reply::Int(-2),
                Reply::status("ok"),
                Reply::bulk_str("abc"),
                Reply::bulk_str("a \"b\"\n"),
                Reply::Set(vec![]),
                Reply::Map(vec![(
                    Reply::bulk_str("k"),
                    Reply::Array(vec![Reply::bulk_str("x")])
                )]),
            ])
        );
    }
}
