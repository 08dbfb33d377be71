//! `ssh:` in tandem.yml: the deploy user, the operator's public keys, the port.

use super::*;

#[derive(Clone, Debug, Serialize)]
pub struct SshSettings {
    pub deploy_user: String,
    /// Public keys installed for the deploy user (literal lines, files already read).
    pub authorized_keys: Vec<String>,
    pub port: u16,
}

pub(super) fn expand_home(path: &str, base: &Path) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => base.join(path),
    }
}

pub(super) fn is_public_key(line: &str) -> bool {
    let mut parts = line.split_whitespace();
    let kind = parts.next().unwrap_or("");
    let blob = parts.next().unwrap_or("");
    !line.contains(['\n', '\r']) && KEY_TYPES.contains(&kind) && blob_key_type(blob) == Some(kind)
}

/// The key type written inside a public key's base64 blob (a length-prefixed string), which
/// must agree with the type in front of it: this tells a key from text that merely looks like one.
pub(super) fn blob_key_type(blob: &str) -> Option<&'static str> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(blob)
        .ok()?;
    let len = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let name = bytes.get(4..4usize.checked_add(len)?)?;
    KEY_TYPES.iter().find(|k| k.as_bytes() == name).copied()
}

pub(super) const KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ssh-dss",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

impl Validator<'_> {
    pub(super) fn ssh(&mut self, raw: raw::Ssh, project: &str) -> SshSettings {
        let deploy_user = self.safe_name(&raw.deploy_user, "ssh.deploy_user");
        if deploy_user == "root" {
            self.error(
                &raw.deploy_user,
                "ssh.deploy_user",
                "the deploy user cannot be root: root login is disabled".into(),
                "use an unprivileged name such as `deploy`",
            );
        } else if identifier::SYSTEM_ACCOUNTS.contains(&deploy_user.as_str()) {
            self.error(
                &raw.deploy_user,
                "ssh.deploy_user",
                format!(
                    "`{deploy_user}` is a system account: tandem would give it sudo and your keys"
                ),
                "use a name of its own such as `deploy`",
            );
        } else if deploy_user == project {
            self.error(
                &raw.deploy_user,
                "ssh.deploy_user",
                format!(
                    "`{deploy_user}` is the project's own user, which runs the app without a shell"
                ),
                "use a different name such as `deploy`",
            );
        }
        let mut keys = Vec::new();
        for (i, key) in raw.authorized_keys.iter().enumerate() {
            if is_public_key(&key.value) {
                keys.push(key.value.trim().to_string());
            } else {
                self.error(
                    key,
                    &format!("ssh.authorized_keys[{i}]"),
                    "not an SSH public key line".into(),
                    "paste one line of a .pub file, e.g. `ssh-ed25519 AAAA... you@laptop`",
                );
            }
        }
        let base = self.path.parent().unwrap_or(Path::new("."));
        for (i, file) in raw.authorized_key_files.iter().enumerate() {
            let path = expand_home(&file.value, base);
            match crate::config::local_file::read_small(&path) {
                Ok(text) => {
                    let lines: Vec<&str> = text
                        .lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty() && !l.starts_with('#'))
                        .collect();
                    let field = format!("ssh.authorized_key_files[{i}]");
                    if text.contains("PRIVATE KEY") {
                        self.error(
                            file,
                            &field,
                            format!("{} is a PRIVATE key", path.display()),
                            "name the .pub file beside it; a private key never leaves your machine",
                        );
                    } else if lines.is_empty() {
                        self.error(
                            file,
                            &field,
                            format!("{} holds no SSH public key", path.display()),
                            "name a .pub file (never the private key)",
                        );
                    } else if let Some(n) = lines.iter().position(|l| !is_public_key(l)) {
                        self.error(
                            file,
                            &field,
                            format!(
                                "{}: key {} of {} is not an SSH public key line",
                                path.display(),
                                n + 1,
                                lines.len()
                            ),
                            "the file must hold only public key lines, as a .pub file does",
                        );
                    } else {
                        keys.extend(lines.into_iter().map(str::to_string));
                    }
                }
                Err(why) => self.error(
                    file,
                    &format!("ssh.authorized_key_files[{i}]"),
                    format!("cannot read {}: {why}", path.display()),
                    "name an existing .pub file (relative paths are from this file's directory)",
                ),
            }
        }
        if raw.authorized_keys.is_empty() && raw.authorized_key_files.is_empty() {
            let at = Spanned::new((), raw.deploy_user.referenced, raw.deploy_user.defined);
            self.error(
                &at,
                "ssh.authorized_keys",
                "no public key for the deploy user: with passwords off, nobody could log in".into(),
                "add `authorized_keys:` or `authorized_key_files: [~/.ssh/id_ed25519.pub]`",
            );
        }
        if raw.port.value == 0 {
            self.error(
                &raw.port,
                "ssh.port",
                "port 0".into(),
                "use the port sshd listens on, usually 22",
            );
        }
        SshSettings {
            deploy_user,
            authorized_keys: keys,
            port: raw.port.value,
        }
    }
}
