//! The HTTPS wing's checks, from this machine as visitors see the site: the certificate
//! chains to a trusted root, covers every domain (a tenant name under the wildcard), is not
//! about to expire, and HTTP redirects to HTTPS.

use std::net::{IpAddr, SocketAddr};

use crate::config::{Config, Server};
use crate::model::verification::Verification;

/// HTTPS as visitors see it, from this machine, on each app server's public address: each
/// name's certificate chains to the configured roots, covers the name (a wildcard is tried
/// with a made-up tenant) and has more than `MIN_DAYS_LEFT` days left; HSTS as configured;
/// a name we do not serve gets no certificate.
pub fn tls_checks_from_here(
    v: &mut Verification,
    config: &Config,
    server: &Server,
    ip: IpAddr,
    roots: &Result<rustls::RootCertStore, String>,
) {
    use crate::tls::handshake::{self, MIN_DAYS_LEFT};
    let name = &server.name;
    let roots = match roots {
        Ok(r) => r,
        Err(e) => {
            v.add(
                name,
                "HTTPS checks",
                false,
                e.clone(),
                "fix tls.ca_certificate",
            );
            return;
        }
    };
    let addr = SocketAddr::new(ip, 443);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    for (i, domain) in config.domains.iter().enumerate() {
        let host = match domain.strip_prefix("*.") {
            Some(apex) => format!("tandem-verify.{apex}"),
            None => domain.clone(),
        };
        match handshake::visit(addr, &host, roots) {
            Ok(seen) => {
                let days = (seen.not_after - now) / 86_400;
                let until = jiff::Timestamp::from_second(seen.not_after)
                    .map(|t| t.strftime("%Y-%m-%d").to_string())
                    .unwrap_or_default();
                v.add(
                    name,
                    &format!("certificate for {host} from {ip}"),
                    days > MIN_DAYS_LEFT,
                    format!("trusted, covers the name, valid until {until} ({days} days)"),
                    "renewal is failing: see `journalctl -u tandem-acme-<project>` on the first app server, or replace tls.certificate",
                );
                if i == 0 && config.tls.hsts {
                    let ok = seen.hsts.as_deref().is_some_and(|h| h.contains("max-age="));
                    v.add(
                        name,
                        "HSTS header",
                        ok,
                        seen.hsts.unwrap_or_else(|| "absent".into()),
                        "nginx sends Strict-Transport-Security when tls.hsts is true: run tandem apply",
                    );
                }
            }
            Err(e) => {
                let e = format!("{e:#}");
                let hint = if e.contains("UnknownIssuer") || e.contains("invalid peer certificate")
                {
                    "the certificate does not chain to the configured CA (a placeholder or another CA's): `tandem plan` shows the certificate's state; with a private CA set tls.ca_certificate"
                } else if e.contains("NotValidForName") {
                    "the certificate does not cover this name: apply again after changing domains (the issuer gets a new one)"
                } else if e.contains("Expired") {
                    "the certificate has expired: renewal is failing (journalctl -u tandem-acme-<project>)"
                } else {
                    "nginx does not answer HTTPS here: check ufw (443) and `nginx -t`"
                };
                v.add(
                    name,
                    &format!("certificate for {host} from {ip}"),
                    false,
                    e,
                    hint,
                );
            }
        }
    }
    let refused = handshake::refuses_unknown_name(addr, roots);
    v.add(
        name,
        "443 refuses names it does not serve",
        refused.is_ok(),
        refused
            .err()
            .unwrap_or_else(|| "handshake refused, no certificate shown".into()),
        "the 443 default_server with ssl_reject_handshake is missing: run tandem apply",
    );
}

/// The roots verify trusts: `tls.ca_certificate`'s when set (the chain must end there), else
/// the system's.
pub fn tls_roots(config: &Config) -> Result<rustls::RootCertStore, String> {
    let pem = crate::config::secret::ca_certificate(config).map_err(|e| format!("{e:#}"))?;
    crate::tls::handshake::roots(pem.as_deref()).map_err(|e| format!("{e:#}"))
}
