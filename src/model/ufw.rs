//! `UfwRule`: one `ufw allow` rule tandem owns, and the exact ufw command line for it.

use std::fmt;
use std::net::IpAddr;

use crate::config::identifier::shell_word;

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
    /// Allows `port`/`proto` from `server`'s internal address, commented
    /// `tandem: WHAT from NAME`.
    pub fn from_server(
        port: u16,
        proto: &str,
        server: &crate::config::Server,
        what: &str,
    ) -> UfwRule {
        UfwRule {
            port,
            proto: proto.to_string(),
            from: Some(server.internal_ip),
            comment: format!("{COMMENT_PREFIX}: {what} from {}", server.name),
        }
    }

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
    /// Every incoming allow/limit rule, whatever its shape (IPv4 and IPv6 copies count once).
    pub inbound: Vec<InboundAllow>,
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
            } else {
                if let Some(rule) = parse_tuple(line)
                    && !state.rules.contains(&rule)
                {
                    state.rules.push(rule);
                }
                if let Some(allow) = InboundAllow::parse(line)
                    && !state.inbound.iter().any(|seen| seen.key() == allow.key())
                {
                    // `ufw allow 5432` writes a v4 and a v6 copy; one delete removes both.
                    state.inbound.push(allow);
                }
            }
        }
        state
    }

    /// Incoming rules that let `port`/`proto` in from anything but `sources`: each must go.
    pub fn opening_wider(&self, port: u16, proto: &str, sources: &[IpAddr]) -> Vec<&InboundAllow> {
        self.inbound
            .iter()
            .filter(|r| r.opens(port, proto))
            .filter(|r| r.single_source().is_none_or(|ip| !sources.contains(&ip)))
            .collect()
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
    if action != "allow" || direction != "in" || sport != "any" || !is_anywhere(dst) {
        return None;
    }
    let comment = match words.next() {
        Some(c) => decode_hex(c.strip_prefix("comment=")?)?,
        None => String::new(),
    };
    Some(UfwRule {
        port: dport.parse().ok()?,
        proto: proto.to_string(),
        from: if is_anywhere(src) {
            None
        } else {
            Some(src.parse().ok()?)
        },
        comment,
    })
}

/// Any `allow`/`limit` rule for incoming traffic, as user.rules records it, whatever its shape:
/// the view used to find rules that open a port to more sources than tandem admits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboundAllow {
    pub action: String,
    pub proto: String,
    /// `any`, `5432`, `5000:6000` or `80,443,5432`.
    pub dport: String,
    pub dst: String,
    pub sport: String,
    pub src: String,
    /// The interface of `allow in on IFACE`.
    pub interface: Option<String>,
}

impl InboundAllow {
    pub fn parse(line: &str) -> Option<InboundAllow> {
        let rest = line.strip_prefix("### tuple ###")?;
        let words: Vec<&str> = rest.split_whitespace().collect();
        let [action, proto, dport, dst, sport, src, direction, ..] = words[..] else {
            return None;
        };
        if !matches!(action, "allow" | "limit") {
            return None;
        }
        let interface = match direction {
            "in" => None,
            d => Some(d.strip_prefix("in_")?.to_string()),
        };
        Some(InboundAllow {
            action: action.into(),
            proto: proto.into(),
            dport: dport.into(),
            dst: dst.into(),
            sport: sport.into(),
            src: src.into(),
            interface,
        })
    }

    /// What identifies the rule to `ufw delete`: its IPv4 and IPv6 copies share it.
    fn key(&self) -> String {
        self.delete_command()
    }

    /// Does this rule let `proto`/`port` in?
    pub fn opens(&self, port: u16, proto: &str) -> bool {
        let proto_ok = self.proto == "any" || self.proto == proto;
        let port_ok = self.dport == "any"
            || self
                .dport
                .split(',')
                .any(|part| match part.split_once(':') {
                    Some((lo, hi)) => matches!(
                        (lo.parse::<u16>(), hi.parse::<u16>()),
                        (Ok(lo), Ok(hi)) if (lo..=hi).contains(&port)
                    ),
                    None => part.parse::<u16>() == Ok(port),
                });
        proto_ok && port_ok
    }

    /// The source as an address when it is exactly one host (`10.0.0.2` or `10.0.0.2/32`).
    pub fn single_source(&self) -> Option<IpAddr> {
        let (addr, prefix) = match self.src.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (self.src.as_str(), None),
        };
        let ip: IpAddr = addr.parse().ok()?;
        let full = if ip.is_ipv4() { "32" } else { "128" };
        (prefix.is_none() || prefix == Some(full)).then_some(ip)
    }

    /// `ufw delete ...` for this rule: the same words ufw was given, rebuilt from the tuple.
    pub fn delete_command(&self) -> String {
        let address = |a: &str| if is_anywhere(a) { "any" } else { a }.to_string();
        let mut words = vec!["ufw".to_string(), "delete".into(), self.action.clone()];
        if let Some(iface) = &self.interface {
            words.extend(["in".into(), "on".into(), iface.clone()]);
        }
        if self.proto != "any" {
            words.extend(["proto".into(), self.proto.clone()]);
        }
        for (direction, addr, port) in [
            ("from", &self.src, &self.sport),
            ("to", &self.dst, &self.dport),
        ] {
            words.extend([direction.to_string(), address(addr)]);
            if port != "any" {
                words.extend(["port".to_string(), port.clone()]);
            }
        }
        words
            .iter()
            .map(|w| shell_word(w))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// `from SRC to port DPORT/PROTO`, for plan lines.
    pub fn describe(&self) -> String {
        let src = if is_anywhere(&self.src) {
            "anywhere"
        } else {
            &self.src
        };
        let on = self
            .interface
            .as_ref()
            .map(|i| format!(" on {i}"))
            .unwrap_or_default();
        format!(
            "{} from {src}{on} to port {}/{}",
            self.action, self.dport, self.proto
        )
    }
}

/// ufw's "any address" in its IPv4 and IPv6 tuples (and in its command words).
fn is_anywhere(address: &str) -> bool {
    matches!(address, "0.0.0.0/0" | "::/0" | "any")
}

/// ufw stores a rule's comment hex-encoded.
fn decode_hex(text: &str) -> Option<String> {
    String::from_utf8(hex::decode(text).ok()?).ok()
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

    #[test]
    fn rules_opening_the_database_wider_than_the_app_servers_are_found() {
        let app: IpAddr = "10.77.0.11".parse().unwrap();
        let hand = format!(
            "{PROBED}\
### tuple ### allow any 5432 0.0.0.0/0 any 0.0.0.0/0 in\n\
### tuple ### allow any 5432 ::/0 any ::/0 in\n\
### tuple ### allow any any 0.0.0.0/0 any 10.0.0.66 in\n\
### tuple ### allow tcp 5000:6000 0.0.0.0/0 any 0.0.0.0/0 in\n\
### tuple ### limit tcp 80,443,5432 0.0.0.0/0 any 10.9.0.0/16 in\n\
### tuple ### allow tcp 5432 0.0.0.0/0 any 10.77.0.11 in_eth1\n\
### tuple ### allow tcp 5432 0.0.0.0/0 any 10.77.0.12 in_eth1\n\
### tuple ### allow tcp 5433 0.0.0.0/0 any 0.0.0.0/0 in\n\
### tuple ### allow tcp 5432 0.0.0.0/0 any 10.77.0.11/32 in\n"
        );
        let state = UfwState::parse(0, &hand);
        let wider: Vec<String> = state
            .opening_wider(5432, "tcp", &[app])
            .iter()
            .map(|r| r.delete_command())
            .collect();
        assert_eq!(
            wider,
            [
                "ufw delete allow from any to any port 5432",
                "ufw delete allow from 10.0.0.66 to any",
                "ufw delete allow proto tcp from any to any port 5000:6000",
                "ufw delete limit proto tcp from 10.9.0.0/16 to any port '80,443,5432'",
                "ufw delete allow in on eth1 proto tcp from 10.77.0.12 to any port 5432",
            ]
        );
        assert!(
            UfwState::parse(0, PROBED)
                .opening_wider(5432, "tcp", &[app])
                .is_empty()
        );
    }
}
