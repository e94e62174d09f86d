//! Replacing a small state file so that a crash leaves the old or the new one, never
//! a mix: write beside it, fsync, rename over it, fsync the directory. A leaf: used
//! by sentinel.conf and nodes.conf rewrites.

use std::io::Write;

pub fn replace(path: &str, text: &str) -> std::io::Result<()> {
    let tmp = format!("{path}.tmp-{}", std::process::id());
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = std::path::Path::new(path).parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}
