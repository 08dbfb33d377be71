//! `UfwRule`: one `ufw allow` rule tandem owns, and the exact ufw command line for it.

use std::fmt;
use std::net::IpAddr;

use crate::identifier::shell_word;

/// Every rule tandem adds carries this comment, so rules it no longer wants can be found and
/// pruned without touching the operator's own.
pub const COMMENT_PREFIX: &str = "tandem";

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct UfwRule {
    pub port: u16,
    pub proto: String,
    /// `None`: from anywhere.
    pub from: Option<IpAddr>,
    pub comment: String,
}

impl UfwRule {
    /// The arguments after `ufw`.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec!["allow".to_string()];
        match self.from {
            None => args.push(format!("{}/{}", self.port, self.proto)),
            Some(ip) => args.extend([
                "proto".into(),
                self.proto.clone(),
                "from".into(),
                ip.to_string(),
                "to".into(),
                "any".into(),
                "port".into(),
                self.port.to_string(),
            ]),
        }
        args.extend(["comment".into(), self.comment.clone()]);
        args
    }
}

impl fmt::Display for UfwRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ufw")?;
        for arg in self.args() {
            write!(f, " {}", shell_word(&arg))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        let anywhere = UfwRule {
            port: 22,
            proto: "tcp".into(),
            from: None,
            comment: "tandem: ssh".into(),
        };
        assert_eq!(
            anywhere.to_string(),
            "ufw allow 22/tcp comment 'tandem: ssh'"
        );
        let from = UfwRule {
            port: 5432,
            proto: "tcp".into(),
            from: Some("10.0.0.2".parse().unwrap()),
            comment: "tandem: postgresql from app1".into(),
        };
        assert_eq!(
            from.to_string(),
            "ufw allow proto tcp from 10.0.0.2 to any port 5432 comment 'tandem: postgresql from app1'"
        );
    }
}

/// What the probe prints about ufw, read from its files instead of running `ufw` itself (a
/// Python program: two calls cost more than the whole rest of the probe).
pub const PROBE: &str = "command -v ufw >/dev/null || exit 3; \
    grep -h '^ENABLED=' /etc/ufw/ufw.conf; \
    grep -h '^DEFAULT_INPUT_POLICY=\\|^DEFAULT_OUTPUT_POLICY=' /etc/default/ufw; \
    grep -h '^### tuple ###' /etc/ufw/user.rules /etc/ufw/user6.rules; true";

/// ufw as the probe found it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UfwState {
    pub installed: bool,
    /// `ENABLED=yes` in ufw.conf: what `ufw enable` sets and the boot service follows.
    pub active: bool,
    /// `deny`, `reject` or `allow`.
    pub incoming: String,
    pub outgoing: String,
    /// The `allow` rules tandem can read (IPv4 and IPv6 copies count once).
    pub rules: Vec<UfwRule>,
}

impl UfwState {
    /// Parses the output of `PROBE` (status 3: ufw is not installed).
    pub fn parse(status: i32, text: &str) -> UfwState {
        if status == 3 {
            return UfwState::default();
        }
        let mut state = UfwState {
            installed: true,
            ..UfwState::default()
        };
        let policy = |v: &str| match v.trim_matches('"') {
            "DROP" => "deny",
            "REJECT" => "reject",
            "ACCEPT" => "allow",
            _ => "",
        };
        for line in text.lines() {
            if let Some(v) = line.strip_prefix("ENABLED=") {
                state.active = v.trim() == "yes";
            } else if let Some(v) = line.strip_prefix("DEFAULT_INPUT_POLICY=") {
                state.incoming = policy(v).to_string();
            } else if let Some(v) = line.strip_prefix("DEFAULT_OUTPUT_POLICY=") {
                state.outgoing = policy(v).to_string();
            } else if let Some(rule) = parse_tuple(line)
                && !state.rules.contains(&rule)
            {
                state.rules.push(rule);
            }
        }
        state
    }

    pub fn has(&self, rule: &UfwRule) -> bool {
        self.rules.contains(rule)
    }

    /// Rules tandem added (by their comment) that `wanted` no longer contains.
    pub fn unwanted(&self, wanted: &[&UfwRule]) -> Vec<&UfwRule> {
        self.rules
            .iter()
            .filter(|r| {
                (r.comment == COMMENT_PREFIX
                    || r.comment.starts_with(&format!("{COMMENT_PREFIX}:")))
                    && !wanted.contains(r)
            })
            .collect()
    }
}

/// A `### tuple ### allow tcp 5432 0.0.0.0/0 any 10.0.0.2 in comment=<hex>` line of
/// user.rules (action, protocol, dst port, dst, src port, src, direction). `None` for rules
/// tandem does not write (ranges, interfaces, deny rules, ...): it leaves those alone.
pub fn parse_tuple(line: &str) -> Option<UfwRule> {
    let rest = line.strip_prefix("### tuple ###")?;
    let mut words = rest.split_whitespace();
    let (action, proto, dport, dst, sport, src, direction) = (
        words.next()?,
        words.next()?,
        words.next()?,
        words.next()?,
        words.next()?,
        words.next()?,
        words.next()?,
    );
    let anywhere = |a: &str| a == "0.0.0.0/0" || a == "::/0";
    if action != "allow" || direction != "in" || sport != "any" || !anywhere(dst) {
        return None;
    }
    let comment = match words.next() {
        Some(c) => decode_hex(c.strip_prefix("comment=")?)?,
        None => String::new(),
    };
    Some(UfwRule {
        port: dport.parse().ok()?,
        proto: proto.to_string(),
        from: if anywhere(src) {
            None
        } else {
            Some(src.parse().ok()?)
        },
        comment,
    })
}

fn decode_hex(hex: &str) -> Option<String> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

#[cfg(test)]
mod state_tests {
    use super::*;

    /// The probe's output on a Debian 12 db server after tandem's apply (ufw 0.36.2), with an
    /// operator's own rule (8080) and a deny rule added by hand.
    const PROBED: &str = "ENABLED=yes\n\
DEFAULT_INPUT_POLICY=\"DROP\"\n\
DEFAULT_OUTPUT_POLICY=\"ACCEPT\"\n\
### tuple ### allow tcp 22 0.0.0.0/0 any 0.0.0.0/0 in comment=74616e64656d3a20737368\n\
### tuple ### allow tcp 5432 0.0.0.0/0 any 10.77.0.11 in comment=74616e64656d3a20706f737467726573716c2066726f6d2061707031\n\
### tuple ### allow any 8080 0.0.0.0/0 any 0.0.0.0/0 in\n\
### tuple ### deny tcp 25 0.0.0.0/0 any 0.0.0.0/0 in\n\
### tuple ### allow tcp 22 ::/0 any ::/0 in comment=74616e64656d3a20737368\n";

    #[test]
    fn parses_policy_state_and_rules() {
        let state = UfwState::parse(0, PROBED);
        assert!(state.installed && state.active);
        assert_eq!(
            (state.incoming.as_str(), state.outgoing.as_str()),
            ("deny", "allow")
        );
        let pg = UfwRule {
            port: 5432,
            proto: "tcp".into(),
            from: Some("10.77.0.11".parse().unwrap()),
            comment: "tandem: postgresql from app1".into(),
        };
        let ssh = UfwRule {
            port: 22,
            proto: "tcp".into(),
            from: None,
            comment: "tandem: ssh".into(),
        };
        assert!(state.has(&pg) && state.has(&ssh));
        assert_eq!(
            state.rules.len(),
            3,
            "v4 and v6 copies count once; deny rules are not ours"
        );
        // Unwanted: only tandem's own rules that are no longer desired; never the operator's 8080.
        assert_eq!(state.unwanted(&[&ssh]), vec![&pg]);
        assert!(!UfwState::parse(3, "").installed);
    }
}
