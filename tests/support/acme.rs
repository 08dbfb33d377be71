//! A real ACME CA and a real DNS server for the HTTPS scenarios, both on the scenario's
//! outsider server (so they come and go with it): Debian's `pebble` (the ACME test server
//! Let's Encrypt publishes) and `bind9`, authoritative for lab.test and accepting RFC 2136
//! updates signed with a TSIG key. pebble validates challenges through that DNS server.

#![allow(dead_code)]

use std::time::Duration;

use super::lab::Server;

pub const ZONE: &str = "lab.test";
pub const TSIG_KEY: &str = "tandem-acme";

/// Makes `server` resolve the lab's name server by name, as a real server resolves a zone's
/// NS names through public DNS (lego asks the zone's authoritative servers by name).
pub fn resolve_ns_on(server: &Server, acme: &Acme) {
    let ip = acme.nameserver.trim_end_matches(":53");
    server.run(&format!("echo '{ip} ns.{ZONE}' >> /etc/hosts"));
}

pub struct Acme {
    /// pebble's ACME directory URL.
    pub directory: String,
    /// The roots to trust (PEM): pebble's own HTTPS certificate, then the root it issues
    /// under (new at every pebble start).
    pub ca_pem: String,
    /// The root certificates are issued under (alone, for the browser).
    pub issuing_root: String,
    /// The TSIG secret bind9 accepts updates signed with.
    pub tsig_secret: String,
    /// `ip:53` of the DNS server.
    pub nameserver: String,
}

/// Installs and starts bind9 and pebble on `outsider`; `records` are `(name, ip)` A records
/// in lab.test (a name may appear twice for two addresses).
pub fn start(outsider: &Server, records: &[(&str, &str)]) -> Acme {
    outsider.apt_install("bind9 bind9-dnsutils pebble openssl");
    let ip = &outsider.ip;
    let mut zone = format!(
        "$TTL 5\n@ IN SOA ns.{ZONE}. hostmaster.{ZONE}. 1 60 60 600 5\n@ IN NS ns.{ZONE}.\nns IN A {ip}\n"
    );
    for (name, addr) in records {
        let label = name
            .strip_suffix(&format!(".{ZONE}"))
            .unwrap_or_else(|| panic!("{name} is not in {ZONE}"));
        zone.push_str(&format!("{label} IN A {addr}\n"));
    }
    let script = format!(
        r#"set -e
tsig-keygen -a hmac-sha256 {TSIG_KEY} > /etc/bind/{TSIG_KEY}.key
chown root:bind /etc/bind/{TSIG_KEY}.key; chmod 0640 /etc/bind/{TSIG_KEY}.key
cat > /etc/bind/named.conf.options <<'EOF'
options {{
    directory "/var/cache/bind";
    listen-on {{ any; }};
    listen-on-v6 {{ none; }};
    allow-query {{ any; }};
    recursion no;
    dnssec-validation no;
}};
EOF
cat > /etc/bind/named.conf.local <<'EOF'
include "/etc/bind/{TSIG_KEY}.key";
zone "{ZONE}" {{
    type master;
    file "/var/lib/bind/{ZONE}.zone";
    update-policy {{ grant {TSIG_KEY} zonesub TXT; }};
}};
EOF
cat > /var/lib/bind/{ZONE}.zone <<'EOF'
{zone}EOF
chown bind:bind /var/lib/bind/{ZONE}.zone
named-checkconf
systemctl restart named

mkdir -p /etc/pebble-lab
cd /etc/pebble-lab
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -subj /CN=pebble-lab -addext "subjectAltName=IP:{ip}" -keyout key.pem -out cert.pem 2>/dev/null
cat > pebble.json <<'EOF'
{{"pebble": {{"listenAddress": "0.0.0.0:14000", "managementListenAddress": "0.0.0.0:15000",
  "certificate": "/etc/pebble-lab/cert.pem", "privateKey": "/etc/pebble-lab/key.pem",
  "httpPort": 80, "tlsPort": 443, "ocspResponderURL": "", "externalAccountBindingRequired": false}}}}
EOF
# No random validation delay, no random nonce rejections: the scenarios are about tandem.
# No reuse of valid authorizations (pebble reuses half of them at random by default): every
# order proves control again, so a broken DNS set-up fails every time, not every other time.
systemd-run --unit pebble-lab -E PEBBLE_VA_NOSLEEP=1 -E PEBBLE_WFE_NONCEREJECT=0 -E PEBBLE_AUTHZREUSE=0 \
    /usr/bin/pebble -config /etc/pebble-lab/pebble.json -dnsserver {ip}:53
sed -n 's/^.*secret "\(.*\)";.*$/\1/p' /etc/bind/{TSIG_KEY}.key
"#
    );
    let tsig_secret = outsider.run(&script).trim().to_string();
    assert!(!tsig_secret.is_empty(), "no TSIG secret from tsig-keygen");
    let fetch_root = format!(
        r#"python3 - <<'EOF'
import ssl, urllib.request
ctx = ssl.create_default_context(cafile='/etc/pebble-lab/cert.pem')
print(urllib.request.urlopen('https://{ip}:15000/roots/0', context=ctx, timeout=5).read().decode(), end='')
EOF"#
    );
    assert!(
        outsider.wait_until(&fetch_root, Duration::from_secs(30)),
        "pebble did not answer on {ip}:15000"
    );
    assert!(
        outsider.wait_until(
            &format!("dig +short @{ip} ns.{ZONE} A | grep -qx {ip}"),
            Duration::from_secs(30)
        ),
        "bind9 does not answer for {ZONE}"
    );
    let issuing_root = outsider.run(&fetch_root);
    let listener = outsider.run("cat /etc/pebble-lab/cert.pem");
    Acme {
        directory: format!("https://{ip}:14000/dir"),
        ca_pem: format!("{listener}{issuing_root}"),
        issuing_root,
        tsig_secret,
        nameserver: format!("{ip}:53"),
    }
}
