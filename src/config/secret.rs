//! `Secret`: a value that must never be printed. Reading the database password from where the
//! config says it lives (an environment variable or a file).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use anyhow::bail;

use crate::config::{Config, PasswordSource, TlsMode};

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A secret value: one read from a host (the SECRET_KEY tandem generated there), or a test's.
    pub fn new(value: String) -> Self {
        Secret(value)
    }

    /// What stands in for a secret that could not be read (`read_available`).
    pub fn unread() -> Self {
        Secret(UNREAD.to_string())
    }

    /// Whether this stands in for a secret that could not be read.
    pub fn is_unread(&self) -> bool {
        self.0 == UNREAD
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

/// Every secret a run needs, read once: the database password, `django.secret_env`, and the
/// certificate and key of `tls.mode: files`.
pub struct RunSecrets {
    pub db_password: Secret,
    pub env: BTreeMap<String, Secret>,
    pub tls_files: Option<TlsFiles>,
    /// `tls.ca_certificate`'s PEM roots ("" when none).
    pub tls_ca_certificate: String,
    /// The variables lego's DNS provider reads (`tls.acme.dns`), TSIG secret included.
    pub tls_dns_env: BTreeMap<String, Secret>,
    /// The backup repository's passphrase (`backup.encryption_key`).
    pub backup_cipher: Option<Secret>,
    /// Redis's password (`broker.password`).
    pub broker_password: Option<Secret>,
}

/// The operator's certificate chain (public) and its private key, both PEM.
pub struct TlsFiles {
    pub certificate: String,
    pub key: Secret,
}

/// Reads every secret the config names. When some cannot be read, the error names every one
/// of them (which field, which variable or file, why), never a value.
pub fn read_all(config: &Config) -> anyhow::Result<RunSecrets> {
    let (secrets, failed) = read_available(config);
    match failed.as_slice() {
        [] => Ok(secrets),
        [one] => bail!("{one}"),
        many => bail!(
            "{} secrets of {} cannot be read:\n  {}",
            many.len(),
            config.path.display(),
            many.join("\n  ")
        ),
    }
}

/// Every secret that can be read, a placeholder for each that cannot, and why each of those
/// cannot: for a command that plans but uses no secret itself (`deploy` ships code; the
/// provisioning it leaves to apply is then not compared).
pub fn read_available(config: &Config) -> (RunSecrets, Vec<String>) {
    let mut failed: Vec<String> = Vec::new();
    let db_password = keep(&mut failed, db_password(config));
    let mut env = BTreeMap::new();
    for (name, source) in &config.django.secret_env {
        if let Some(value) = keep(
            &mut failed,
            read(config, source, &format!("django.secret_env.{name}")),
        ) {
            env.insert(name.clone(), value);
        }
    }
    let tls_files = match &config.tls.mode {
        TlsMode::Files { certificate, key } => {
            let certificate = keep(
                &mut failed,
                read_pem(config, certificate, "tls.certificate", "CERTIFICATE"),
            );
            let key = keep(&mut failed, read_pem(config, key, "tls.key", "PRIVATE KEY"));
            certificate.zip(key).map(|(certificate, key)| TlsFiles {
                certificate: certificate.0.trim_end().to_string() + "\n",
                key: Secret(key.0.trim_end().to_string() + "\n"),
            })
        }
        _ => None,
    };
    let tls_ca_certificate = keep(&mut failed, ca_certificate(config))
        .flatten()
        .unwrap_or_default();
    let tls_dns_env = match config.tls.acme().and_then(|a| a.dns.as_ref()) {
        Some(dns) => keep(
            &mut failed,
            dns.env(|field, source| read(config, source, field).map(|s| s.0)),
        )
        .unwrap_or_default()
        .into_iter()
        .map(|(name, value)| (name, Secret(value)))
        .collect(),
        None => BTreeMap::new(),
    };
    let backup_cipher = config.backup.as_ref().and_then(|b| {
        keep(
            &mut failed,
            read(config, &b.encryption_key, "backup.encryption_key"),
        )
    });
    let broker_password = config
        .broker
        .as_ref()
        .and_then(|b| keep(&mut failed, read(config, &b.password, "broker.password")));
    let secrets = RunSecrets {
        db_password: db_password.unwrap_or_else(Secret::unread),
        env,
        tls_files,
        tls_ca_certificate,
        tls_dns_env,
        backup_cipher: backup_cipher.or_else(|| config.backup.as_ref().map(|_| Secret::unread())),
        broker_password: broker_password
            .or_else(|| config.broker.as_ref().map(|_| Secret::unread())),
    };
    (secrets, failed)
}

/// What stands in for a secret `read_available` could not read: letters and dashes only, so
/// it survives every quoting and URL-encoding a template puts a secret through, and a file
/// rendered from it can be told apart (`holds_unread`).
const UNREAD: &str = "tandem-secret-not-read";

/// Whether `rendered` was made from a secret that was not read: what it is compared with on a
/// server would differ for that reason alone.
pub fn holds_unread(rendered: &str) -> bool {
    rendered.contains(UNREAD)
}

/// `result`'s value, or (its error said in `failed`) none.
fn keep<T>(failed: &mut Vec<String>, result: anyhow::Result<T>) -> Option<T> {
    result.map_err(|e| failed.push(format!("{e:#}"))).ok()
}

/// A PEM document whose first BEGIN line ends in `kind` (`CERTIFICATE`, `PRIVATE KEY`); a
/// certificate chain must hold certificates only (a private key pasted into it would be
/// installed world-readable and shown in plans). Errors name the source and the block, never a
/// byte of what it holds.
fn read_pem(
    config: &Config,
    source: &PasswordSource,
    field: &str,
    kind: &str,
) -> anyhow::Result<Secret> {
    let text = read_whole(config, source, field)?;
    if kind == "CERTIFICATE" {
        if let Err(why) = crate::config::pem::certificates_only(&text) {
            bail!(
                "{field} ({}) is not a certificate chain: {why}",
                source.describe()
            );
        }
        return Ok(Secret(text));
    }
    let begins = text
        .lines()
        .find(|l| l.starts_with("-----BEGIN "))
        .is_some_and(|l| l.ends_with(&format!("{kind}-----")));
    if !begins || text.contains('\0') || crate::config::pem::labels(&text).is_err() {
        bail!(
            "{field} ({}) is not a PEM {}: expected a -----BEGIN ...{kind}----- line",
            source.describe(),
            kind.to_lowercase()
        );
    }
    Ok(Secret(text))
}

/// All of what `source` holds: the variable's value, or the file's text (a small regular
/// file, relative to tandem.yml).
fn read_whole(config: &Config, source: &PasswordSource, field: &str) -> anyhow::Result<String> {
    match source {
        // The error names the variable, never its value: a value that is not UTF-8 is still
        // the secret (std's NotUnicode error would print its bytes).
        PasswordSource::Env(name) => env_text(&config.path, field, name, std::env::var_os(name)),
        PasswordSource::File(path) => {
            let base = config.path.parent().unwrap_or(Path::new("."));
            let path = base.join(path);
            crate::config::local_file::read_small(&path)
                .map_err(|why| anyhow::anyhow!("reading {field} from {}: {why}", path.display()))
        }
    }
}

/// A variable's value as text. The errors name the variable, never the value: one that is not
/// UTF-8 is still the secret (std's `NotUnicode` error would print its bytes).
fn env_text(
    config: &Path,
    field: &str,
    name: &str,
    value: Option<std::ffi::OsString>,
) -> anyhow::Result<String> {
    let config = config.display();
    match value {
        None => bail!(
            "{field} in {config} comes from ${name}, which is not set: export {name}=... first, \
             or write `{{file: PATH}}` there"
        ),
        Some(value) => value.into_string().map_err(|_| {
            anyhow::anyhow!(
                "{field} in {config} comes from ${name}, which is not valid UTF-8 \
                 (value not shown); set it to UTF-8 text"
            )
        }),
    }
}

/// `tls.ca_certificate`'s roots (PEM), when the config names a private CA.
pub fn ca_certificate(config: &Config) -> anyhow::Result<Option<String>> {
    config
        .tls
        .ca_certificate
        .as_ref()
        .map(|path| {
            let path = config.path.parent().unwrap_or(Path::new(".")).join(path);
            let text =
                crate::config::local_file::read_limited(&path, crate::config::local_file::CA_LIMIT)
                    .map_err(|why| {
                        anyhow::anyhow!("reading tls.ca_certificate from {}: {why}", path.display())
                    })?;
            crate::config::pem::certificates_only(&text)
                .map_err(|why| anyhow::anyhow!("tls.ca_certificate ({}): {why}", path.display()))?;
            Ok(text)
        })
        .transpose()
}

/// The database password from `config.database.password`.
pub fn db_password(config: &Config) -> anyhow::Result<Secret> {
    read(config, &config.database.password, "database.password")
}

/// The value `source` names (`field` says which one, for messages: never the value).
fn read(config: &Config, source: &PasswordSource, field: &str) -> anyhow::Result<Secret> {
    // A file holds the value on its first line; a variable is the value.
    let value = match source {
        PasswordSource::Env(_) => read_whole(config, source, field)?,
        PasswordSource::File(_) => read_whole(config, source, field)?
            .lines()
            .next()
            .unwrap_or("")
            .to_string(),
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
    // Secrets reach the env file (every process's environment) and config files: as long as
    // a django.env value may be.
    if value.len() > crate::config::ENV_VALUE_LIMIT {
        bail!(
            "{field} ({}) has {} bytes, more than the {} a secret may have",
            source.describe(),
            value.len(),
            crate::config::ENV_VALUE_LIMIT
        );
    }
    Ok(Secret(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStringExt;

    #[test]
    fn a_private_key_in_the_certificate_chain_is_refused_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::testing::shop(dir.path());
        let chain = dir.path().join("fullchain.pem");
        let cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        std::fs::write(
            &chain,
            format!("{cert}-----BEGIN PRIVATE KEY-----\nS3CR3T\n-----END PRIVATE KEY-----\n"),
        )
        .unwrap();
        let source = PasswordSource::File(chain.clone());
        let err = read_pem(&config, &source, "tls.certificate", "CERTIFICATE")
            .err()
            .unwrap();
        let shown = format!("{err:#}");
        assert!(shown.contains("block 2 is a PRIVATE KEY"), "{shown}");
        assert!(!shown.contains("S3CR3T"), "{shown}");
        std::fs::write(&chain, format!("{cert}{cert}")).unwrap();
        assert!(read_pem(&config, &source, "tls.certificate", "CERTIFICATE").is_ok());
    }

    /// Every secret that cannot be read is named at once, with the config file it is in.
    #[test]
    fn every_missing_secret_is_named_at_once() {
        let dir = tempfile::tempdir().unwrap();
        crate::config::testing::shop(dir.path());
        let text = crate::config::testing::MINIMAL.replace(
            "password: {env: X}",
            "password: {env: TANDEM_TEST_UNSET_PASSWORD}",
        ) + "django: {source: ., wsgi_module: shop.wsgi, settings_module: shop.settings, \
               secret_env: {SENTRY_DSN: {env: TANDEM_TEST_UNSET_DSN}, API: {file: api.key}}}\n";
        let path = dir.path().join("prod.yml");
        let config = crate::config::parse(&path, &text).unwrap().config;
        let err = format!("{:#}", read_all(&config).err().unwrap());
        assert!(err.starts_with("3 secrets of "), "{err}");
        assert!(err.contains("prod.yml"), "{err}");
        for said in [
            "database.password in",
            "$TANDEM_TEST_UNSET_PASSWORD, which is not set",
            "django.secret_env.SENTRY_DSN in",
            "$TANDEM_TEST_UNSET_DSN",
            "reading django.secret_env.API from",
        ] {
            assert!(err.contains(said), "{said}: {err}");
        }
    }

    #[test]
    fn a_variable_that_is_not_utf8_is_named_never_shown() {
        let bytes = b"p\xe4ssw\xf6rd".to_vec();
        let err = env_text(
            Path::new("tandem.yml"),
            "backup.encryption_key",
            "K",
            Some(std::ffi::OsString::from_vec(bytes)),
        )
        .unwrap_err();
        let shown = format!("{err:#} {err:?}");
        assert!(shown.contains("$K") && shown.contains("UTF-8"), "{shown}");
        assert!(!shown.contains("ssw") && !shown.contains("xE4"), "{shown}");
        let unset = env_text(Path::new("prod.yml"), "database.password", "P", None).unwrap_err();
        assert!(unset.to_string().contains("in prod.yml"), "{unset}");
        assert!(unset.to_string().contains("not set"), "{unset}");
    }
}
