//! The HTTPS wing's template variables.

use serde::Serialize;

use crate::config::servers::url_host;
use crate::config::tls::Dns;
use crate::config::{Config, Server};

fn acme_state_dir(project: &str) -> String {
    format!("/var/lib/tandem-acme/{project}")
}

/// Where the app servers keep the certificate push key (see `KeptKeys`).
pub fn push_key_path(project: &str) -> String {
    format!("{}/push_key", acme_state_dir(project))
}

/// HTTPS on the app servers. With ACME, the first app server in the config is the issuer: it
/// runs the ACME client and its renewal timer, and hands the certificate to the others (its
/// peers), whose nginx passes challenge requests they cannot answer on to it.
#[derive(Clone, Debug, Serialize)]
pub struct TlsVars {
    pub enabled: bool,
    pub acme: bool,
    pub hsts: bool,
    /// The chain nginx serves and its key (root only).
    pub certificate: String,
    pub key: String,
    /// Served at /.well-known/acme-challenge/ on port 80.
    pub webroot: String,
    /// This server runs the ACME client.
    pub issuer: bool,
    /// The issuer's internal address, where peers pass challenge requests.
    pub issuer_ip: String,
    /// The other app servers' internal addresses (the issuer pushes the certificate there).
    pub peers: Vec<String>,
    /// ACME directory URL and contact.
    pub directory: String,
    pub email: String,
    /// Where the CA root from `tls.acme.ca_certificate` is kept on the issuer ("" if none).
    pub ca_certificate: String,
    /// tandem's ACME state on the issuer: account, certificates, settings (root only).
    pub state_dir: String,
    pub service: String,
    pub timer: String,
    pub renew_days: u32,
    /// The names on the certificate (the config's domains, wildcard included).
    pub names: Vec<String>,
    /// lego's file name for the certificate: the first name, `*` written `_`.
    pub lego_name: String,
    /// The issuer's script that obtains, renews and hands out the certificate.
    pub renew_script: String,
    /// The script the issuer's key may run on the other app servers.
    pub receive_script: String,
    /// lego's DNS provider for DNS-01 ("" for HTTP-01), the server lego asks whether the
    /// record is there ("" for its default), and the file with the provider's variables.
    pub dns_provider: String,
    pub dns_resolver: String,
    pub dns_env_file: String,
    /// The dns env file's variables whose values plans may show.
    pub dns_public_env: Vec<String>,
}

impl TlsVars {
    pub fn of(config: &Config, server: &Server) -> TlsVars {
        let project = &config.project;
        let acme = config.tls.acme();
        let issuer = config.certificate_issuer();
        let state_dir = acme_state_dir(project);
        TlsVars {
            enabled: config.tls.enabled(),
            acme: acme.is_some(),
            hsts: config.tls.hsts,
            certificate: format!("/etc/ssl/tandem/{project}.crt"),
            key: format!("/etc/ssl/tandem/{project}.key"),
            webroot: "/var/www/tandem-acme".into(),
            issuer: issuer.is_some_and(|i| i.name == server.name),
            issuer_ip: issuer.map(|i| url_host(i.internal_ip)).unwrap_or_default(),
            peers: config
                .app_servers()
                .filter(|s| issuer.is_some_and(|i| i.name != s.name))
                .map(|s| s.internal_ip.to_string())
                .collect(),
            directory: acme.map(|a| a.directory.clone()).unwrap_or_default(),
            email: acme.and_then(|a| a.email.clone()).unwrap_or_default(),
            ca_certificate: match &config.tls.ca_certificate {
                Some(_) => format!("{state_dir}/ca.pem"),
                None => String::new(),
            },
            service: format!("tandem-acme-{project}.service"),
            timer: format!("tandem-acme-{project}.timer"),
            renew_days: acme.map_or(crate::config::tls::RENEW_DAYS, |a| a.renew_days),
            names: config.domains.clone(),
            lego_name: config
                .domains
                .first()
                .map(|d| d.replace('*', "_"))
                .unwrap_or_default(),
            renew_script: format!("/usr/local/lib/tandem/acme-{project}"),
            receive_script: format!("/usr/local/lib/tandem/tls-receive-{project}"),
            dns_provider: match acme.and_then(|a| a.dns.as_ref()) {
                Some(Dns::Rfc2136 { .. }) => "rfc2136".into(),
                Some(Dns::Lego { provider, .. }) => provider.clone(),
                None => String::new(),
            },
            dns_resolver: match acme.and_then(|a| a.dns.as_ref()) {
                Some(Dns::Rfc2136 { nameserver, .. }) => nameserver.clone(),
                _ => String::new(),
            },
            dns_env_file: format!("{state_dir}/dns.env"),
            dns_public_env: [
                "RFC2136_NAMESERVER",
                "RFC2136_TSIG_KEY",
                "RFC2136_TSIG_ALGORITHM",
            ]
            .map(String::from)
            .to_vec(),
            state_dir,
        }
    }
}
