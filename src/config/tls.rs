//! `tls:` in tandem.yml: how the app servers get their certificate (ACME, files, or off) and
//! whether browsers are told to insist on HTTPS (HSTS).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{PasswordSource, Validator};
use crate::config::yaml::Spanned;

/// Let's Encrypt's production directory: the default CA.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// A certificate is renewed when it expires within this many days.
pub const RENEW_DAYS: u32 = 30;

#[derive(Clone, Debug, Serialize)]
pub struct Tls {
    pub mode: TlsMode,
    /// Send Strict-Transport-Security (two years). Off for a first roll-out, since browsers
    /// remember it.
    pub hsts: bool,
    /// Root certificates (PEM, one or more) of a private CA, relative to tandem.yml: trusted
    /// by the ACME client for the CA's directory and by `verify` for the served chain. The
    /// public CAs need none.
    pub ca_certificate: Option<PathBuf>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain HTTP only (explicit, and warned about).
    Off,
    /// A certificate chain and its key from the operator, like the password: `{file: ..}` or
    /// `{env: ..}`.
    Files {
        certificate: PasswordSource,
        key: PasswordSource,
    },
    /// An ACME CA issues and renews the certificate.
    Acme(Acme),
}

#[derive(Clone, Debug, Serialize)]
pub struct Acme {
    pub directory: String,
    pub email: Option<String>,
    /// Renew when the certificate expires within this many days.
    pub renew_days: u32,
    /// DNS-01 (needed for a wildcard); HTTP-01 when None.
    pub dns: Option<Dns>,
}

/// How the ACME client publishes DNS-01 records.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dns {
    /// RFC 2136 dynamic updates signed with a TSIG key (BIND, Knot, PowerDNS, many providers).
    Rfc2136 {
        /// `host:port` of the primary server that takes the updates (and is asked whether the
        /// record is there).
        nameserver: String,
        tsig_key: String,
        tsig_algorithm: String,
        tsig_secret: PasswordSource,
    },
    /// Any other DNS provider lego knows (`lego dnshelp`), with its variables; `exec` runs a
    /// hook program of yours.
    Lego {
        provider: String,
        env: BTreeMap<String, PasswordSource>,
    },
}

/// TSIG algorithms lego's RFC 2136 client signs with.
pub const TSIG_ALGORITHMS: &[&str] = &[
    "hmac-sha256",
    "hmac-sha512",
    "hmac-sha384",
    "hmac-sha224",
    "hmac-sha1",
];

impl Tls {
    pub fn enabled(&self) -> bool {
        !matches!(self.mode, TlsMode::Off)
    }

    pub fn acme(&self) -> Option<&Acme> {
        match &self.mode {
            TlsMode::Acme(acme) => Some(acme),
            _ => None,
        }
    }
}

pub(super) mod raw {
    use super::*;

    #[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
    #[serde(rename_all = "lowercase")]
    pub enum Mode {
        Acme,
        Files,
        Off,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Tls {
        pub mode: Option<Spanned<Mode>>,
        pub hsts: Option<bool>,
        pub acme: Option<Spanned<Acme>>,
        pub certificate: Option<Spanned<PasswordSource>>,
        pub key: Option<Spanned<PasswordSource>>,
        pub ca_certificate: Option<Spanned<String>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Acme {
        pub directory: Option<Spanned<String>>,
        pub email: Option<Spanned<String>>,
        pub renew_days: Option<Spanned<u32>>,
        pub dns: Option<Spanned<Dns>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Dns {
        pub rfc2136: Option<Spanned<Rfc2136>>,
        pub lego: Option<Spanned<Lego>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Rfc2136 {
        pub nameserver: Spanned<String>,
        pub tsig_key: Spanned<String>,
        #[serde(default)]
        pub tsig_algorithm: Option<Spanned<String>>,
        pub tsig_secret: Spanned<PasswordSource>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Lego {
        pub provider: Spanned<String>,
        /// lego's variables for the provider, each from {env}/{file} like a password.
        #[serde(default)]
        pub secret_env: BTreeMap<String, Spanned<PasswordSource>>,
    }
}

impl Validator<'_> {
    /// `raw` is None when tandem.yml has no `tls:`: ACME from Let's Encrypt (its errors then
    /// point at `anchor`).
    pub(super) fn tls<T>(
        &mut self,
        raw: Option<Spanned<raw::Tls>>,
        domains: &[String],
        anchor: &Spanned<T>,
    ) -> Tls {
        let Some(raw) = raw else {
            return Tls {
                mode: TlsMode::Acme(self.acme(None, domains, anchor)),
                hsts: true,
                ca_certificate: None,
            };
        };
        let mode = raw.value.mode.as_ref().map_or(raw::Mode::Acme, |m| m.value);
        let hsts = raw.value.hsts.unwrap_or(true);
        if mode != raw::Mode::Acme
            && let Some(acme) = &raw.value.acme
        {
            self.error(
                acme,
                "tls.acme",
                "`acme:` settings, but tls.mode is not acme".into(),
                "remove `acme:`, or set `mode: acme`",
            );
        }
        if mode != raw::Mode::Files {
            for (field, source) in [
                ("certificate", &raw.value.certificate),
                ("key", &raw.value.key),
            ] {
                if let Some(source) = source {
                    self.error(
                        source,
                        &format!("tls.{field}"),
                        format!("`{field}:` is for tls.mode files"),
                        "remove it, or set `mode: files`",
                    );
                }
            }
        }
        let mode = match mode {
            raw::Mode::Off => {
                let (message, fix) = (
                    "HTTPS is off: passwords and session cookies cross the network in clear",
                    "use `mode: acme` (the default) or `mode: files` for production",
                );
                match &raw.value.mode {
                    Some(at) => self.warning(at, "tls.mode", message.into(), fix),
                    None => self.warning(&raw, "tls.mode", message.into(), fix),
                }
                TlsMode::Off
            }
            raw::Mode::Files => {
                let source =
                    |v: &mut Self, field: &str, value: &Option<Spanned<PasswordSource>>| match value
                    {
                        Some(s) => {
                            v.secret_source(s, &format!("tls.{field}"));
                            Some(s.value.clone())
                        }
                        None => {
                            v.error(
                                &raw,
                                &format!("tls.{field}"),
                                format!("tls.mode files needs `{field}:`"),
                                "add `certificate: {file: fullchain.pem}` and `key: {file: privkey.pem}` (or {env: NAME})",
                            );
                            None
                        }
                    };
                let certificate = source(self, "certificate", &raw.value.certificate);
                let key = source(self, "key", &raw.value.key);
                match (certificate, key) {
                    (Some(certificate), Some(key)) => TlsMode::Files { certificate, key },
                    _ => TlsMode::Off,
                }
            }
            raw::Mode::Acme => TlsMode::Acme(self.acme(raw.value.acme.as_ref(), domains, &raw)),
        };
        let ca_certificate = raw.value.ca_certificate.as_ref().map(|path| {
            self.ca_certificate(path);
            PathBuf::from(&path.value)
        });
        Tls {
            mode,
            hsts,
            ca_certificate,
        }
    }

    /// The private CA's roots, read as key files are (a regular file of bounded size: a FIFO
    /// or /dev/zero cannot hang check), certificates only.
    fn ca_certificate(&mut self, path: &Spanned<String>) {
        let full = self
            .path
            .parent()
            .unwrap_or(std::path::Path::new("."))
            .join(&path.value);
        match crate::config::local_file::read_limited(&full, crate::config::local_file::CA_LIMIT) {
            Ok(text) => {
                if let Err(why) = crate::config::pem::certificates_only(&text) {
                    self.error(
                        path,
                        "tls.ca_certificate",
                        format!("{}: {why}", full.display()),
                        "point it at the CA's root certificate in PEM (-----BEGIN CERTIFICATE----- blocks only)",
                    );
                }
            }
            Err(e) => self.error(
                path,
                "tls.ca_certificate",
                format!("cannot read {}: {e}", full.display()),
                "write the path of the CA's root certificate (a regular file), relative to tandem.yml",
            ),
        }
    }

    fn acme<T>(
        &mut self,
        raw: Option<&Spanned<raw::Acme>>,
        domains: &[String],
        tls: &Spanned<T>,
    ) -> Acme {
        let mut acme = Acme {
            directory: LETS_ENCRYPT.into(),
            email: None,
            renew_days: RENEW_DAYS,
            dns: None,
        };
        let dns_missing = raw.is_none_or(|r| r.value.dns.is_none());
        if let Some(wildcard) = domains.iter().find(|d| d.starts_with("*."))
            && dns_missing
        {
            self.error(
                tls,
                "tls.acme.dns",
                format!("`{wildcard}` can only be proven over DNS (DNS-01), and no `dns:` is set"),
                "add `dns: {rfc2136: {nameserver: NS:53, tsig_key: NAME, tsig_secret: {env: TSIG_SECRET}}}` under tls.acme, or `dns: {lego: {provider: NAME, secret_env: {...}}}` for another DNS provider",
            );
        }
        let email_missing = raw.is_none_or(|r| r.value.email.is_none());
        if email_missing {
            self.error(
                tls,
                "tls.acme.email",
                "HTTPS from ACME (the default) needs an e-mail address for the CA account".into(),
                "add `tls: {acme: {email: ops@example.com}}` (the CA writes there before a certificate expires), or choose `mode: files` or `mode: off`",
            );
        }
        let Some(raw) = raw else { return acme };
        if let Some(directory) = &raw.value.directory {
            if !is_https_url(&directory.value) {
                self.error(
                    directory,
                    "tls.acme.directory",
                    format!("`{}` is not an https:// URL", directory.value),
                    "write the CA's ACME directory URL, e.g. https://acme-v02.api.letsencrypt.org/directory",
                );
            }
            acme.directory = directory.value.clone();
        }
        if let Some(days) = &raw.value.renew_days {
            if !(1..=3650).contains(&days.value) {
                self.error(
                    days,
                    "tls.acme.renew_days",
                    format!("{} days is not a renewal window", days.value),
                    "write how many days before expiry to renew, e.g. 30 (Let's Encrypt's certificates last 90)",
                );
            }
            acme.renew_days = days.value;
        }
        if let Some(dns) = &raw.value.dns {
            acme.dns = self.dns(dns);
        }
        if let Some(email) = &raw.value.email {
            if !is_email(&email.value) {
                self.error(
                    email,
                    "tls.acme.email",
                    format!("`{}` is not an e-mail address", email.value),
                    "write the address the CA may write to about expiring certificates, e.g. ops@example.com",
                );
            }
            acme.email = Some(email.value.clone());
        }
        acme
    }
}

impl Validator<'_> {
    fn dns(&mut self, raw: &Spanned<raw::Dns>) -> Option<Dns> {
        match (&raw.value.rfc2136, &raw.value.lego) {
            (Some(r), None) => {
                let r = &r.value;
                if !is_host_port(&r.nameserver.value) {
                    self.error(
                        &r.nameserver,
                        "tls.acme.dns.rfc2136.nameserver",
                        format!("`{}` is not host:port", r.nameserver.value),
                        "write the primary DNS server that accepts the updates, e.g. 10.0.0.53:53",
                    );
                }
                let key_ok = !r.tsig_key.value.is_empty()
                    && r.tsig_key
                        .value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c));
                if !key_ok {
                    self.error(
                        &r.tsig_key,
                        "tls.acme.dns.rfc2136.tsig_key",
                        format!("`{}` is not a TSIG key name", r.tsig_key.value),
                        "write the key's name as the DNS server knows it, e.g. tandem-acme.",
                    );
                }
                let algorithm = match &r.tsig_algorithm {
                    Some(a) if !TSIG_ALGORITHMS.contains(&a.value.as_str()) => {
                        self.error(
                            a,
                            "tls.acme.dns.rfc2136.tsig_algorithm",
                            format!("`{}` is not a TSIG algorithm lego signs with", a.value),
                            &format!("write one of: {}", TSIG_ALGORITHMS.join(", ")),
                        );
                        a.value.clone()
                    }
                    Some(a) => a.value.clone(),
                    None => "hmac-sha256".into(),
                };
                self.secret_source(&r.tsig_secret, "tls.acme.dns.rfc2136.tsig_secret");
                Some(Dns::Rfc2136 {
                    nameserver: r.nameserver.value.clone(),
                    tsig_key: r.tsig_key.value.clone(),
                    tsig_algorithm: algorithm,
                    tsig_secret: r.tsig_secret.value.clone(),
                })
            }
            (None, Some(l)) => {
                let l = &l.value;
                let ok = !l.provider.value.is_empty()
                    && l.provider.value.chars().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.'
                    });
                if !ok {
                    self.error(
                        &l.provider,
                        "tls.acme.dns.lego.provider",
                        format!("`{}` is not a lego DNS provider name", l.provider.value),
                        "write the code `lego dnshelp` lists, e.g. cloudflare, route53, exec",
                    );
                }
                for (name, source) in &l.secret_env {
                    if !crate::config::identifier::is_env_name(name) {
                        self.error(
                            source,
                            &format!("tls.acme.dns.lego.secret_env.{name}"),
                            format!("`{name}` is not an environment variable name"),
                            "write the variable lego's provider reads, e.g. CF_DNS_API_TOKEN",
                        );
                    } else if let Some(why) =
                        crate::config::identifier::changes_how_programs_run(name)
                            .or_else(|| {
                                RENEWAL_OWN
                                    .contains(&name.as_str())
                                    .then_some("the renewal script uses it for itself")
                            })
                            .or_else(|| {
                                name.starts_with("LEGO_").then_some(
                                    "lego reads it as one of its own flags, which tandem sets",
                                )
                            })
                    {
                        self.error(
                            source,
                            &format!("tls.acme.dns.lego.secret_env.{name}"),
                            format!("`{name}` cannot be set here: {why}"),
                            "write only the variables lego's DNS provider reads, e.g. CF_DNS_API_TOKEN",
                        );
                    }
                    self.secret_source(source, &format!("tls.acme.dns.lego.secret_env.{name}"));
                }
                Some(Dns::Lego {
                    provider: l.provider.value.clone(),
                    env: l
                        .secret_env
                        .iter()
                        .map(|(k, v)| (k.clone(), v.value.clone()))
                        .collect(),
                })
            }
            _ => {
                self.error(
                    raw,
                    "tls.acme.dns",
                    "`dns:` needs exactly one of `rfc2136:` and `lego:`".into(),
                    "keep one: rfc2136 for a server that takes dynamic updates, lego for another provider",
                );
                None
            }
        }
    }
}

impl Dns {
    /// The variables lego's DNS provider reads, with the public ones' values and each secret
    /// as `secret(name, source)` gives it (read, or a placeholder).
    pub fn env<E>(
        &self,
        mut secret: impl FnMut(&str, &PasswordSource) -> Result<String, E>,
    ) -> Result<std::collections::BTreeMap<String, String>, E> {
        let mut env = std::collections::BTreeMap::new();
        match self {
            Dns::Rfc2136 {
                nameserver,
                tsig_key,
                tsig_algorithm,
                tsig_secret,
            } => {
                env.insert("RFC2136_NAMESERVER".into(), nameserver.clone());
                env.insert("RFC2136_TSIG_KEY".into(), tsig_key.clone());
                // lego names the algorithm as a DNS name: with its final dot.
                env.insert(
                    "RFC2136_TSIG_ALGORITHM".into(),
                    format!("{}.", tsig_algorithm.trim_end_matches('.')),
                );
                env.insert(
                    "RFC2136_TSIG_SECRET".into(),
                    secret("tls.acme.dns.rfc2136.tsig_secret", tsig_secret)?,
                );
            }
            Dns::Lego { env: vars, .. } => {
                for (name, source) in vars {
                    let field = format!("tls.acme.dns.lego.secret_env.{name}");
                    env.insert(name.clone(), secret(&field, source)?);
                }
            }
        }
        Ok(env)
    }
}

/// The variables of the renewal script (templates/tls/acme-renew), which sources lego's
/// provider settings: a provider variable by one of these names would replace the script's.
const RENEWAL_OWN: &[&str] = &["STATE", "NAMES", "CERT", "KEY", "failed", "peer"];

/// `host:port`, `[v6]:port`: no shell or quote characters.
fn is_host_port(value: &str) -> bool {
    value.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty()
            && port.parse::<u16>().is_ok_and(|p| p > 0)
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
    })
}

fn is_https_url(url: &str) -> bool {
    url.strip_prefix("https://").is_some_and(|rest| {
        !rest.is_empty()
            && rest
                .chars()
                .all(|c| c.is_ascii_graphic() && c != '\'' && c != '"' && c != '\\')
    })
}

fn is_email(email: &str) -> bool {
    email.split_once('@').is_some_and(|(user, host)| {
        !user.is_empty()
            && host.contains('.')
            && email
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "@.-_+".contains(c))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::MINIMAL;

    /// The diagnostics `check` shows for MINIMAL with `tls` (and `domains`) replaced.
    fn problems(domains: &str, tls: &str) -> String {
        crate::config::testing::diagnostics(
            &MINIMAL
                .replace(
                    "domains: [shop.example.com]",
                    &format!("domains: {domains}"),
                )
                .replace("tls: {acme: {email: ops@example.com}}\n", tls),
        )
    }

    #[test]
    fn each_mode_says_what_it_is_missing() {
        let no_tls = problems("[shop.example.com]", "");
        assert!(no_tls.contains("tls.acme.email"), "{no_tls}");
        let wildcard = problems(
            "[shop.example.com, \"*.shop.example.com\"]",
            "tls: {acme: {email: ops@example.com}}\n",
        );
        assert!(
            wildcard.contains("DNS-01") && wildcard.contains("rfc2136"),
            "{wildcard}"
        );
        let files = problems(
            "[a.example.com]",
            "tls: {mode: files, certificate: {file: c.pem}}\n",
        );
        assert!(files.contains("tls.mode files needs `key:`"), "{files}");
        let mixed = problems(
            "[a.example.com]",
            "tls: {mode: off, acme: {email: a@b.example}}\n",
        );
        assert!(mixed.contains("tls.mode is not acme"), "{mixed}");
        let off = problems("[a.example.com]", "tls: {mode: off}\n");
        assert!(
            off.contains("warning") && off.contains("HTTPS is off"),
            "{off}"
        );
        let algorithm = problems(
            "[\"*.a.example.com\"]",
            "tls: {acme: {email: a@b.example, dns: {rfc2136: {nameserver: '10.0.0.5:53', tsig_key: k, tsig_algorithm: md5, tsig_secret: {env: S}}}}}\n",
        );
        assert!(algorithm.contains("hmac-sha256"), "{algorithm}");
        let both = problems(
            "[a.example.com]",
            "tls: {acme: {email: a@b.example, dns: {}}}\n",
        );
        assert!(both.contains("exactly one of"), "{both}");
        let fine = problems(
            "[\"*.a.example.com\"]",
            "tls: {acme: {email: a@b.example, dns: {lego: {provider: cloudflare, secret_env: {CF_DNS_API_TOKEN: {env: CF}}}}}}\n",
        );
        assert!(!fine.contains("tls"), "{fine}");
    }

    #[test]
    fn a_ca_certificate_is_read_as_key_files_are_and_holds_certificates_only() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let with_key = dir.path().join("ca.pem");
        std::fs::write(
            &with_key,
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n\
             -----BEGIN PRIVATE KEY-----\nS3CR3T\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        for (path, says) in [
            ("/dev/zero".into(), "not a regular file"),
            (fifo.display().to_string(), "not a regular file"),
            (with_key.display().to_string(), "block 2 is a PRIVATE KEY"),
        ] {
            // On a thread: a FIFO opened for reading would block the test forever.
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = tx.send(problems(
                    "[a.example.com]",
                    &format!("tls: {{acme: {{email: a@b.example}}, ca_certificate: {path}}}\n"),
                ));
            });
            let shown = rx
                .recv_timeout(std::time::Duration::from_secs(10))
                .expect("check answers");
            assert!(shown.contains(says), "{shown}");
            assert!(!shown.contains("S3CR3T"), "{shown}");
        }
    }

    #[test]
    fn urls_and_addresses() {
        assert!(is_https_url(LETS_ENCRYPT));
        assert!(is_https_url("https://10.77.0.1:14000/dir"));
        assert!(!is_https_url("http://example.com/dir"));
        assert!(!is_https_url("https://a b"));
        assert!(!is_https_url("https://x'$(id)'"));
        assert!(is_email("ops+tls@example.com"));
        assert!(!is_email("ops@localhost"));
        assert!(!is_email("a;b@example.com"));
        assert!(is_host_port("10.0.0.53:53"));
        assert!(is_host_port("[fd00::35]:53"));
        assert!(!is_host_port("ns.example.com"));
        assert!(!is_host_port("ns;id:53"));
    }
}
