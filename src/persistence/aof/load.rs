//! Loading the AOF at start: parse every shard's files, cut what a crash left
//! unfinished, and replay the rest through the normal command path.
//!
//! The one idea to hold: a file may end in the middle of anything, and a crash may
//! leave a multi-shard transaction durable on some shards only. So parsing comes first
//! and replay second. A torn tail (the last record incomplete) is cut off, with a log
//! line (`aof-load-truncated yes`), and so is a `MULTI` block with no `EXEC`; bytes
//! that are not RESP before the end refuse the start, naming file and offset. Then
//! [`complete_prefixes`] cuts every shard's stream before the first transaction part
//! whose transaction is missing its closing record on some other shard of its set,
//! until none is left. Finally the shards' streams are merged in transaction order
//! (a multi-shard transaction is a meeting point of its shards' streams; records
//! between meeting points touch one shard's keys only, so any interleaving of them is
//! equivalent) and fed to `dispatch::run_batch` as one client would send them, so
//! every key lands on the shard that owns it now, whatever `threads` was.

use super::manifest::{Entry, FileType, Manifest};
use bytes::Bytes;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Outcome of parsing one record at an offset.
pub enum Parsed {
    /// The record's arguments and the offset after it.
    Record(Vec<Bytes>, usize),
    /// The buffer ends inside the record.
    Incomplete,
    /// Not RESP.
    Bad,
}

/// Longest argument a record may hold (Redis's proto-max-bulk-len ceiling).
const MAX_BULK: usize = 1 << 32;

fn line(buf: &[u8], off: usize) -> Option<(&[u8], usize)> {
    let rest = buf.get(off..)?;
    let i = rest.windows(2).position(|w| w == b"\r\n")?;
    Some((&rest[..i], off + i + 2))
}

fn number(s: &[u8]) -> Option<i64> {
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// Parse one `*n $len arg ...` record at `off`.
pub fn parse_record(buf: &[u8], off: usize) -> Parsed {
    let Some(&first) = buf.get(off) else {
        return Parsed::Incomplete;
    };
    if first != b'*' {
        return Parsed::Bad;
    }
    let Some((head, mut at)) = line(buf, off + 1) else {
        return if buf.len() - off > 32 {
            Parsed::Bad
        } else {
            Parsed::Incomplete
        };
    };
    let n = match number(head) {
        Some(n) if n >= 1 => n as usize,
        _ => return Parsed::Bad,
    };
    let mut argv = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        match buf.get(at) {
            None => return Parsed::Incomplete,
            Some(b'$') => {}
            Some(_) => return Parsed::Bad,
        }
        let Some((len, next)) = line(buf, at + 1) else {
            return if buf.len() - at > 32 {
                Parsed::Bad
            } else {
                Parsed::Incomplete
            };
        };
        let len = match number(len) {
            Some(l) if l >= 0 && (l as usize) < MAX_BULK => l as usize,
            _ => return Parsed::Bad,
        };
        let end = next + len;
        if buf.len() < end + 2 {
            return Parsed::Incomplete;
        }
        if &buf[end..end + 2] != b"\r\n" {
            return Parsed::Bad;
        }
        argv.push(Bytes::copy_from_slice(&buf[next..end]));
        at = end + 2;
    }
    Parsed::Record(argv, at)
}

/// One unit of a shard's stream: records to replay as a whole.
#[derive(Debug)]
pub struct Unit {
    /// (db, argv) in order.
    pub cmds: Vec<(usize, Vec<Bytes>)>,
    /// For the part of a multi-shard transaction: its tag and shard set.
    pub tx: Option<(Bytes, Vec<usize>)>,
    /// Where the unit starts: (index of the file in the chain, offset).
    pub at: (usize, u64),
}

/// Where a chain's file stopped parsing early (torn tail).
pub struct Torn {
    pub file: usize,
    pub offset: u64,
}

/// The closing record of a multi-shard transaction's part: `SHARDIS.TXEND tag s,s,...`.
pub const TXEND: &[u8] = b"SHARDIS.TXEND";

/// Parse one file's records into units; `db` carries SELECT across files.
/// Returns the torn offset if the file ends inside a record or a MULTI block.
pub fn parse_units(
    buf: &[u8],
    file: usize,
    name: &str,
    db: &mut usize,
    out: &mut Vec<Unit>,
) -> Result<Option<u64>, String> {
    let mut off = 0;
    let mut block: Option<Unit> = None;
    while off < buf.len() {
        let (argv, next) = match parse_record(buf, off) {
            Parsed::Record(a, n) => (a, n),
            Parsed::Incomplete => {
                let at = block.map_or(off, |b| b.at.1 as usize);
                return Ok(Some(at as u64));
            }
            Parsed::Bad => {
                return Err(format!(
                    "Bad file format reading the append only file {name} at offset {off}: make a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest>"
                ))
            }
        };
        let name0 = argv[0].to_ascii_uppercase();
        match name0.as_slice() {
            b"SELECT" if argv.len() == 2 => {
                *db = number(&argv[1]).filter(|&n| n >= 0).unwrap_or(0) as usize;
            }
            b"MULTI" => {
                if block.is_some() {
                    return Err(format!("Bad file format reading the append only file {name} at offset {off}: nested MULTI"));
                }
                block = Some(Unit {
                    cmds: Vec::new(),
                    tx: None,
                    at: (file, off as u64),
                });
            }
            b"EXEC" => match block.take() {
                Some(u) => out.push(u),
                None => {
                    return Err(format!("Bad file format reading the append only file {name} at offset {off}: EXEC without MULTI"))
                }
            },
            _ if name0.as_slice() == TXEND && argv.len() == 3 => {
                let set: Vec<usize> = std::str::from_utf8(&argv[2])
                    .unwrap_or("")
                    .split(',')
                    .filter_map(|s| s.parse().ok())
                    .collect();
                match block.as_mut() {
                    Some(u) => u.tx = Some((argv[1].clone(), set)),
                    None => {
                        return Err(format!("Bad file format reading the append only file {name} at offset {off}: transaction end outside MULTI"))
                    }
                }
            }
            _ => match block.as_mut() {
                Some(u) => u.cmds.push((*db, argv)),
                None => out.push(Unit {
                    cmds: vec![(*db, argv)],
                    tx: None,
                    at: (file, off as u64),
                }),
            },
        }
        off = next;
    }
    Ok(block.map(|b| b.at.1))
}

/// How many units of each shard's stream to keep so that no multi-shard transaction
/// is kept on some of its shards and not on others. Cutting a stream drops everything
/// after the cut too (later records may depend on the transaction), which can leave
/// another transaction incomplete: repeat until nothing changes.
/// A unit's transaction, if it is a multi-shard transaction's part: (tag, shard set).
pub type TxMark = Option<(Bytes, Vec<usize>)>;

pub fn complete_prefixes(streams: &[Vec<TxMark>]) -> Vec<usize> {
    let mut keep: Vec<usize> = streams.iter().map(|s| s.len()).collect();
    loop {
        let mut seen: HashMap<&Bytes, Vec<(usize, usize)>> = HashMap::new();
        for (sid, s) in streams.iter().enumerate() {
            for (i, u) in s[..keep[sid]].iter().enumerate() {
                if let Some((tag, _)) = u {
                    seen.entry(tag).or_default().push((sid, i));
                }
            }
        }
        let mut changed = false;
        for (sid, s) in streams.iter().enumerate() {
            for u in s[..keep[sid]].iter().flatten() {
                let (tag, set) = u;
                let parts = &seen[tag];
                let complete = set.iter().all(|x| parts.iter().any(|(p, _)| p == x))
                    && parts.iter().all(|(p, _)| set.contains(p));
                if !complete {
                    for &(p, i) in parts {
                        if i < keep[p] {
                            keep[p] = i;
                            changed = true;
                        }
                    }
                }
            }
            if changed {
                break;
            }
        }
        if !changed {
            return keep;
        }
    }
}

/// Merge the shards' units in transaction order: a multi-shard transaction's parts go
/// out together once every shard of its set has reached it.
pub fn merge(streams: Vec<Vec<Unit>>) -> Result<Vec<(usize, Vec<Bytes>)>, String> {
    let mut heads: Vec<std::iter::Peekable<std::vec::IntoIter<Unit>>> = streams
        .into_iter()
        .map(|s| s.into_iter().peekable())
        .collect();
    let mut out = Vec::new();
    loop {
        let mut progressed = false;
        let mut pending = false;
        for sid in 0..heads.len() {
            while let Some(u) = heads[sid].peek() {
                pending = true;
                match &u.tx {
                    None => {
                        out.extend(heads[sid].next().into_iter().flat_map(|u| u.cmds));
                        progressed = true;
                    }
                    Some((tag, set)) => {
                        let tag = tag.clone();
                        let set = set.clone();
                        let ready = set.iter().all(|&x| {
                            heads
                                .get_mut(x)
                                .and_then(|h| h.peek())
                                .and_then(|u| u.tx.as_ref())
                                .is_some_and(|(t, _)| *t == tag)
                        });
                        if !ready {
                            break;
                        }
                        for &x in &set {
                            if let Some(u) = heads[x].next() {
                                out.extend(u.cmds);
                            }
                        }
                        progressed = true;
                    }
                }
            }
        }
        if !pending {
            return Ok(out);
        }
        if !progressed {
            return Err(
                "AOF transactions are recorded in an order no serial execution gives".into(),
            );
        }
    }
}

/// One shard chain read and parsed.
pub struct Chain {
    pub units: Vec<Unit>,
    pub files: Vec<PathBuf>,
    pub torn: Option<Torn>,
    pub bases_rdb: Vec<PathBuf>,
}

/// Read and parse a shard's chain (bases in AOF form and increments).
pub fn read_chain(dir: &Path, chain: &[&Entry]) -> Result<Chain, String> {
    let mut units = Vec::new();
    let mut files = Vec::new();
    let mut torn = None;
    let mut bases_rdb = Vec::new();
    let mut db = 0;
    for (i, e) in chain.iter().enumerate() {
        let path = dir.join(&e.name);
        files.push(path.clone());
        let buf = std::fs::read(&path).map_err(|err| {
            format!(
                "The AOF file {} doesn't exist or cannot be read: {err}",
                e.name
            )
        })?;
        if e.kind == FileType::Base && buf.starts_with(b"REDIS") {
            bases_rdb.push(path);
            continue;
        }
        if torn.is_some() {
            return Err(format!(
                "Unexpected end of file in the middle of the AOF chain before {}",
                e.name
            ));
        }
        if let Some(off) = parse_units(&buf, i, &e.name, &mut db, &mut units)? {
            torn = Some(Torn {
                file: i,
                offset: off,
            });
        }
    }
    Ok(Chain {
        units,
        files,
        torn,
        bases_rdb,
    })
}

/// The manifest's files must all exist.
pub fn check_files(dir: &Path, m: &Manifest) -> Result<(), String> {
    for f in &m.files {
        if f.kind != FileType::History && !dir.join(&f.name).exists() {
            return Err(format!(
                "The AOF file {} doesn't exist (named by the manifest in {})",
                f.name,
                dir.display()
            ));
        }
    }
    Ok(())
}

/// Cut a chain's files at (file, offset): that file truncated, later files emptied.
pub fn truncate_at(files: &[PathBuf], at: (usize, u64)) -> std::io::Result<()> {
    for (i, p) in files.iter().enumerate().skip(at.0) {
        let len = if i == at.0 { at.1 } else { 0 };
        let f = std::fs::OpenOptions::new().write(true).open(p)?;
        if f.metadata()?.len() > len {
            f.set_len(len)?;
            f.sync_all()?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(args: &[&str]) -> Vec<u8> {
        let mut v = Vec::new();
        let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
        super::super::record::encode(&mut v, &a);
        v
    }

    #[test]
    fn parses_records_and_spots_torn_tails_and_garbage() {
        let mut buf = rec(&["SET", "a", "1"]);
        buf.extend(rec(&["SELECT", "2"]));
        buf.extend(rec(&["MULTI"]));
        buf.extend(rec(&["INCR", "b"]));
        buf.extend(rec(&["EXEC"]));
        let whole = buf.len();
        buf.extend(rec(&["MULTI"]));
        buf.extend(rec(&["INCR", "c"]));
        let mut db = 0;
        let mut units = Vec::new();
        let torn = parse_units(&buf, 0, "f", &mut db, &mut units).unwrap();
        // The MULTI with no EXEC is cut at its start.
        assert_eq!(torn, Some(whole as u64));
        assert_eq!(units.len(), 2);
        assert_eq!(units[1].cmds[0].0, 2);
        // A record cut in its middle.
        let r = rec(&["SET", "key", "value"]);
        for cut in 1..r.len() {
            assert!(
                matches!(parse_record(&r[..cut], 0), Parsed::Incomplete),
                "cut {cut}"
            );
        }
        // Garbage before the end.
        let mut bad = rec(&["SET", "a", "1"]);
        bad.extend_from_slice(b"hello world\r\n");
        bad.extend(rec(&["SET", "a", "1"]));
        let err = parse_units(&bad, 0, "f.aof", &mut db, &mut Vec::new()).unwrap_err();
        assert!(err.contains("f.aof") && err.contains("offset 27"), "{err}");
    }

    fn tx(tag: &str, set: &[usize]) -> Option<(Bytes, Vec<usize>)> {
        Some((Bytes::from(tag.to_string()), set.to_vec()))
    }

    #[test]
    fn cuts_incomplete_transactions_until_none_is_left() {
        // Shard 0: T1(0,1) plain T2(0,1); shard 1: T1 plain T3(1,2); shard 2: plain.
        // T3 is missing on shard 2: shard 1 is cut before T3, which leaves T2 missing
        // its part on shard 1: shard 0 is cut before T2.
        let streams = vec![
            vec![tx("1", &[0, 1]), None, tx("2", &[0, 1])],
            vec![tx("1", &[0, 1]), None, tx("3", &[1, 2])],
            vec![None],
        ];
        assert_eq!(complete_prefixes(&streams), vec![2, 2, 1]);
        let streams = vec![
            vec![tx("1", &[0, 1]), None, tx("2", &[0, 1])],
            vec![tx("1", &[0, 1]), tx("2", &[0, 1])],
        ];
        assert_eq!(complete_prefixes(&streams), vec![3, 2]);
    }

    #[test]
    fn merges_in_transaction_order() {
        let unit = |cmd: &str, t: Option<(Bytes, Vec<usize>)>| Unit {
            cmds: vec![(0, vec![Bytes::from(cmd.to_string())])],
            tx: t,
            at: (0, 0),
        };
        let streams = vec![
            vec![
                unit("a1", None),
                unit("T", tx("t", &[0, 1])),
                unit("a2", None),
            ],
            vec![
                unit("b1", None),
                unit("T", tx("t", &[0, 1])),
                unit("b2", None),
            ],
        ];
        let out: Vec<String> = merge(streams)
            .unwrap()
            .into_iter()
            .map(|(_, a)| String::from_utf8_lossy(&a[0]).into_owned())
            .collect();
        let pos = |s: &str| out.iter().position(|x| x == s).unwrap();
        assert!(pos("a1") < pos("T") && pos("b1") < pos("T"));
        assert!(out.iter().rposition(|x| x == "T").unwrap() < pos("a2").min(pos("b2")));
    }
}
