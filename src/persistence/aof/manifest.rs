//! The AOF manifest: which files make up the data set, in which order.
//!
//! Redis 7's line format, one file a line (`file <name> seq <n> type <b|h|i>`), with
//! three more pairs of ours: `shard <k>` (whose stream the file holds), `shards <n>`
//! (how many shards wrote that generation) and `gen <g>` (generations replay in order:
//! a restart with another `threads` value starts a new one, a rewrite replaces them
//! all with one). Unknown keys are ignored, as Redis does. The one idea to hold: the
//! manifest is the only truth about which files count; it is replaced atomically
//! (temp file, fsync, rename, fsync of the directory), so a crash leaves the old
//! manifest or the new one, never a mix.

use std::io::Write;
use std::path::Path;

pub const NAME_SUFFIX: &str = ".manifest";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileType {
    Base,
    Incr,
    History,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub seq: u64,
    pub kind: FileType,
    pub shard: usize,
    pub shards: usize,
    pub gen: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    pub files: Vec<Entry>,
}

impl Manifest {
    /// Parse a manifest; the error names the line.
    pub fn parse(text: &str) -> Result<Manifest, String> {
        let mut files = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            if !words.len().is_multiple_of(2) {
                return Err(format!("Invalid AOF manifest file format (line {})", n + 1));
            }
            let (mut name, mut seq, mut kind) = (None, None, None);
            let (mut shard, mut shards, mut gen) = (0usize, 1usize, 1u64);
            for pair in words.chunks(2) {
                let v = pair[1];
                let bad = || {
                    format!(
                        "Invalid AOF manifest file format (line {}: {})",
                        n + 1,
                        pair[0]
                    )
                };
                match pair[0] {
                    "file" => name = Some(v.to_string()),
                    "seq" => seq = Some(v.parse::<u64>().map_err(|_| bad())?),
                    "type" => {
                        kind = Some(match v {
                            "b" => FileType::Base,
                            "i" => FileType::Incr,
                            "h" => FileType::History,
                            _ => return Err(bad()),
                        })
                    }
                    "shard" => shard = v.parse().map_err(|_| bad())?,
                    "shards" => shards = v.parse().map_err(|_| bad())?,
                    "gen" => gen = v.parse().map_err(|_| bad())?,
                    _ => {}
                }
            }
            let (Some(name), Some(seq), Some(kind)) = (name, seq, kind) else {
                return Err(format!("Invalid AOF manifest file format (line {})", n + 1));
            };
            if name.contains('/') || shard >= shards.max(1) || shards == 0 || shards > 1024 {
                return Err(format!("Invalid AOF manifest file format (line {})", n + 1));
            }
            files.push(Entry {
                name,
                seq,
                kind,
                shard,
                shards,
                gen,
            });
        }
        Ok(Manifest { files })
    }

    pub fn format(&self) -> String {
        let mut out = String::new();
        for f in &self.files {
            let t = match f.kind {
                FileType::Base => "b",
                FileType::Incr => "i",
                FileType::History => "h",
            };
            out.push_str(&format!(
                "file {} seq {} type {} shard {} shards {} gen {}\n",
                f.name, f.seq, t, f.shard, f.shards, f.gen
            ));
        }
        out
    }

    /// The generations in replay order, each with its shard count.
    pub fn generations(&self) -> Vec<(u64, usize)> {
        let mut g: Vec<(u64, usize)> = self
            .files
            .iter()
            .filter(|f| f.kind != FileType::History)
            .map(|f| (f.gen, f.shards))
            .collect();
        g.sort_unstable();
        g.dedup_by_key(|x| x.0);
        g
    }

    /// One shard's chain in a generation: its base (if any), then its increments by seq.
    pub fn chain(&self, gen: u64, shard: usize) -> Vec<&Entry> {
        let mut v: Vec<&Entry> = self
            .files
            .iter()
            .filter(|f| f.gen == gen && f.shard == shard && f.kind != FileType::History)
            .collect();
        v.sort_by_key(|f| (f.kind != FileType::Base, f.seq));
        v
    }

    pub fn last_gen(&self) -> Option<(u64, usize)> {
        self.generations().last().copied()
    }

    pub fn max_seq(&self) -> u64 {
        self.files.iter().map(|f| f.seq).max().unwrap_or(0)
    }

    /// Write to `dir/name` atomically: temp file, fsync, rename, fsync the directory.
    pub fn write_atomic(&self, dir: &Path, name: &str) -> std::io::Result<()> {
        let tmp = dir.join(format!("temp-{name}"));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(self.format().as_bytes())?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, dir.join(name))?;
        sync_dir(dir)
    }
}

/// fsync a directory, so a rename or a file creation in it survives a crash.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// `appendonly.aof.<shard>.<seq>.incr.aof` and friends.
pub fn file_name(prefix: &str, shard: usize, seq: u64, kind: FileType, rdb: bool) -> String {
    match kind {
        FileType::Base if rdb => format!("{prefix}.{shard}.{seq}.base.rdb"),
        FileType::Base => format!("{prefix}.{shard}.{seq}.base.aof"),
        _ => format!("{prefix}.{shard}.{seq}.incr.aof"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_orders_chains() {
        let text = "# comment\n\
            file a.0.1.incr.aof seq 3 type i shard 0 shards 2 gen 1\n\
            file a.0.1.base.rdb seq 1 type b shard 0 shards 2 gen 1\n\
            file a.1.2.incr.aof seq 2 type i shard 1 shards 2 gen 1\n\
            file a.0.4.incr.aof seq 4 type i shard 0 shards 3 gen 2 future x\n";
        let m = Manifest::parse(text).unwrap();
        assert_eq!(m.generations(), vec![(1, 2), (2, 3)]);
        let chain: Vec<&str> = m.chain(1, 0).iter().map(|f| f.name.as_str()).collect();
        assert_eq!(chain, ["a.0.1.base.rdb", "a.0.1.incr.aof"]);
        assert_eq!(Manifest::parse(&m.format()).unwrap(), m);
        assert_eq!(m.max_seq(), 4);
    }

    #[test]
    fn redis_lines_parse_as_one_shard() {
        let m = Manifest::parse("file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n").unwrap();
        assert_eq!(m.generations(), vec![(1, 1)]);
        assert_eq!(m.chain(1, 0).len(), 2);
    }

    #[test]
    fn refuses_bad_lines() {
        assert!(Manifest::parse("file x seq 1\n").is_err());
        assert!(Manifest::parse("file x seq one type i\n").is_err());
        assert!(Manifest::parse("file x seq 1 type z\n").is_err());
        assert!(Manifest::parse("file ../x seq 1 type i\n").is_err());
        assert!(Manifest::parse("file x seq 1 type i shard 3 shards 2\n").is_err());
        assert!(Manifest::parse("file x seq 1 type\n").is_err());
    }
}
