//! The commented starter tandem.yml that `tandem init` writes.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

pub const STARTER: &str = include_str!("../../examples/starter.yml");

/// Writes the starter config to `path`, or to `path/tandem.yml` when `path` is a directory
/// (`tandem init mysite/`); never overwrites. Returns the file written.
pub fn write_starter(path: &Path) -> anyhow::Result<PathBuf> {
    let path = if path.is_dir() {
        path.join("tandem.yml")
    } else {
        path.to_path_buf()
    };
    let mut file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
            bail!(
                "{} already exists; tandem init never overwrites a config",
                path.display()
            )
        }
        Err(err) => return Err(err).with_context(|| format!("creating {}", path.display())),
    };
    std::io::Write::write_all(&mut file, STARTER.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}
