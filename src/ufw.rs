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

/// ufw as the probe found it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UfwState {
    pub installed: bool,
    pub active: bool,
    /// `deny`, `reject` or `allow`, from "Default: deny (incoming), ...".
    pub incoming: String,
    pub outgoing: String,
    /// Every `ufw allow ...` line of `ufw show added`, with the rule when tandem can read it.
    pub added: Vec<(String, Option<UfwRule>)>,
}

impl UfwState {
    /// Parses `ufw status verbose; echo ---; ufw show added` (status 3: ufw not installed).
    pub fn parse(status: i32, text: &str) -> UfwState {
        if status == 3 {
            return UfwState::default();
        }
        let (status_part, added_part) = text.split_once("\n---\n").unwrap_or((text, ""));
        let mut state = UfwState {
            installed: true,
            active: status_part.lines().any(|l| l.trim() == "Status: active"),
            ..UfwState::default()
        };
        if let Some(line) = status_part.lines().find(|l| l.starts_with("Default:")) {
            for part in line.trim_start_matches("Default:").split(',') {
                let mut words = part.split_whitespace();
                let (Some(policy), Some(direction)) = (words.next(), words.next()) else {
                    continue;
                };
                match direction {
                    "(incoming)" => state.incoming = policy.to_string(),
                    "(outgoing)" => state.outgoing = policy.to_string(),
                    _ => {}
                }
            }
        }
        for line in added_part.lines().filter(|l| l.starts_with("ufw ")) {
            state.added.push((line.to_string(), parse_added(line)));
        }
        state
    }

    pub fn has(&self, rule: &UfwRule) -> bool {
        self.added.iter().any(|(_, r)| r.as_ref() == Some(rule))
    }

    /// Lines of rules tandem added (by their comment) that `wanted` no longer contains.
    pub fn unwanted<'a>(&'a self, wanted: &[&UfwRule]) -> Vec<&'a str> {
        self.added
            .iter()
            .filter(|(_, rule)| {
                rule.as_ref().is_some_and(|r| {
                    (r.comment == COMMENT_PREFIX
                        || r.comment.starts_with(&format!("{COMMENT_PREFIX}:")))
                        && !wanted.contains(&r)
                })
            })
            .map(|(line, _)| line.as_str())
            .collect()
    }
}

/// `ufw allow ...` as `ufw show added` prints it, back into a rule. `None` for rules tandem
/// does not write (ranges, interfaces, deny rules...): it leaves those alone.
pub fn parse_added(line: &str) -> Option<UfwRule> {
    let words = shlex::split(line)?;
    let mut it = words.iter().map(String::as_str).peekable();
    if it.next()? != "ufw" || it.next()? != "allow" {
        return None;
    }
    let mut rule = UfwRule {
        port: 0,
        proto: String::new(),
        from: None,
        comment: String::new(),
    };
    while let Some(word) = it.next() {
        match word {
            "proto" => rule.proto = it.next()?.to_string(),
            "from" => {
                let from = it.next()?;
                if from != "any" {
                    rule.from = Some(from.parse().ok()?);
                }
            }
            "to" => {
                if it.next()? != "any" {
                    return None;
                }
            }
            "port" => rule.port = it.next()?.parse().ok()?,
            "comment" => rule.comment = it.next()?.to_string(),
            spec => {
                let (port, proto) = spec.split_once('/')?;
                rule.port = port.parse().ok()?;
                rule.proto = proto.to_string();
            }
        }
    }
    (rule.port != 0 && !rule.proto.is_empty()).then_some(rule)
}

#[cfg(test)]
mod state_tests {
    use super::*;

    /// Captured from ufw 0.36.2 on Debian 12.
    const STATUS: &str = "Status: active\nLogging: on (low)\nDefault: deny (incoming), allow (outgoing), disabled (routed)\nNew profiles: skip\n\nTo                         Action      From\n--                         ------      ----\n22/tcp                     ALLOW IN    Anywhere                   # tandem: ssh\n\n---\nAdded user rules (see 'ufw status' for running firewall):\nufw allow 22/tcp comment 'tandem: ssh'\nufw allow from 10.77.0.11 to any port 5432 proto tcp comment 'tandem: postgresql from app1'\nufw allow 8080\n";

    #[test]
    fn parses_status_and_added_rules() {
        let state = UfwState::parse(0, STATUS);
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
        assert!(state.has(&pg));
        let ssh = UfwRule {
            port: 22,
            proto: "tcp".into(),
            from: None,
            comment: "tandem: ssh".into(),
        };
        assert!(state.has(&ssh));
        // Unwanted: only tandem's own rules that are no longer desired; never the operator's 8080.
        assert_eq!(state.unwanted(&[&ssh]), vec![state.added[1].0.as_str()]);
        assert!(UfwState::parse(3, "").installed.eq(&false));
    }

    #[test]
    fn our_own_command_parses_back_to_the_same_rule() {
        let rule = UfwRule {
            port: 5432,
            proto: "tcp".into(),
            from: Some("10.0.0.2".parse().unwrap()),
            comment: "tandem: postgresql from app1".into(),
        };
        assert_eq!(parse_added(&rule.to_string()), Some(rule));
    }
}
