//! `Assets`: the templates and playbooks tandem ships inside its binary, optionally overridden
//! file by file from a directory laid out like the source tree (`templates/…`, `playbooks/…`).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

macro_rules! embed {
    ($($path:literal),* $(,)?) => {
        &[$(($path, include_str!(concat!("../../", $path)))),*]
    };
}

/// Every shipped file, by its path in the source tree.
const BUILTIN: &[(&str, &str)] = embed!(
    "playbooks/base.yml",
    "playbooks/db.yml",
    "playbooks/app.yml",
    "playbooks/backup.yml",
    "playbooks/consensus.yml",
    "templates/ssh/00-tandem.conf",
    "templates/sudo/deploy-user",
    "templates/nginx/site.conf",
    "templates/systemd/gunicorn.socket",
    "templates/systemd/gunicorn.service",
    "templates/systemd/gunicorn-bridge.service",
    "templates/django/env",
    "templates/django/gunicorn.conf.py",
    "templates/postgres/00-tandem.conf",
    "templates/postgres/pg_hba.block",
    "templates/cluster/etcd",
    "templates/cluster/patroni.yml",
    "templates/cluster/patroni-restart.conf",
    "templates/postgres/10-tandem-tuning.conf",
    "templates/tls/acme-renew",
    "templates/tls/acme.service",
    "templates/tls/acme.timer",
    "templates/tls/dns.env",
    "templates/tls/receive",
    "templates/postgres/20-tandem-backup.conf",
    "templates/backup/pgbackrest-db.conf",
    "templates/backup/pgbackrest-repository.conf",
    "templates/backup/pgbackrest-only",
    "templates/backup/ssh_config",
    "templates/backup/authorized_keys",
    "templates/backup/backup",
    "templates/backup/backup.service",
    "templates/backup/backup.timer",
    "templates/systemd/process.service",
    "templates/redis/tandem.conf",
    "templates/redis/override.conf",
);

#[derive(Clone, Debug, Default)]
pub struct Assets {
    override_dir: Option<PathBuf>,
}

impl Assets {
    pub fn builtin() -> Self {
        Assets { override_dir: None }
    }

    /// Files in `dir` (e.g. `dir/templates/postgres/pg_hba.block`) win over the built-in ones.
    pub fn with_overrides(dir: &Path) -> anyhow::Result<Self> {
        if !dir.is_dir() {
            bail!("override directory {} does not exist", dir.display());
        }
        Ok(Assets {
            override_dir: Some(dir.to_path_buf()),
        })
    }

    /// `(where it came from, text)` of `templates/<name>`.
    pub fn template(&self, name: &str) -> anyhow::Result<(String, String)> {
        self.read(&format!("templates/{name}"))
    }

    pub fn playbook(&self, name: &str) -> anyhow::Result<(String, String)> {
        self.read(&format!("playbooks/{name}"))
    }

    fn read(&self, rel: &str) -> anyhow::Result<(String, String)> {
        if rel.split('/').any(|p| p == ".." || p.is_empty()) {
            bail!("`{rel}` is not a plain relative path");
        }
        if let Some(dir) = &self.override_dir {
            let path = dir.join(rel);
            if path.is_file() {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading override {}", path.display()))?;
                return Ok((path.display().to_string(), text));
            }
        }
        BUILTIN
            .iter()
            .find(|(path, _)| *path == rel)
            .map(|(path, text)| (format!("<built-in>/{path}"), text.to_string()))
            .with_context(|| {
                let known: Vec<&str> = BUILTIN.iter().map(|(p, _)| *p).collect();
                format!("no such file `{rel}`; tandem ships: {}", known.join(", "))
            })
    }
}
