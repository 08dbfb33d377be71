//! Reading small local files the operator names (public keys, the password file): regular files
//! only and at most a bounded size, so a FIFO, `/dev/zero` or a huge file cannot hang tandem or
//! fill its memory.

use std::io::Read;
use std::path::Path;

/// At most this many bytes are read from a key or password file.
pub const LIMIT: u64 = 64 * 1024;

/// The text of `path`, or why it cannot be used: not a regular file, larger than `LIMIT`,
/// unreadable or not UTF-8. The check happens before opening, because opening a FIFO for
/// reading blocks until someone writes to it.
pub fn read_small(path: &Path) -> Result<String, String> {
    read_limited(path, LIMIT)
}

/// At most this many bytes are read from `tls.ca_certificate` (a bundle of roots: Debian's
/// whole ca-certificates.crt is about 200 KB).
pub const CA_LIMIT: u64 = 1024 * 1024;

/// `read_small` with another bound than `LIMIT`.
pub fn read_limited(path: &Path, limit: u64) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > limit {
        return Err(format!(
            "{} bytes, more than the {limit} such a file may have",
            meta.len()
        ));
    }
    let mut text = String::new();
    std::fs::File::open(path)
        .map_err(|e| e.to_string())?
        .take(limit + 1)
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    if text.len() as u64 > limit {
        return Err(format!("grew past {limit} bytes while being read"));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_fifos_directories_and_big_files_are_refused() {
        assert_eq!(
            read_small(Path::new("/dev/zero")).unwrap_err(),
            "not a regular file"
        );
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_small(dir.path()).unwrap_err(), "not a regular file");
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        assert_eq!(read_small(&fifo).unwrap_err(), "not a regular file");
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'a'; LIMIT as usize + 1]).unwrap();
        assert!(read_small(&big).unwrap_err().contains("more than"));
        let small = dir.path().join("small");
        std::fs::write(&small, "ssh-ed25519 AAAA\n").unwrap();
        assert_eq!(read_small(&small).unwrap(), "ssh-ed25519 AAAA\n");
    }
}
