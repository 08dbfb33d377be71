//! `servers:` and `domains:` in tandem.yml: who is who, their addresses, the site's names.

use super::*;

/// A server's job in the topology.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Db,
    App,
    /// Holds the database's backup repository.
    Backup,
    /// The third member of a database cluster's consensus (etcd): with two db servers, the
    /// one that lets either of them be lost without the other losing its quorum.
    Witness,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Db => "db",
            Role::App => "app",
            Role::Backup => "backup",
            Role::Witness => "witness",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Server {
    pub name: String,
    pub role: Role,
    /// What tandem hands to `ssh`: `user@host[:port]` or an ~/.ssh/config alias.
    pub ssh: String,
    pub fqdn: String,
    pub internal_ip: IpAddr,
}

/// Why `ip` cannot stand for a machine on the internal network, if it cannot.
pub(super) fn usable_internal(ip: IpAddr) -> Result<(), String> {
    if let IpAddr::V6(v6) = ip
        && let Some(v4) = v6.to_ipv4_mapped()
    {
        return Err(format!(
            "is an IPv4 address written in IPv6 form: write it as {v4} (pg_hba.conf and ufw match that form)"
        ));
    }
    if is_link_local(ip) {
        return Err("is a link-local address: those change and need an interface name".to_string());
    }
    if ip.is_loopback() || ip.is_unspecified() || ip.is_multicast() {
        return Err("cannot be a server's internal address".to_string());
    }
    Ok(())
}

pub(super) fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

/// Private, shared (CGNAT) and unique-local addresses: the ones an internal network uses.
pub(super) fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_private() || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => (v6.segments()[0] & 0xfe00) == 0xfc00,
    }
}

impl Validator<'_> {
    pub(super) fn servers(&mut self, raw: &Spanned<Vec<raw::Server>>) -> Option<Vec<Server>> {
        let mut servers = Vec::new();
        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut ips: HashMap<IpAddr, String> = HashMap::new();
        let mut destinations: HashMap<&str, &str> = HashMap::new();
        let mut fqdns: HashMap<String, &str> = HashMap::new();
        for (i, s) in raw.value.iter().enumerate() {
            let at = |f: &str| format!("servers[{i}].{f}");
            if !identifier::is_server_name(&s.name.value) {
                self.error(
                    &s.name,
                    &at("name"),
                    format!("`{}` is not a valid server name", s.name.value),
                    "use lowercase letters, digits and `-` (like a host name label), e.g. `app1`",
                );
            } else if let Some(first) = names.insert(&s.name.value, i) {
                self.error(
                    &s.name,
                    &at("name"),
                    format!(
                        "server name `{}` is used twice (also servers[{first}])",
                        s.name.value
                    ),
                    "give every server its own name",
                );
            }
            let destination = Destination::parse(&s.ssh.value).and_then(|_| {
                if identifier::is_ssh_destination(&s.ssh.value) {
                    Ok(())
                } else {
                    Err("only letters, digits and `.-_@:[]` may appear".to_string())
                }
            });
            if let Err(why) = destination {
                self.error(
                    &s.ssh,
                    &at("ssh"),
                    format!("`{}` is not an SSH destination: {why}", s.ssh.value),
                    "write user@host, user@host:port, user@[fd00::3]:port or an alias from ~/.ssh/config",
                );
            } else if let Ok(Destination {
                user: Some(user),
                host,
                ..
            }) = Destination::parse(&s.ssh.value)
                && user == "root"
            {
                self.error(
                    &s.ssh,
                    &at("ssh"),
                    format!(
                        "`{}` logs in as root, and apply turns root's SSH login off \
                         (PermitRootLogin no): the next run could not come back",
                        s.ssh.value
                    ),
                    &format!(
                        "write the deploy user (`ssh.deploy_user`, `deploy` unless set), e.g. \
                         `ssh: deploy@{host}`, and run the first apply as root with \
                         `tandem apply --bootstrap-user root`"
                    ),
                );
            } else if let Some(other) = destinations.insert(&s.ssh.value, &s.name.value) {
                self.error(
                    &s.ssh,
                    &at("ssh"),
                    format!("`{}` is also the ssh destination of server `{other}`", s.ssh.value),
                    "every server needs its own destination: two entries for one machine would fight over it",
                );
            }
            if !identifier::is_fqdn(&s.fqdn.value) {
                self.error(
                    &s.fqdn,
                    &at("fqdn"),
                    format!("`{}` is not a fully qualified domain name", s.fqdn.value),
                    "write the server's full host name, e.g. db.example.com; it becomes the hostname",
                );
            } else {
                let fqdn = s.fqdn.value.trim_end_matches('.').to_ascii_lowercase();
                if let Some(other) = fqdns.insert(fqdn, &s.name.value) {
                    self.error(
                        &s.fqdn,
                        &at("fqdn"),
                        format!("`{}` is also the fqdn of server `{other}`", s.fqdn.value),
                        "every server needs its own host name",
                    );
                }
            }
            let ip = match s.internal_ip.value.parse::<IpAddr>() {
                Ok(ip) => ip,
                Err(_) => {
                    self.error(
                        &s.internal_ip,
                        &at("internal_ip"),
                        format!("`{}` is not an IP address", s.internal_ip.value),
                        "write the server's private address on the internal network, e.g. 10.0.0.3",
                    );
                    continue;
                }
            };
            if let Err(why) = usable_internal(ip) {
                self.error(
                    &s.internal_ip,
                    &at("internal_ip"),
                    format!("{ip} {why}"),
                    "write the address other servers reach this one on, e.g. 10.0.0.3",
                );
            } else if !is_private(ip) {
                self.warning(
                    &s.internal_ip,
                    &at("internal_ip"),
                    format!("{ip} is a public address: database traffic would cross the internet"),
                    "use the servers' private network (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16)",
                );
            }
            if let Some(other) = ips.insert(ip, s.name.value.clone()) {
                self.error(
                    &s.internal_ip,
                    &at("internal_ip"),
                    format!("{ip} is also the internal_ip of server `{other}`"),
                    "every server needs its own internal address",
                );
            }
            servers.push(Server {
                name: s.name.value.clone(),
                role: s.role.value,
                ssh: s.ssh.value.clone(),
                fqdn: s.fqdn.value.trim_end_matches('.').to_string(),
                internal_ip: ip,
            });
        }
        let dbs = raw
            .value
            .iter()
            .filter(|s| s.role.value == Role::Db)
            .count();
        let apps = raw
            .value
            .iter()
            .filter(|s| s.role.value == Role::App)
            .count();
        let witnesses = raw
            .value
            .iter()
            .filter(|s| s.role.value == Role::Witness)
            .count();
        match (dbs, witnesses) {
            (1, 0) | (2, 1) => {}
            (0, _) | (3.., _) => self.error(
                raw,
                "servers",
                format!("{dbs} servers have `role: db`; tandem needs one, or two for a cluster"),
                "mark one server `role: db`, or two (a primary and its standby) and a `role: witness`",
            ),
            (1, _) => self.error(
                raw,
                "servers",
                "a `role: witness` server without a second db server".into(),
                "a witness is the third consensus member of a two-db cluster: add the second `role: db` server, or remove the witness",
            ),
            (2, 0) => self.error(
                raw,
                "servers",
                "two db servers need a third server for the cluster's consensus (etcd needs three members to survive losing one)".into(),
                "add a small server with `role: witness` (it runs etcd only)",
            ),
            (2, _) => self.error(
                raw,
                "servers",
                format!("{witnesses} servers have `role: witness`; a cluster takes exactly one"),
                "keep one `role: witness` server",
            ),
        }
        if apps == 0 {
            self.error(
                raw,
                "servers",
                "no server has `role: app`".into(),
                "add at least one server with `role: app`",
            );
        }
        (servers.len() == raw.value.len()).then_some(servers)
    }

    pub(super) fn domains(&mut self, raw: &Spanned<Vec<Spanned<String>>>) -> Vec<String> {
        if raw.value.is_empty() {
            self.error(
                raw,
                "domains",
                "no domains: nginx would answer for nothing".into(),
                "list the host names the site answers for, e.g. [example.com, www.example.com]",
            );
        }
        let mut seen = Vec::new();
        let mut unique = HashSet::new();
        for (i, d) in raw.value.iter().enumerate() {
            let name = d.value.trim_end_matches('.').to_ascii_lowercase();
            if !identifier::is_domain(&name) {
                self.error(
                    d,
                    &format!("domains[{i}]"),
                    format!("`{}` is not a domain name", d.value),
                    "write a host name such as example.com, or *.example.com for tenant subdomains",
                );
            } else if !unique.insert(name.clone()) {
                self.error(
                    d,
                    &format!("domains[{i}]"),
                    format!("domain `{name}` is listed twice"),
                    "remove the duplicate",
                );
            } else {
                seen.push(name);
            }
        }
        seen
    }
}

/// The single-address network of `ip`, as pg_hba.conf and ufw write it.
pub fn host_cidr(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{v4}/32"),
        IpAddr::V6(v6) => format!("{v6}/128"),
    }
}

/// `ip` as the host part of a URL (IPv6 in brackets).
pub fn url_host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// The names under `servers:`, read from a file that need not be valid otherwise (what the
/// shell completions offer while the config is still being written). Only names the config
/// would accept: a cloned repository's tandem.yml must not hand a shell words to expand.
pub fn names_only(path: &Path) -> anyhow::Result<Vec<String>> {
    #[derive(Deserialize)]
    struct Named {
        name: String,
    }
    #[derive(Deserialize)]
    struct Servers {
        #[serde(default)]
        servers: Vec<Named>,
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let servers: Servers = yaml::parse(&text)
        .map_err(|e| anyhow::anyhow!("{}:{}: {}", path.display(), e.position.line, e.message))?;
    Ok(servers
        .servers
        .into_iter()
        .map(|s| s.name)
        .filter(|name| identifier::is_server_name(name))
        .collect())
}
