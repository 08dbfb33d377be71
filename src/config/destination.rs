//! An SSH destination as tandem.yml writes it (`user@host[:port]`, `user@[v6]:port`, an
//! ~/.ssh/config alias): checked when the config is read, handed to ssh by the transport.

/// `user@host:port` split into its parts; an alias is just a host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

impl Destination {
    /// Splits `user@host[:port]`, `user@[v6]:port` or an alias. Refuses what ssh would read as
    /// an option (a part starting with `-`), bad ports and unbalanced brackets, with the reason.
    pub fn parse(text: &str) -> Result<Destination, String> {
        let (user, rest) = match text.rsplit_once('@') {
            Some((u, r)) => (Some(u.to_string()), r),
            None => (None, text),
        };
        if let Some(user) = &user
            && (user.is_empty() || user.starts_with('-'))
        {
            return Err(format!(
                "the user `{user}` cannot start with `-` or be empty"
            ));
        }
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let (addr, after) = inner
                .split_once(']')
                .ok_or("an opening `[` without its `]`")?;
            if addr.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(format!("`[{addr}]` is not an IPv6 address"));
            }
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or("after `]` only `:PORT` may follow")?,
                ),
            };
            (addr.to_string(), port)
        } else if rest.matches(':').count() == 1 {
            let (h, p) = rest.split_once(':').expect("one colon");
            (h.to_string(), Some(p))
        } else if rest.contains(':') {
            return Err("write an IPv6 address in brackets: user@[fd00::3]:22".into());
        } else {
            (rest.to_string(), None)
        };
        if host.is_empty() || host.starts_with('-') {
            return Err(format!(
                "the host `{host}` cannot start with `-` or be empty (ssh would read it as an option)"
            ));
        }
        let port = match port {
            None => None,
            Some(p) => match p.parse::<u16>() {
                Ok(0) | Err(_) => return Err(format!("port `{p}` is not between 1 and 65535")),
                Ok(port) => Some(port),
            },
        };
        Ok(Destination { user, host, port })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations() {
        let ok = |text: &str| Destination::parse(text).unwrap();
        assert_eq!(
            ok("deploy@db.example.com:2222"),
            Destination {
                user: Some("deploy".into()),
                host: "db.example.com".into(),
                port: Some(2222)
            }
        );
        assert_eq!(
            ok("tl10"),
            Destination {
                user: None,
                host: "tl10".into(),
                port: None
            }
        );
        assert_eq!(
            ok("root@[fd00::1]"),
            Destination {
                user: Some("root".into()),
                host: "fd00::1".into(),
                port: None
            }
        );
        assert_eq!(ok("[fd00::3]:22").port, Some(22));
        assert_eq!(ok("[fd00::3]:22").host, "fd00::3");
    }

    #[test]
    fn destinations_that_ssh_would_misread_are_refused() {
        for (bad, says) in [
            ("deploy@-oProxyCommand=x", "cannot start with `-`"),
            ("deploy@-G", "cannot start with `-`"),
            ("-G", "cannot start with `-`"),
            ("-l@host", "cannot start with `-`"),
            ("host:99999", "not between 1 and 65535"),
            ("host:0", "not between 1 and 65535"),
            ("host:", "not between 1 and 65535"),
            ("deploy@[fd00::3", "without its `]`"),
            ("deploy@[fd00::3]22", "only `:PORT`"),
            ("deploy@[nope]:22", "not an IPv6 address"),
            ("deploy@fd00::3", "in brackets"),
            ("deploy@", "empty"),
        ] {
            let err = Destination::parse(bad).expect_err(bad);
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
