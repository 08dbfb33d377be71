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
