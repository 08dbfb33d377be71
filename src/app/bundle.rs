//! `Bundle`: the Django code from `django.source`, packed locally (skipping .git, virtualenvs,
//! __pycache__ and whatever the project's .gitignore ignores) and identified by a hash of its
//! contents. `resource::release` ships it.

use anyhow::Context;
use sha2::{Digest, Sha256};

use crate::config::Config;

/// The packed source tree.
pub struct Bundle {
    /// sha256 over every shipped path and its bytes: the code's identity.
    pub hash: String,
    /// sha256 of the requirements file: the virtualenv's identity.
    pub requirements_hash: String,
    pub tar_gz: Vec<u8>,
    pub files: usize,
    /// The project's migration files (`<app>/migrations/0001_initial.py`, relative to the
    /// source), sorted: a plan names the ones the live release does not have.
    pub migrations: Vec<String>,
}

/// Whether `rel` (a path below the source) is a Django migration file: `migrations/` holding
/// a numbered module.
pub fn is_migration(rel: &str) -> bool {
    let mut parts = rel.rsplit('/');
    let (Some(file), Some(dir)) = (parts.next(), parts.next()) else {
        return false;
    };
    dir == "migrations"
        && file.ends_with(".py")
        && file.chars().next().is_some_and(|c| c.is_ascii_digit())
}

/// Packs `config.django.source`.
pub fn bundle(config: &Config) -> anyhow::Result<Bundle> {
    let root = &config.django.source;
    let mut paths = Vec::new();
    let walker = ignore::WalkBuilder::new(root)
        .hidden(false)
        .git_ignore(true)
        .git_exclude(true)
        .require_git(false)
        .parents(false)
        .filter_entry(|e| {
            let name = e.file_name().to_string_lossy();
            let is_dir = e.file_type().is_some_and(|t| t.is_dir());
            !(name == ".git"
                || name == "__pycache__"
                || name.ends_with(".pyc")
                || (is_dir && e.path().join("pyvenv.cfg").exists()))
        })
        .build();
    for entry in walker {
        let entry = entry.with_context(|| format!("reading {}", root.display()))?;
        if entry.file_type().is_some_and(|t| t.is_file()) {
            let rel = entry
                .path()
                .strip_prefix(root)
                .expect("walk stays below its root")
                .to_path_buf();
            paths.push(rel);
        }
    }
    paths.sort();
    let mut hasher = Sha256::new();
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    builder.mode(tar::HeaderMode::Deterministic);
    for rel in &paths {
        let full = root.join(rel);
        let data = std::fs::read(&full).with_context(|| format!("reading {}", full.display()))?;
        hasher.update(rel.to_string_lossy().as_bytes());
        hasher.update([0]);
        hasher.update((data.len() as u64).to_le_bytes());
        hasher.update(&data);
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        let executable = std::fs::metadata(&full)
            .map(|m| is_executable(&m))
            .unwrap_or(false);
        header.set_mode(if executable { 0o755 } else { 0o644 });
        header.set_cksum();
        builder.append_data(&mut header, rel, data.as_slice())?;
    }
    let tar_gz = builder.into_inner()?.finish()?;
    let requirements =
        std::fs::read(root.join(&config.django.requirements)).with_context(|| {
            format!(
                "reading {} (django.requirements)",
                root.join(&config.django.requirements).display()
            )
        })?;
    Ok(Bundle {
        hash: hex::encode(hasher.finalize()),
        requirements_hash: hex::encode(Sha256::digest(&requirements)),
        tar_gz,
        files: paths.len(),
        migrations: paths
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .filter(|p| is_migration(p))
            .collect(),
    })
}

#[cfg(unix)]
fn is_executable(m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    m.permissions().mode() & 0o111 != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_skips_git_venvs_caches_and_gitignored_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for (path, text) in [
            ("manage.py", "print()"),
            ("requirements.txt", "Django\ngunicorn\npsycopg\n"),
            ("app/views.py", "x = 1"),
            ("a/settings.py", ""),
            ("a/wsgi.py", ""),
            (".gitignore", "local_settings.py\n"),
            ("local_settings.py", "SECRET = 1"),
            (".git/config", "[core]"),
            ("app/__pycache__/views.cpython-311.pyc", "bytes"),
            ("venv/pyvenv.cfg", "home = /usr"),
            ("venv/lib/x.py", "x"),
        ] {
            std::fs::create_dir_all(root.join(path).parent().unwrap()).unwrap();
            std::fs::write(root.join(path), text).unwrap();
        }
        let config = crate::config::parse(
            &root.join("tandem.yml"),
            &format!(
                "{}django:\n  source: .\n  wsgi_module: a.wsgi\n  settings_module: a.settings\n",
                crate::config::testing::MINIMAL
            ),
        )
        .unwrap()
        .config;
        let b = bundle(&config).unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(b.tar_gz.as_slice()));
        let mut names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                ".gitignore",
                "a/settings.py",
                "a/wsgi.py",
                "app/views.py",
                "manage.py",
                "requirements.txt"
            ]
        );
        let again = bundle(&config).unwrap();
        assert_eq!(again.hash, b.hash, "the hash depends on content only");
        std::fs::write(root.join("app/views.py"), "x = 2").unwrap();
        assert_ne!(bundle(&config).unwrap().hash, b.hash);
    }
}
