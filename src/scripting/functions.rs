//! Redis Functions: the libraries FUNCTION LOAD keeps, one registry per process.
//!
//! # The plan
//! - **Registry**: library name → its code (with the `#!lua name=...` line), the code
//!   after that line, and what it registered (function names, descriptions, flags);
//!   plus function name (any case, as Redis's dict) → library. Every core reads it;
//!   the commands that change it (FUNCTION LOAD, DELETE, FLUSH, RESTORE) are
//!   server-wide writes, so they run holding every shard, one at a time, and reach the
//!   AOF and the replicas as they were sent, as Redis propagates them.
//! - **Loading** ([`load`]): the metadata line is checked as Redis's
//!   `functionExtractLibMetaData`, then the code runs once on the loading core's
//!   function interpreter in *load mode* (`engine`: only `redis.register_function`,
//!   `redis.log` and the version fields are visible, and a load that runs over 500 ms
//!   stops), which tells what it registers. Only then is the registry changed, so a
//!   library that fails leaves nothing behind.
//! - **Running**: each core's function interpreter notices a new registry generation
//!   before its next FCALL and loads every library again, keeping the callbacks by
//!   function name. Loading is deterministic (load mode sees nothing but `redis`), so
//!   every core ends with the same functions.
//! - **Persistence**: libraries go into RDB files as `FUNCTION2` records (opcode 245,
//!   the code as a string) right after the header, into the first shard's AOF base,
//!   and into FUNCTION DUMP payloads in the same form.

use super::{engine, Flags};
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

/// FUNCTION LOAD's limit on running a library's code (Redis's `LOAD_TIMEOUT_MS`).
pub const LOAD_TIMEOUT_MS: u64 = 500;

/// The one engine there is.
pub const ENGINE: &str = "LUA";

const BAD_NAME: &str = "Library names can only contain letters, numbers, or underscores(_) and must be at least one character long";

/// One function a library registered.
#[derive(Clone, Debug)]
pub struct FunctionInfo {
    pub name: String,
    pub description: Option<Bytes>,
    pub flags: Flags,
}

#[derive(Debug)]
pub struct Library {
    pub name: String,
    /// The code as loaded, metadata line included (FUNCTION LIST WITHCODE, RDB).
    pub code: Bytes,
    /// The code after the metadata line, from its newline (so line numbers hold).
    pub body: Bytes,
    pub functions: Vec<FunctionInfo>,
}

#[derive(Default)]
struct Registry {
    libraries: BTreeMap<String, Arc<Library>>,
    /// Lower-case function name → library name.
    functions: HashMap<String, String>,
}

impl Registry {
    fn link(&mut self, lib: Arc<Library>) {
        for f in &lib.functions {
            self.functions
                .insert(f.name.to_ascii_lowercase(), lib.name.clone());
        }
        self.libraries.insert(lib.name.clone(), lib);
    }

    fn unlink(&mut self, name: &str) -> Option<Arc<Library>> {
        let lib = self.libraries.remove(name)?;
        for f in &lib.functions {
            self.functions.remove(&f.name.to_ascii_lowercase());
        }
        Some(lib)
    }

    /// The first of `lib`'s functions another library already has.
    fn collision(&self, lib: &Library) -> Option<String> {
        lib.functions
            .iter()
            .find(|f| self.functions.contains_key(&f.name.to_ascii_lowercase()))
            .map(|f| format!("Function {} already exists", f.name))
    }
}

fn registry() -> &'static RwLock<Registry> {
    static REGISTRY: OnceLock<RwLock<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(|| RwLock::new(Registry::default()))
}

fn read() -> std::sync::RwLockReadGuard<'static, Registry> {
    registry().read().unwrap_or_else(|e| e.into_inner())
}

fn write() -> std::sync::RwLockWriteGuard<'static, Registry> {
    registry().write().unwrap_or_else(|e| e.into_inner())
}

static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Bumped by every change: interpreters reload their libraries when it moves.
pub fn generation() -> u64 {
    GENERATION.load(Ordering::SeqCst)
}

fn changed() {
    GENERATION.fetch_add(1, Ordering::SeqCst);
    super::run::forget_functions();
}

/// Letters, digits and underscores, at least one (Redis's `functionsVerifyName`).
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'_')
}

/// The metadata line's library name and the code after the line (Redis's
/// `functionExtractLibMetaData`, then the name and engine checks).
fn metadata(code: &Bytes) -> Result<(String, Bytes), String> {
    if !code.starts_with(b"#!") {
        return Err("Missing library metadata".into());
    }
    let Some(end) = code.iter().position(|&b| b == b'\n') else {
        return Err("Invalid library metadata".into());
    };
    let Some(parts) = super::shebang_parts(&code[..end]) else {
        return Err("Invalid library metadata".into());
    };
    let engine = parts[0].get(2..).unwrap_or_default().to_string();
    let mut name = None;
    for part in &parts[1..] {
        if part
            .get(..5)
            .is_some_and(|p| p.eq_ignore_ascii_case("name="))
        {
            if name.is_some() {
                return Err(
                    "Invalid metadata value, name argument was given multiple times".into(),
                );
            }
            name = Some(part[5..].to_string());
            continue;
        }
        return Err(format!("Invalid metadata value given: {part}"));
    }
    let Some(name) = name else {
        return Err("Library name was not given".into());
    };
    if !valid_name(name.as_bytes()) {
        return Err(BAD_NAME.into());
    }
    if !engine.eq_ignore_ascii_case(ENGINE) {
        return Err(format!("Engine '{engine}' not found"));
    }
    Ok((name, code.slice(end..)))
}

/// Run `code` in load mode on this core to see what it registers. `timeout`: stop it
/// after [`LOAD_TIMEOUT_MS`] (not for code from a file or a master, as Redis).
fn build(code: &Bytes, name: String, body: Bytes, timeout: bool) -> Result<Library, String> {
    let deadline = timeout
        .then(|| std::time::Instant::now() + std::time::Duration::from_millis(LOAD_TIMEOUT_MS));
    let registered = engine::with_functions(|e| e.load_library(&body, deadline))?;
    if registered.is_empty() {
        return Err("No functions registered".into());
    }
    Ok(Library {
        name,
        code: code.clone(),
        body,
        functions: registered,
    })
}

/// FUNCTION LOAD [REPLACE]: the library's name, or Redis's error text (without the
/// `ERR ` code).
pub fn load(code: &Bytes, replace: bool, timeout: bool) -> Result<String, String> {
    let (name, body) = metadata(code)?;
    let exists = |r: &Registry| -> Result<(), String> {
        if !replace && r.libraries.contains_key(&name) {
            return Err(format!("Library '{name}' already exists"));
        }
        Ok(())
    };
    exists(&read())?;
    let lib = Arc::new(build(code, name.clone(), body, timeout)?);
    let mut r = write();
    exists(&r)?;
    let old = r.unlink(&name);
    if let Some(e) = r.collision(&lib) {
        if let Some(old) = old {
            r.link(old);
        }
        return Err(e);
    }
    r.link(lib);
    drop(r);
    changed();
    Ok(name)
}

/// FUNCTION DELETE.
pub fn delete(name: &[u8]) -> Result<(), String> {
    let name = String::from_utf8_lossy(name);
    if write().unlink(&name).is_none() {
        return Err("Library not found".into());
    }
    changed();
    Ok(())
}

/// FUNCTION FLUSH (and a full resynchronisation or DEBUG RELOAD: the file's
/// libraries replace ours).
pub fn flush() {
    let mut r = write();
    let had = !r.libraries.is_empty();
    *r = Registry::default();
    drop(r);
    if had {
        changed();
    }
}

/// Every library, in name order.
pub fn libraries() -> Vec<Arc<Library>> {
    read().libraries.values().cloned().collect()
}

/// The function called `name` (any case), with its library.
pub fn find(name: &[u8]) -> Option<(Arc<Library>, FunctionInfo)> {
    let key = String::from_utf8_lossy(name).to_ascii_lowercase();
    let r = read();
    let lib = r.libraries.get(r.functions.get(&key)?)?.clone();
    let f = lib
        .functions
        .iter()
        .find(|f| f.name.eq_ignore_ascii_case(&key))?
        .clone();
    Some((lib, f))
}

/// The code after the metadata line of every library, and the generation it is of:
/// what an interpreter loads.
pub fn bodies() -> (u64, Vec<Bytes>) {
    let r = read();
    // Read under the lock: a change bumps the generation after it lets go.
    let generation = generation();
    (
        generation,
        r.libraries.values().map(|l| l.body.clone()).collect(),
    )
}

/// Every library's code (RDB files, AOF bases, FUNCTION DUMP).
pub fn codes() -> Vec<Bytes> {
    read().libraries.values().map(|l| l.code.clone()).collect()
}

/// Libraries read from an RDB file: added to the registry (replacing any of the same
/// name when `replace`, as DEBUG RELOAD MERGE). No load timeout, as Redis.
pub fn install(codes: Vec<Bytes>, replace: bool) -> Result<(), String> {
    for code in codes {
        load(&code, replace, false).map_err(|e| format!("Failed loading library, {e}"))?;
    }
    Ok(())
}

/// FUNCTION RESTORE's policies.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Policy {
    Flush,
    Append,
    Replace,
}

/// FUNCTION DUMP: every library as a `FUNCTION2` record, then the RDB version and the
/// CRC64, as a DUMP payload.
pub fn dump(compress: bool) -> Vec<u8> {
    use crate::persistence::rdb::{crc64::crc64, encode};
    let mut out = Vec::new();
    for code in codes() {
        encode::function(&mut out, &code, compress);
    }
    out.extend_from_slice(&encode::RDB_VERSION.to_le_bytes());
    let crc = crc64(0, &out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// FUNCTION RESTORE: the libraries of a DUMP payload, joined to ours by `policy`
/// (Redis's `functionRestoreCommand` and `libraryJoin`); nothing changes on error.
pub fn restore(payload: &[u8], policy: Policy) -> Result<(), String> {
    use crate::persistence::rdb::{decode::Reader, dump, opcode};
    if !dump::verify(payload) {
        return Err("DUMP payload version or checksum are wrong".into());
    }
    let body = &payload[..payload.len() - 10];
    let mut reader = Reader::raw(body, crate::config::EncodingLimits::default());
    let mut incoming: BTreeMap<String, Arc<Library>> = BTreeMap::new();
    let mut names: HashSet<String> = HashSet::new();
    while (reader.offset() as usize) < body.len() {
        let ty = reader
            .read_type()
            .map_err(|_| "can not read data type".to_string())?;
        if ty != opcode::FUNCTION2 {
            return Err("given type is not a function".into());
        }
        let code = Bytes::from(
            reader
                .read_string()
                .map_err(|_| "Failed loading library payload".to_string())?,
        );
        let (name, lib_body) = metadata(&code)?;
        if incoming.contains_key(&name) {
            return Err(format!("Library '{name}' already exists"));
        }
        let lib = build(&code, name.clone(), lib_body, false)?;
        for f in &lib.functions {
            if !names.insert(f.name.to_ascii_lowercase()) {
                return Err(format!("Function {} already exists", f.name));
            }
        }
        incoming.insert(name, Arc::new(lib));
    }
    let mut r = write();
    if policy == Policy::Flush {
        *r = Registry::default();
        incoming.into_values().for_each(|l| r.link(l));
        drop(r);
        changed();
        return Ok(());
    }
    let mut replaced = Vec::new();
    let undo = |r: &mut Registry, replaced: Vec<Arc<Library>>| {
        replaced.into_iter().for_each(|l| r.link(l));
    };
    for name in incoming.keys() {
        if r.libraries.contains_key(name) {
            if policy == Policy::Append {
                undo(&mut r, replaced);
                return Err(format!("Library {name} already exists"));
            }
            replaced.extend(r.unlink(name));
        }
    }
    if let Some(e) = incoming.values().find_map(|l| r.collision(l)) {
        undo(&mut r, replaced);
        return Err(e);
    }
    incoming.into_values().for_each(|l| r.link(l));
    drop(r);
    changed();
    Ok(())
}

/// INFO memory: libraries, functions, and the bytes the registry holds (codes, names,
/// descriptions, plus an estimate of the entries).
pub fn stats() -> (usize, usize, usize) {
    const ENTRY_OVERHEAD: usize = 64;
    let r = read();
    let bytes = r
        .libraries
        .values()
        .map(|l| {
            l.name.len()
                + l.code.len()
                + ENTRY_OVERHEAD
                + l.functions
                    .iter()
                    .map(|f| {
                        f.name.len()
                            + f.description.as_ref().map_or(0, |d| d.len())
                            + ENTRY_OVERHEAD
                    })
                    .sum::<usize>()
        })
        .sum();
    (r.libraries.len(), r.functions.len(), bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_lines_as_redis_reads_them() {
        let m = |s: &'static str| metadata(&Bytes::from_static(s.as_bytes()));
        assert_eq!(m("return 1").unwrap_err(), "Missing library metadata");
        assert_eq!(m("#!lua name=x").unwrap_err(), "Invalid library metadata");
        assert_eq!(m("#!lua\n").unwrap_err(), "Library name was not given");
        assert_eq!(m("#!lua name=\"x\"\n").unwrap().0, "x");
        assert_eq!(
            m("#!lua name=\"x\n").unwrap_err(),
            "Invalid library metadata"
        );
        assert_eq!(
            m("#!lua na\u{e9}=x\n").unwrap_err(),
            "Invalid metadata value given: na\u{e9}=x"
        );
        assert_eq!(
            m("#!lua name=x foo=bar\n").unwrap_err(),
            "Invalid metadata value given: foo=bar"
        );
        assert_eq!(
            m("#!lua name=x NAME=y\n").unwrap_err(),
            "Invalid metadata value, name argument was given multiple times"
        );
        assert_eq!(m("#!lua name=x-y\n").unwrap_err(), BAD_NAME);
        assert_eq!(m("#!js name=x\n").unwrap_err(), "Engine 'js' not found");
        let (name, body) = m("#!LUA  name=lib_1\nreturn 1").unwrap();
        assert_eq!((name.as_str(), &body[..]), ("lib_1", &b"\nreturn 1"[..]));
    }
}
