//! The `tls` step: what an app server needs for HTTPS as `tls:` asks.
//!
//! - `files`: the operator's chain and key, written like any managed file.
//! - `acme`: the first app server is the issuer. It runs lego (Debian's package) from a
//!   oneshot service and a daily timer, answering HTTP-01 from a webroot that every app
//!   server's nginx serves; the others pass challenge requests they cannot answer on to the
//!   issuer, so the CA may reach any of them. The issuer then hands the same certificate and
//!   key to the others over SSH, with a key that may run one receiving script and nothing
//!   else. So renewal needs no tandem run, and every app server serves the same certificate.

pub mod handshake;
pub mod vars;
pub mod verify;

use crate::engine::templates::Templates;
use crate::engine::vars::Vars;
use crate::model::desired::CertificateSpec;
use crate::model::desired::{FileSpec, Op, Secrecy};
use crate::model::ufw::{COMMENT_PREFIX, UfwRule};

/// The ops of the `tls` step on an app server.
pub fn ops(vars: &Vars, t: &mut Templates) -> anyhow::Result<Vec<Op>> {
    let mut ops = Vec::new();
    let tls = &vars.tls;
    if !(tls.acme && tls.issuer) {
        // Not (or no longer) the issuer: its timer must not renew behind the config's back.
        ops.extend(retire_issuer(vars));
    }
    if !tls.enabled {
        return Ok(ops);
    }
    // 443 opens only with something listening on it.
    ops.extend([
        Op::UfwAllow(UfwRule {
            port: 443,
            proto: "tcp".into(),
            from: None,
            comment: format!("{COMMENT_PREFIX}: https"),
        }),
        dir("/etc/ssl/tandem", 0o755),
    ]);
    if !tls.acme {
        ops.push(file(
            &tls.certificate,
            &vars.secrets.tls_certificate,
            0o644,
            false,
        ));
        ops.push(file(&tls.key, &vars.secrets.tls_key, 0o600, true));
        return Ok(ops);
    }
    ops.extend([
        dir(&tls.webroot, 0o755),
        dir(&format!("{}/.well-known", tls.webroot), 0o755),
        dir(
            &format!("{}/.well-known/acme-challenge", tls.webroot),
            0o755,
        ),
        Op::PlaceholderCertificate {
            certificate: tls.certificate.clone(),
            key: tls.key.clone(),
        },
        dir("/usr/local/lib/tandem", 0o755),
        file(
            &tls.receive_script,
            &t.render("tls/receive", vars)?,
            0o755,
            false,
        ),
        dir("/var/lib/tandem-acme", 0o755),
        dir(&tls.state_dir, 0o700),
        file(
            &crate::tls::vars::push_key_path(&vars.project),
            &vars.secrets.tls_push_key,
            0o600,
            true,
        ),
    ]);
    if tls.issuer {
        ops.push(Op::Packages {
            names: vec!["lego".into()],
        });
        if !tls.dns_provider.is_empty() {
            ops.push(Op::File(
                FileSpec::new(
                    &tls.dns_env_file,
                    t.render("tls/dns.env", vars)?,
                    0o600,
                    "root",
                )
                .secret(Secrecy::Masked {
                    shown: tls.dns_public_env.clone(),
                }),
            ));
        }
        if !tls.ca_certificate.is_empty() {
            ops.push(file(
                &tls.ca_certificate,
                &vars.secrets.tls_ca_certificate,
                0o644,
                false,
            ));
        }
        ops.extend([
            file(
                &tls.renew_script,
                &t.render("tls/acme-renew", vars)?,
                0o755,
                false,
            ),
            file(
                &format!("/etc/systemd/system/{}", tls.service),
                &t.render("tls/acme.service", vars)?,
                0o644,
                false,
            ),
            file(
                &format!("/etc/systemd/system/{}", tls.timer),
                &t.render("tls/acme.timer", vars)?,
                0o644,
                false,
            ),
            Op::Service {
                name: tls.timer.clone(),
                enabled: true,
                running: true,
            },
        ]);
    }
    ops.push(Op::Certificate(CertificateSpec {
        path: tls.certificate.clone(),
        names: tls.names.clone(),
        issuer: tls.issuer,
        service: tls.service.clone(),
        renew_days: tls.renew_days,
    }));
    Ok(ops)
}

/// What an issuer had, for a server that is not one: the timer stopped and disabled, then its
/// units and script removed (after a switch to `files` or `off`, or when the first app server
/// changed).
fn retire_issuer(vars: &Vars) -> Vec<Op> {
    let tls = &vars.tls;
    vec![
        Op::Service {
            name: tls.timer.clone(),
            enabled: false,
            running: false,
        },
        Op::Absent {
            path: format!("/etc/systemd/system/{}", tls.timer),
        },
        Op::Absent {
            path: format!("/etc/systemd/system/{}", tls.service),
        },
        Op::Absent {
            path: tls.renew_script.clone(),
        },
    ]
}

/// The line an app server's deploy user gets for the issuer's key: it may run the receiving
/// script through sudo, and nothing else (no shell, no forwarding, no pty).
pub fn push_authorized_key(vars: &Vars) -> Option<String> {
    let tls = &vars.tls;
    (tls.acme && vars.host.role == "app" && !tls.peers.is_empty()).then(|| {
        format!(
            "restrict,command=\"sudo -n {}\" {} tandem-certificate-push",
            tls.receive_script, vars.secrets.tls_push_public
        )
    })
}

/// A root-owned directory.
fn dir(path: &str, mode: u32) -> Op {
    Op::directory(path, mode, "root")
}

/// A root-owned file; `secret` files are masked whole in plans.
fn file(path: &str, content: &str, mode: u32, secret: bool) -> Op {
    Op::File(
        FileSpec::new(path, content, mode, "root").secret(match secret {
            true => Secrecy::Masked { shown: Vec::new() },
            false => Secrecy::Public,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::secret::{RunSecrets, Secret};
    use crate::config::{Config, PasswordSource, Server, TlsMode};
    use crate::engine::vars::{HostFacts, KeptKeys, Secrets};

    fn two_apps(dir: &std::path::Path) -> Config {
        let mut config = crate::config::testing::shop(dir);
        let mut app2: Server = config.servers[1].clone();
        app2.name = "app2".into();
        app2.fqdn = "app2.example.com".into();
        app2.internal_ip = "10.0.0.4".parse().unwrap();
        config.servers.push(app2);
        config
    }

    /// Each op of the tls step on `server`, in one line.
    fn lines(config: &Config, server: &str) -> Vec<String> {
        let server = config.servers.iter().find(|s| s.name == server).unwrap();
        let run = RunSecrets {
            db_password: Secret::new("pw".into()),
            env: Default::default(),
            tls_files: Some(crate::config::secret::TlsFiles {
                certificate: "CERT\n".into(),
                key: Secret::new("KEY\n".into()),
            }),
            tls_ca_certificate: String::new(),
            tls_dns_env: Default::default(),
            backup_cipher: None,
            broker_password: None,
        };
        let kept = KeptKeys {
            secret_key: Secret::new("sk".into()),
            tls_push_key: Secret::new("PUSH".into()),
            tls_push_public: "ssh-ed25519 AAAA".into(),
            backup_key: Secret::new("BACKUP".into()),
            backup_public: "ssh-ed25519 BBBB".into(),
            host_keys: Default::default(),
        };
        let vars = Vars::new(
            config,
            server,
            &HostFacts::assumed(),
            Secrets::real(config, &run, &kept),
        );
        let mut t = Templates::new(crate::engine::assets::Assets::builtin());
        ops(&vars, &mut t)
            .unwrap()
            .iter()
            .map(|op| match op {
                Op::File(f) => format!("file {} {:?}", f.path, f.secret),
                Op::Directory { path, .. } => format!("dir {path}"),
                Op::Absent { path } => format!("absent {path}"),
                Op::Service { name, enabled, .. } => format!("service {name} {enabled}"),
                Op::Packages { names } => format!("packages {}", names.join(" ")),
                Op::UfwAllow(rule) => format!("ufw {}", rule.port),
                Op::PlaceholderCertificate { .. } => "placeholder".into(),
                Op::Certificate(spec) => format!("certificate issuer={}", spec.issuer),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn the_first_app_server_issues_and_the_others_receive() {
        let dir = tempfile::tempdir().unwrap();
        let config = two_apps(dir.path());
        let app1 = lines(&config, "app1");
        let app2 = lines(&config, "app2");
        for line in [
            "ufw 443",
            "placeholder",
            "packages lego",
            "service tandem-acme-shop.timer true",
            "file /usr/local/lib/tandem/acme-shop Public",
            "file /var/lib/tandem-acme/shop/push_key Masked { shown: [] }",
            "certificate issuer=true",
        ] {
            assert!(
                app1.contains(&line.to_string()),
                "app1 lacks {line}: {app1:#?}"
            );
        }
        for line in [
            "ufw 443",
            "placeholder",
            "service tandem-acme-shop.timer false",
            "absent /etc/systemd/system/tandem-acme-shop.timer",
            "file /usr/local/lib/tandem/tls-receive-shop Public",
            "certificate issuer=false",
        ] {
            assert!(
                app2.contains(&line.to_string()),
                "app2 lacks {line}: {app2:#?}"
            );
        }
        assert!(!app2.iter().any(|l| l.contains("lego")), "{app2:#?}");
    }

    #[test]
    fn files_and_off_retire_the_issuer() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = two_apps(dir.path());
        config.tls.mode = TlsMode::Files {
            certificate: PasswordSource::File("c.pem".into()),
            key: PasswordSource::File("k.pem".into()),
        };
        let files = lines(&config, "app1");
        assert!(files.contains(&"service tandem-acme-shop.timer false".to_string()));
        assert!(files.contains(&"file /etc/ssl/tandem/shop.key Masked { shown: [] }".to_string()));
        assert!(files.contains(&"file /etc/ssl/tandem/shop.crt Public".to_string()));
        assert!(!files.iter().any(|l| l == "placeholder"), "{files:#?}");
        config.tls.mode = TlsMode::Off;
        let off = lines(&config, "app1");
        assert!(
            !off.iter().any(|l| l.starts_with("ufw")),
            "443 stays shut: {off:#?}"
        );
        assert_eq!(off.len(), 4, "{off:#?}");
    }
}
