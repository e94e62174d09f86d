//! The process-wide script cache: sha1 → body, filled by EVAL and SCRIPT LOAD, read by
//! EVALSHA on any core, emptied by SCRIPT FLUSH.
//!
//! Each core's interpreter keeps its own compiled functions by sha; the cache's
//! generation tells it when they must be forgotten (a FLUSH since it compiled them).

use bytes::Bytes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{OnceLock, RwLock};

/// Looked up on every EVALSHA: foldhash rather than SipHash (the keys are shas of
/// the scripts themselves, and the seed is random per process).
type Map = HashMap<String, Bytes, foldhash::fast::RandomState>;

fn scripts() -> &'static RwLock<Map> {
    static SCRIPTS: OnceLock<RwLock<Map>> = OnceLock::new();
    SCRIPTS.get_or_init(|| RwLock::new(Map::default()))
}

static GENERATION: AtomicU64 = AtomicU64::new(0);

/// The lower-case hex sha1 of `body`, as Redis names scripts. (Every EVAL names its
/// body: `Digest`'s `Display` took ~630 instructions of formatting machinery.)
pub fn sha1_hex(body: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = sha1_smol::Sha1::from(body).digest().bytes();
    let mut out = String::with_capacity(40);
    for b in digest {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 15)] as char);
    }
    out
}

/// Remember `body` under its sha; returns the sha.
pub fn add(body: &Bytes) -> String {
    let sha = sha1_hex(body);
    insert(&sha, body);
    sha
}

/// Remember `body` under `sha` (its [`sha1_hex`]).
pub fn insert(sha: &str, body: &Bytes) {
    // Every EVAL comes here, mostly with a known script: a shared lock for that.
    if scripts()
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .contains_key(sha)
    {
        return;
    }
    let mut m = scripts().write().unwrap_or_else(|e| e.into_inner());
    if !m.contains_key(sha) {
        m.insert(sha.to_string(), body.clone());
    }
}

/// Forget the script under `sha`: an EVAL's that did not compile (Redis caches a
/// script only once it compiled, so its EVALSHA gets `NOSCRIPT`).
pub fn forget(sha: &str) {
    scripts()
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .remove(sha);
}

/// The body cached under `sha` (any case), if any.
pub fn get(sha: &str) -> Option<Bytes> {
    let lower;
    let sha = if sha.bytes().any(|b| b.is_ascii_uppercase()) {
        lower = sha.to_ascii_lowercase();
        &lower
    } else {
        sha
    };
    scripts()
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(sha)
        .cloned()
}

pub fn contains(sha: &[u8]) -> bool {
    let sha = String::from_utf8_lossy(sha).to_ascii_lowercase();
    scripts()
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .contains_key(&sha)
}

/// SCRIPT FLUSH: forget every script; interpreters drop their compilations.
pub fn flush() {
    scripts().write().unwrap_or_else(|e| e.into_inner()).clear();
    super::cjson::reset_for_scripts();
    GENERATION.fetch_add(1, Ordering::SeqCst);
}

pub fn generation() -> u64 {
    GENERATION.load(Ordering::SeqCst)
}

/// Bookkeeping per cached script beyond its body and sha: the map's entry and the
/// body's handle (an estimate of the allocation, as Redis's figure is).
const ENTRY_OVERHEAD: usize = 64;

/// INFO memory: how many scripts are cached, and the bytes the cache holds (bodies,
/// shas, entries).
pub fn stats() -> (usize, usize) {
    let m = scripts().read().unwrap_or_else(|e| e.into_inner());
    let bytes = m
        .iter()
        .map(|(sha, body)| sha.len() + body.len() + ENTRY_OVERHEAD)
        .sum();
    (m.len(), bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_scripts_as_redis() {
        // SCRIPT LOAD "return 1" in redis-server 7.0.15.
        assert_eq!(
            sha1_hex(b"return 1"),
            "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"
        );
        let sha = add(&Bytes::from_static(b"return 1"));
        assert!(contains(sha.to_ascii_uppercase().as_bytes()));
        assert_eq!(get(&sha).as_deref(), Some(&b"return 1"[..]));
    }
}
