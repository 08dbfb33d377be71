//! `Secret`: a value that must never be printed. Reading the database password from where the
//! config says it lives (an environment variable or a file).

use std::fmt;
use std::path::Path;

use anyhow::{Context, bail};

use crate::config::{Config, PasswordSource};

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A secret read from a host (the SECRET_KEY tandem generated there before).
    pub fn new(value: String) -> Self {
        Secret(value)
    }

    /// A secret made in a unit test.
    #[cfg(test)]
    pub fn for_test(value: &str) -> Self {
        Secret(value.to_string())
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

/// The database password from `config.database.password`.
pub fn db_password(config: &Config) -> anyhow::Result<Secret> {
    let value = match &config.database.password {
        PasswordSource::Env(name) => std::env::var(name).with_context(|| {
            format!("the database password comes from ${name} (database.password in tandem.yml), which is not set")
        })?,
        PasswordSource::File(path) => {
            let base = config.path.parent().unwrap_or(Path::new("."));
            let path = base.join(path);
            let text = crate::local_file::read_small(&path).map_err(|why| {
                anyhow::anyhow!(
                    "reading the database password from {}: {why}",
                    path.display()
                )
            })?;
            text.lines().next().unwrap_or("").to_string()
        }
    };
    if value.is_empty() {
        bail!(
            "the database password ({}) is empty",
            config.database.password.describe()
        );
    }
    if value.contains(['\n', '\r', '\0']) {
        bail!(
            "the database password ({}) contains a line break or NUL",
            config.database.password.describe()
        );
    }
    Ok(Secret(value))
}
