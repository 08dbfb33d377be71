//! The HTTPS certificate of an app server under ACME: what nginx serves now (missing, the
//! self-signed placeholder, or a CA's certificate with its names and expiry), and on the
//! issuer the change that obtains or renews it. Also the placeholder itself.

use super::Context;
use crate::config::identifier::shell_word;
use crate::config::{Config, Role, Server};
use crate::model::desired::CertificateSpec;
use crate::model::facts::QueryResult;
use crate::model::plan::HostPlan;
use crate::model::playbook::Phase;
pub use crate::model::state::{CertificateState, PLACEHOLDER_CN};

/// `now=`, `end=`, `subject=`, `fingerprint=` and `names=` lines, or `missing`.
pub fn probe(path: &str) -> String {
    format!(
        r#"C={c}
if [ ! -s "$C" ] || ! openssl x509 -in "$C" -noout 2>/dev/null; then echo missing; exit 0; fi
echo "now=$(date +%s)"
echo "end=$(date -d "$(openssl x509 -in "$C" -noout -enddate | cut -d= -f2)" +%s)"
echo "subject=$(openssl x509 -in "$C" -noout -subject -nameopt RFC2253)"
echo "fingerprint=$(openssl x509 -in "$C" -noout -fingerprint -sha256 | cut -d= -f2)"
echo "names=$(openssl x509 -in "$C" -noout -ext subjectAltName 2>/dev/null | grep -o 'DNS:[^, ]*' | cut -c5- | tr '\n' ' ')""#,
        c = shell_word(path)
    )
}

/// The issuer gets a change when the certificate is missing, a placeholder, for other names,
/// or due; every app server gets a note with the state (the others are compared with the
/// issuer's by `hand_out` once every host is planned).
pub fn plan(ctx: &mut Context, r: &QueryResult, spec: &CertificateSpec) {
    let state = CertificateState::parse(&r.stdout);
    ctx.note(&format!("certificate: {}", state.describe(spec.renew_days)));
    if spec.issuer {
        let why = match &state {
            CertificateState::Missing | CertificateState::Placeholder => Some(format!(
                "+ certificate for {} from the CA",
                spec.names.join(" ")
            )),
            CertificateState::Issued { names, .. } if !same_names(names, &spec.names) => {
                Some(format!(
                    "~ certificate: names {} -> {}",
                    names.join(" "),
                    spec.names.join(" ")
                ))
            }
            CertificateState::Issued { .. } if state.due(spec.renew_days) => Some(format!(
                "~ certificate: renew ({})",
                state.describe(spec.renew_days)
            )),
            CertificateState::Issued { .. } => None,
        };
        if let Some(summary) = why {
            let change = ctx.push(summary, None, super::service::run_oneshot(&spec.service));
            change.role = Phase::Certificate;
        }
    }
    ctx.certificate = Some(state);
}

fn same_names(have: &[String], want: &[String]) -> bool {
    let mut have: Vec<&str> = have.iter().map(String::as_str).collect();
    let mut want: Vec<&str> = want.iter().map(String::as_str).collect();
    have.sort_unstable();
    want.sort_unstable();
    have == want
}

/// The change the issuer gets when another app server serves a different certificate than
/// the issuer's valid one: running the service hands it out again. None when the issuer
/// already has a change (its run hands out too) or nothing differs.
pub fn hand_out(
    issuer: &CertificateState,
    issuer_has_change: bool,
    others: &[(&str, &CertificateState)],
    service: &str,
) -> Option<crate::model::plan::Change> {
    if issuer_has_change {
        return None;
    }
    let want = issuer.fingerprint()?;
    let behind: Vec<&str> = others
        .iter()
        .filter(|(_, state)| state.fingerprint() != Some(want))
        .map(|(name, _)| *name)
        .collect();
    if behind.is_empty() {
        return None;
    }
    let mut change = crate::model::plan::Change::new(
        format!("~ certificate: hand it to {}", behind.join(", ")),
        None,
        super::service::run_oneshot(service),
    );
    change.role = Phase::Certificate;
    change.step = "HTTPS certificate".into();
    Some(change)
}

/// With ACME, the issuer (the first app server in the config) hands its certificate to every
/// app server that serves another one: a change on the issuer when it takes part in the run,
/// else a note on the server that is behind.
pub fn hand_out_across(config: &Config, servers: &[Server], hosts: &mut [HostPlan]) {
    let Some(issuer) = config.certificate_issuer() else {
        return;
    };
    let service = crate::tls::vars::TlsVars::of(config, issuer).service;
    let issuer_index = servers.iter().position(|s| s.name == issuer.name);
    let others: Vec<(String, CertificateState)> = servers
        .iter()
        .zip(hosts.iter())
        .filter(|(s, _)| s.role == Role::App && s.name != issuer.name)
        .filter_map(|(s, h)| Some((s.name.clone(), h.certificate.clone()?)))
        .collect();
    match issuer_index {
        Some(i) => {
            let Some(state) = hosts[i].certificate.clone() else {
                return;
            };
            let busy = hosts[i]
                .changes
                .iter()
                .any(|c| c.role == Phase::Certificate);
            let others: Vec<(&str, &_)> = others.iter().map(|(n, s)| (n.as_str(), s)).collect();
            if let Some(change) = hand_out(&state, busy, &others, &service) {
                hosts[i].changes.push(change);
            }
        }
        None => {
            for host in hosts
                .iter_mut()
                .filter(|h| others.iter().any(|(n, _)| *n == h.server))
            {
                host.notes.push(format!(
                    "{} issues the certificate and hands it out: include it in the run (or wait for its daily timer) if this server's differs",
                    issuer.name
                ));
            }
        }
    }
}

/// Makes a self-signed certificate and key when there is none, so nginx's 443 server can
/// start before the CA has answered; the ACME run replaces it.
pub fn plan_placeholder(ctx: &mut Context, r: &QueryResult, certificate: &str, key: &str) {
    if r.ok() {
        return;
    }
    let script = format!(
        "set -e\numask 077\nC={c}\nK={k}\n\
         openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
         -subj '/CN={PLACEHOLDER_CN}' -keyout \"$K.new\" -out \"$C.new\" 2>/dev/null\n\
         chmod 0644 \"$C.new\"\nmv -f \"$K.new\" \"$K\"\nmv -f \"$C.new\" \"$C\"\n",
        c = shell_word(certificate),
        k = shell_word(key),
    );
    ctx.push(
        format!("+ {certificate}: self-signed placeholder until the CA's certificate arrives"),
        None,
        script,
    );
}

/// Exit 0 when both files are there.
pub fn placeholder_probe(certificate: &str, key: &str) -> String {
    format!(
        "test -s {} && test -s {}",
        shell_word(certificate),
        shell_word(key)
    )
}

#[cfg(test)]
mod tests {
    use super::super::table::{plan as plan_op, summaries};
    use super::*;
    use crate::model::desired::Op;

    fn spec(issuer: bool) -> CertificateSpec {
        CertificateSpec {
            path: "/etc/ssl/tandem/shop.crt".into(),
            names: vec!["shop.example.com".into(), "www.shop.example.com".into()],
            issuer,
            service: "tandem-acme-shop.service".into(),
            renew_days: 30,
        }
    }

    fn issued(days_left: i64, names: &str) -> String {
        format!(
            "now=1000000000\nend={}\nsubject=CN=shop.example.com\nfingerprint=AB:CD\nnames={names}\n",
            1_000_000_000 + days_left * 86_400
        )
    }

    #[test]
    fn the_issuer_obtains_renews_and_follows_the_names() {
        for (answer, expected) in [
            (
                "missing\n".to_string(),
                vec!["+ certificate for shop.example.com www.shop.example.com from the CA"],
            ),
            (
                format!("now=1\nend=2\nsubject=CN={PLACEHOLDER_CN}\n"),
                vec!["+ certificate for shop.example.com www.shop.example.com from the CA"],
            ),
            (issued(60, "www.shop.example.com shop.example.com "), vec![]),
            (
                issued(29, "shop.example.com www.shop.example.com"),
                vec!["~ certificate: renew (due for renewal (expires 2001-10-08))"],
            ),
            (
                issued(60, "shop.example.com"),
                vec![
                    "~ certificate: names shop.example.com -> shop.example.com www.shop.example.com",
                ],
            ),
        ] {
            let changes = plan_op(Op::Certificate(spec(true)), 0, &answer, &[]);
            assert_eq!(summaries(&changes), expected, "{answer}");
            assert!(changes.iter().all(|c| c.role == Phase::Certificate));
        }
        // The others never obtain one themselves.
        assert!(plan_op(Op::Certificate(spec(false)), 0, "missing\n", &[]).is_empty());
    }

    #[test]
    fn states_read_from_the_probe() {
        assert_eq!(
            CertificateState::parse("missing\n"),
            CertificateState::Missing
        );
        let state = CertificateState::parse(&issued(60, "a.example b.example"));
        assert_eq!(state.describe(30), "valid until 2001-11-08");
        assert!(!state.due(30));
        assert!(state.due(61));
        assert_eq!(state.fingerprint(), Some("AB:CD"));
    }

    #[test]
    fn the_issuer_hands_its_certificate_to_servers_that_serve_another() {
        let mine = CertificateState::parse(&issued(60, "a"));
        let other = CertificateState::parse(&issued(60, "a").replace("AB:CD", "EF:01"));
        let none = CertificateState::Missing;
        let change = hand_out(
            &mine,
            false,
            &[("app2", &other), ("app3", &none)],
            "s.service",
        )
        .expect("a change");
        assert_eq!(change.summary, "~ certificate: hand it to app2, app3");
        assert!(hand_out(&mine, false, &[("app2", &mine.clone())], "s").is_none());
        assert!(hand_out(&mine, true, &[("app2", &other)], "s").is_none());
        assert!(hand_out(&none, false, &[("app2", &other)], "s").is_none());
    }

    #[test]
    fn placeholder_only_when_missing() {
        let op = || Op::PlaceholderCertificate {
            certificate: "/etc/ssl/tandem/shop.crt".into(),
            key: "/etc/ssl/tandem/shop.key".into(),
        };
        assert!(plan_op(op(), 0, "", &[]).is_empty());
        assert_eq!(
            summaries(&plan_op(op(), 1, "", &[])),
            [
                "+ /etc/ssl/tandem/shop.crt: self-signed placeholder until the CA's certificate arrives"
            ]
        );
    }
}
