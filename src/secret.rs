//! `Secret`: a value that must never be printed. Reading the database password from where the
//! config says it lives (an environment variable or a file).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use anyhow::{Context, bail};

use crate::config::{Config, PasswordSource};

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A secret value: one read from a host (the SECRET_KEY tandem generated there), or a test's.
    pub fn new(value: String) -> Self {
        Secret(value)
    }

    /// The value, for the few places that must send it (over stdin) or hash it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Every secret a run needs, read once: the database password and `django.secret_env`.
pub struct RunSecrets {
    pub db_password: Secret,
    pub env: BTreeMap<String, Secret>,
}

/// Reads every secret the config names.
pub fn read_all(config: &Config) -> anyhow::Result<RunSecrets> {
    let mut env = BTreeMap::new();
    for (name, source) in &config.django.secret_env {
        env.insert(
            name.clone(),
            read(config, source, &format!("django.secret_env.{name}"))?,
        );
    }
    Ok(RunSecrets {
        db_password: db_password(config)?,
        env,
    })
}

/// The database password from `config.database.password`.
pub fn db_password(config: &Config) -> anyhow::Result<Secret> {
    read(config, &config.database.password, "database.password")
}

/// The value `source` names (`field` says which one, for messages: never the value).
fn read(config: &Config, source: &PasswordSource, field: &str) -> anyhow::Result<Secret> {
    let value = match source {
        PasswordSource::Env(name) => std::env::var(name).with_context(|| {
            format!("{field} in tandem.yml comes from ${name}, which is not set")
        })?,
        PasswordSource::File(path) => {
            let base = config.path.parent().unwrap_or(Path::new("."));
            let path = base.join(path);
            let text = crate::local_file::read_small(&path)
                .map_err(|why| anyhow::anyhow!("reading {field} from {}: {why}", path.display()))?;
            text.lines().next().unwrap_or("").to_string()
        }
    };
    if value.is_empty() {
        bail!("{field} ({}) is empty", source.describe());
    }
    if value.contains(['\n', '\r', '\0']) {
        bail!(
            "{field} ({}) contains a line break or NUL",
            source.describe()
        );
    }
    Ok(Secret(value))
}
