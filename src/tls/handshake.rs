//! HTTPS as a visitor sees it, from this machine: a TLS handshake with the name as SNI, the
//! chain checked against the configured roots (rustls), then one request for the headers.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

/// verify fails when a certificate expires within this many days: renewal (30 days ahead)
/// has been failing for two weeks by then.
pub const MIN_DAYS_LEFT: i64 = 14;

const TIMEOUT: Duration = Duration::from_secs(10);

/// What one handshake and request showed.
#[derive(Debug)]
pub struct Seen {
    /// The certificate's notAfter, seconds since the epoch.
    pub not_after: i64,
    /// The Strict-Transport-Security header, if sent.
    pub hsts: Option<String>,
    /// The HTTP status line's code.
    pub status: String,
}

/// Roots to check chains against: `pem` (a private CA's roots) when given, else the system's.
pub fn roots(pem: Option<&str>) -> anyhow::Result<rustls::RootCertStore> {
    let mut store = rustls::RootCertStore::empty();
    match pem {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                store
                    .add(cert.context("reading tls.ca_certificate")?)
                    .context("tls.ca_certificate holds a certificate rustls cannot use")?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = store.add(cert);
            }
        }
    }
    anyhow::ensure!(!store.is_empty(), "no root certificates to check against");
    Ok(store)
}

/// Connects to `addr` as `name` (SNI and Host), checks the chain and the name, and reads the
/// response head of `GET /`.
pub fn visit(addr: SocketAddr, name: &str, roots: &rustls::RootCertStore) -> anyhow::Result<Seen> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let server_name = ServerName::try_from(name.to_string())
        .with_context(|| format!("`{name}` is not a name TLS can check"))?;
    let mut conn = rustls::ClientConnection::new(Arc::new(config), server_name)?;
    let mut sock = TcpStream::connect_timeout(&addr, TIMEOUT)
        .with_context(|| format!("connecting to {addr}"))?;
    sock.set_read_timeout(Some(TIMEOUT))?;
    sock.set_write_timeout(Some(TIMEOUT))?;
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    tls.write_all(
        format!("GET / HTTP/1.1\r\nHost: {name}\r\nUser-Agent: tandem-verify\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .map_err(anyhow::Error::new)?;
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
        match tls.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) if head.is_empty() => return Err(anyhow::Error::new(e)),
            Err(_) => break,
        }
    }
    let not_after = conn
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|leaf| x509_parser::parse_x509_certificate(leaf.as_ref()).ok())
        .map(|(_, cert)| cert.validity().not_after.timestamp())
        .context("the server sent no certificate")?;
    let head = String::from_utf8_lossy(&head);
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("?")
        .to_string();
    let hsts = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("strict-transport-security")
            .then(|| v.trim().to_string())
    });
    Ok(Seen {
        not_after,
        hsts,
        status,
    })
}

/// A handshake for a name the site does not serve: Ok(()) when the server refuses it before
/// showing a certificate, Err(what happened) otherwise.
pub fn refuses_unknown_name(addr: SocketAddr, roots: &rustls::RootCertStore) -> Result<(), String> {
    match visit(addr, "tandem-unknown-host.invalid", roots) {
        Ok(seen) => Err(format!(
            "answered with a certificate (HTTP {})",
            seen.status
        )),
        // rustls hands its error to the socket API inside an io::Error.
        Err(e) => {
            let refused = e.chain().any(|cause| {
                cause
                    .downcast_ref::<std::io::Error>()
                    .and_then(|io| io.get_ref())
                    .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                    .is_some_and(|r| matches!(r, rustls::Error::AlertReceived(_)))
            });
            if refused {
                Ok(())
            } else {
                Err(format!("{e:#}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_roots_replace_the_system_ones() {
        let pem = "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n";
        assert!(roots(Some(pem)).is_err());
        assert!(roots(Some("")).is_err(), "no root at all is an error");
    }
}
