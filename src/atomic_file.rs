//! Replacing a small state file so that a crash leaves the old or the new one, never
//! a mix: write beside it, fsync, rename over it, fsync the directory. A leaf: used
//! by sentinel.conf and nodes.conf rewrites (nodes.conf also has the cheaper,
//! unsynced overwrite Redis uses for it).

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

/// For changes Redis itself saves without fsync, as often as a slot migration makes
/// them: the file is overwritten in place, padded with newlines to its old length so
/// that it never shrinks (as Redis's `clusterSaveConfig`). Replacing it instead frees
/// the old file's blocks every time, which on a file system mounted with `discard`
/// waits for the device. A single small write: a crash of the process leaves the old
/// or the new contents; a crash of the machine may leave a mix, as Redis's may.
pub fn overwrite_unsynced(path: &str, text: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    let old = f.metadata()?.len() as usize;
    let mut body = text.as_bytes().to_vec();
    if body.len() < old {
        body.resize(old, b'\n');
    }
    f.write_all(&body)
}

#[cfg(test)]
mod tests {
    #[test]
    fn overwriting_pads_to_the_old_length() {
        let dir = std::env::temp_dir().join(format!("atomic-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f").display().to_string();
        super::overwrite_unsynced(&path, "a longer first text\n").unwrap();
        super::overwrite_unsynced(&path, "short\n").unwrap();
        let got = std::fs::read_to_string(&path).unwrap();
        assert_eq!(got.len(), "a longer first text\n".len());
        assert_eq!(got.trim_end(), "short");
        super::replace(&path, "synced\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "synced\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
