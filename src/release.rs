//! `Bundle` and releases: the Django code from `django.source`, packed locally (skipping .git,
//! virtualenvs, __pycache__ and whatever the project's .gitignore ignores), identified by a
//! hash of its contents, shipped inside the release script over the SSH session, and switched
//! live only when check, migrations and collectstatic succeeded.

use std::fmt::Write as _;

use anyhow::Context;
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::identifier::shell_word;
use crate::script::payload;
use crate::vars::Vars;

/// Releases kept on each app server (the current one included).
pub const KEEP: usize = 5;

/// The packed source tree.
pub struct Bundle {
    /// sha256 over every shipped path and its bytes: the code's identity.
    pub hash: String,
    /// sha256 of the requirements file: the virtualenv's identity.
    pub requirements_hash: String,
    pub tar_gz: Vec<u8>,
    pub files: usize,
}

/// Packs `config.django.source`.
pub fn bundle(config: &Config) -> anyhow::Result<Bundle> {
    let root = &config.django.source;
    let mut paths = Vec::new();
    let walker = ignore::WalkBuilder::new(root)
        .hidden(false)
        .git_ignore(true)
        .git_exclude(true)
        .require_git(false)
        .parents(false)
        .filter_entry(|e| {
            let name = e.file_name().to_string_lossy();
            let is_dir = e.file_type().is_some_and(|t| t.is_dir());
            !(name == ".git"
                || name == "__pycache__"
                || name.ends_with(".pyc")
                || (is_dir && e.path().join("pyvenv.cfg").exists()))
        })
        .build();
    for entry in walker {
        let entry = entry.with_context(|| format!("reading {}", root.display()))?;
        if entry.file_type().is_some_and(|t| t.is_file()) {
            let rel = entry
                .path()
                .strip_prefix(root)
                .expect("walk stays below its root")
                .to_path_buf();
            paths.push(rel);
        }
    }
    paths.sort();
    let mut hasher = Sha256::new();
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    builder.mode(tar::HeaderMode::Deterministic);
    for rel in &paths {
        let full = root.join(rel);
        let data = std::fs::read(&full).with_context(|| format!("reading {}", full.display()))?;
        hasher.update(rel.to_string_lossy().as_bytes());
        hasher.update([0]);
        hasher.update((data.len() as u64).to_le_bytes());
        hasher.update(&data);
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        let executable = std::fs::metadata(&full)
            .map(|m| is_executable(&m))
            .unwrap_or(false);
        header.set_mode(if executable { 0o755 } else { 0o644 });
        header.set_cksum();
        builder.append_data(&mut header, rel, data.as_slice())?;
    }
    let tar_gz = builder.into_inner()?.finish()?;
    let requirements =
        std::fs::read(root.join(&config.django.requirements)).with_context(|| {
            format!(
                "reading {} (django.requirements)",
                root.join(&config.django.requirements).display()
            )
        })?;
    Ok(Bundle {
        hash: hex(&hasher.finalize()),
        requirements_hash: hex(&Sha256::digest(&requirements)),
        tar_gz,
        files: paths.len(),
    })
}

#[cfg(unix)]
fn is_executable(m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    m.permissions().mode() & 0o111 != 0
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// What the probe found about releases on an app server.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReleaseState {
    /// Directory name `current` points at.
    pub current: Option<String>,
    /// Code hash recorded in the current release.
    pub current_hash: Option<String>,
    /// All release directories, oldest first.
    pub releases: Vec<String>,
}

/// Probe query for `ReleaseState`.
pub fn probe(vars: &Vars) -> String {
    format!(
        "cd {root} 2>/dev/null || exit 3; echo \"current=$(readlink current 2>/dev/null | sed 's|.*/||')\"; \
         echo \"hash=$(cat current/.tandem-release 2>/dev/null)\"; ls -1 releases 2>/dev/null | sed 's/^/release=/'; true",
        root = shell_word(&vars.paths.root)
    )
}

impl ReleaseState {
    pub fn parse(status: i32, text: &str) -> ReleaseState {
        let mut s = ReleaseState::default();
        if status != 0 {
            return s;
        }
        for line in text.lines() {
            if let Some(v) = line.strip_prefix("current=").filter(|v| !v.is_empty()) {
                s.current = Some(v.to_string());
            } else if let Some(v) = line.strip_prefix("hash=").filter(|v| !v.is_empty()) {
                s.current_hash = Some(v.trim().to_string());
            } else if let Some(v) = line.strip_prefix("release=") {
                s.releases.push(v.to_string());
            }
        }
        s.releases.sort();
        s
    }

    /// The release before the current one, for rollback.
    pub fn previous(&self) -> Option<&str> {
        let current = self.current.as_deref()?;
        let pos = self.releases.iter().position(|r| r == current)?;
        pos.checked_sub(1).map(|i| self.releases[i].as_str())
    }
}

/// A new release id: UTC time (sorts in order) and the code hash's start.
pub fn release_id(hash: &str) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z-{}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        &hash[..12.min(hash.len())]
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Creates the public tenant (schema `public`) and its domain when missing. Tenant models are
/// the project's own: a `name` field, the usual one, is filled when the model has it.
const PUBLIC_TENANT: &str = r#"from django_tenants.utils import get_tenant_model, get_tenant_domain_model, get_public_schema_name
Tenant, Domain = get_tenant_model(), get_tenant_domain_model()
public = Tenant.objects.filter(schema_name=get_public_schema_name()).first()
if public is None:
    fields = {f.name for f in Tenant._meta.get_fields()}
    public = Tenant(schema_name=get_public_schema_name(), **({'name': 'public'} if 'name' in fields else {}))
    public.save()
    print('created the public tenant')
if not Domain.objects.filter(domain='APEX').exists():
    Domain.objects.create(domain='APEX', tenant=public, is_primary=True)
    print('created the public domain APEX')
"#;

/// Runs manage.py in release `$R` as the app user, with the env file's variables.
const MANAGE: &str = "manage() { (set -a; . \"$ENVFILE\"; set +a; cd \"$R\" && runuser -u \"$APPUSER\" -- \"$R/venv/bin/python\" manage.py \"$@\"); }\n";

/// The script that ships `bundle` as release `id` and switches to it.
/// `migrate`: run the migrations (only one app server does: concurrent `migrate` runs race on
/// the same tables; apply runs that server's release before the others').
pub fn release_script(
    config: &Config,
    vars: &Vars,
    bundle: &Bundle,
    id: &str,
    migrate: bool,
) -> String {
    let mut s = String::from("set -e\numask 022\n");
    s.push_str(&format!(
        "ROOT={root}\nR=\"$ROOT/releases\"/{id}\nAPPUSER={user}\nENVFILE={env}\nV=\"$ROOT/venvs\"/{req}\n",
        root = shell_word(&vars.paths.root),
        id = shell_word(id),
        user = shell_word(&vars.user),
        env = shell_word(&vars.paths.env_file),
        req = shell_word(&bundle.requirements_hash[..16]),
    ));
    s.push_str("rm -rf \"$R\"\nmkdir -p \"$R\" \"$ROOT/venvs\"\n");
    s.push_str(&format!(
        "{}\n",
        payload(&bundle.tar_gz, "| tar -xz --no-same-owner -C \"$R\"")
    ));
    s.push_str("chown -R \"$APPUSER:$APPUSER\" \"$R\" \"$ROOT/venvs\"\n");
    // One virtualenv per requirements file: reused while the requirements do not change. Built
    // in place (a venv cannot be moved: its scripts name their interpreter by path) and marked
    // complete only when pip succeeded.
    s.push_str(&format!(
        "if [ ! -e \"$V/.tandem-complete\" ]; then\n\
           rm -rf \"$V\"\n\
           runuser -u \"$APPUSER\" -- python3 -m venv \"$V\"\n\
           ok=\n\
           for i in 1 2 3; do\n\
             if runuser -u \"$APPUSER\" -- \"$V/bin/pip\" install -q --disable-pip-version-check -r \"$R\"/{req} >&2; then ok=1; break; fi\n\
             sleep $((i * 5))\n\
           done\n\
           [ -n \"$ok\" ] || {{ echo 'pip install failed three times' >&2; exit 1; }}\n\
           touch \"$V/.tandem-complete\"\n\
         fi\n\
         ln -sfn \"$V\" \"$R/venv\"\n",
        req = shell_word(&config.django.requirements)
    ));
    s.push_str(MANAGE);
    s.push_str(
        "echo '== manage.py check --deploy' >&2\nmanage check --deploy --fail-level ERROR >&2\n",
    );
    if !migrate {
        s.push_str("echo 'migrations: run by the first app server' >&2\n");
    } else if config.django.is_multi_tenant() {
        // Shared apps first; then the public tenant and its domain (the apex), without which
        // django-tenants answers every request with 400/404; then every tenant's schema.
        let apex = config
            .domains
            .iter()
            .find(|d| !d.starts_with("*."))
            .cloned()
            .unwrap_or_default();
        s.push_str("manage migrate_schemas --shared --noinput >&2\n");
        s.push_str(&format!(
            "manage shell >&2 <<'TANDEM_PY'\n{}TANDEM_PY\n",
            PUBLIC_TENANT.replace("APEX", &apex.replace('\'', ""))
        ));
        s.push_str("manage migrate_schemas --noinput >&2\n");
    } else {
        s.push_str("manage migrate --noinput >&2\n");
    }
    s.push_str("manage collectstatic --noinput >&2\n");
    // Live only if gunicorn runs on it; otherwise back to the previous release, and the failed
    // one is removed. The code hash is recorded only on success, so the next plan retries.
    s.push_str(&switch_function(vars));
    s.push_str(
        "PREV=$(readlink \"$ROOT/current\" 2>/dev/null || true)\n\
         if ! switch_to \"$R\"; then\n\
           if [ -n \"$PREV\" ]; then switch_to \"$PREV\" || true; else rm -f \"$ROOT/current\"; fi\n\
           rm -rf \"$R\"\n\
           echo \"gunicorn did not start on the new release; running release: ${PREV:-none}\" >&2\n\
           exit 1\n\
         fi\n",
    );
    s.push_str(&format!(
        "printf '%s\\n' {} >\"$R/.tandem-release\"\n",
        shell_word(&bundle.hash)
    ));
    s.push_str(&format!(
        "cd \"$ROOT/releases\" && ls -1 | sort | head -n -{KEEP} | while read -r old; do [ \"$old\" = \"$(basename \"$(readlink \"$ROOT/current\")\")\" ] || rm -rf \"$old\"; done\n"
    ));
    s.push_str("echo \"released $(basename \"$R\")\"\n");
    s
}

/// Defines `switch_to DIR`: points `current` at DIR atomically, then restarts gunicorn and
/// waits for it. Socket activation keeps the socket open across the restart: requests wait in
/// its queue, none is refused.
fn switch_function(vars: &Vars) -> String {
    format!(
        "switch_to() {{\n\
           ln -sfn \"$1\" \"$ROOT/current.new\" && mv -Tf \"$ROOT/current.new\" \"$ROOT/current\" || return 1\n\
           systemctl reset-failed {svc} {sock} 2>/dev/null || true\n\
           systemctl start {sock} || return 1\n\
           systemctl restart {svc} || true\n\
           i=0; while [ $i -lt 50 ] && ! systemctl is-active --quiet {svc}; do sleep 0.1; i=$((i+1)); done\n\
           systemctl is-active --quiet {svc} || {{ journalctl -u {svc} -n 20 --no-pager >&2; return 1; }}\n\
         }}\n",
        svc = shell_word(&vars.units.service),
        sock = shell_word(&vars.units.socket)
    )
}

/// Switches `current` back to release `id` (already on the host) and restarts gunicorn.
pub fn rollback_script(vars: &Vars, id: &str) -> String {
    format!(
        "set -e\nROOT={root}\nR=\"$ROOT/releases\"/{id}\n[ -d \"$R\" ] || {{ echo \"no release $R\" >&2; exit 1; }}\n\
         {}switch_to \"$R\"\necho \"rolled back to {id}\"\n",
        switch_function(vars),
        root = shell_word(&vars.paths.root),
        id = shell_word(id),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_state_and_previous() {
        let s = ReleaseState::parse(
            0,
            "current=20261127T060000Z-bbb\nhash=abc\nrelease=20261127T050000Z-aaa\nrelease=20261127T060000Z-bbb\n",
        );
        assert_eq!(s.current.as_deref(), Some("20261127T060000Z-bbb"));
        assert_eq!(s.current_hash.as_deref(), Some("abc"));
        assert_eq!(s.previous(), Some("20261127T050000Z-aaa"));
        assert_eq!(ReleaseState::parse(3, "").current, None);
    }

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_784), (2026, 11, 27));
    }

    #[test]
    fn bundle_skips_git_venvs_caches_and_gitignored_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for (path, text) in [
            ("manage.py", "print()"),
            ("requirements.txt", "Django\n"),
            ("app/views.py", "x = 1"),
            (".gitignore", "local_settings.py\n"),
            ("local_settings.py", "SECRET = 1"),
            (".git/config", "[core]"),
            ("app/__pycache__/views.cpython-311.pyc", "bytes"),
            ("venv/pyvenv.cfg", "home = /usr"),
            ("venv/lib/x.py", "x"),
        ] {
            std::fs::create_dir_all(root.join(path).parent().unwrap()).unwrap();
            std::fs::write(root.join(path), text).unwrap();
        }
        let config = crate::config::parse(
            &root.join("tandem.yml"),
            &format!(
                "{}django:\n  source: .\n  wsgi_module: a.wsgi\n  settings_module: a.settings\n",
                MINIMAL
            ),
        )
        .unwrap()
        .config;
        let b = bundle(&config).unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(b.tar_gz.as_slice()));
        let mut names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                ".gitignore",
                "app/views.py",
                "manage.py",
                "requirements.txt"
            ]
        );
        let again = bundle(&config).unwrap();
        assert_eq!(again.hash, b.hash, "the hash depends on content only");
        std::fs::write(root.join("app/views.py"), "x = 2").unwrap();
        assert_ne!(bundle(&config).unwrap().hash, b.hash);
    }

    const MINIMAL: &str = "project: shop
servers:
  - {name: db, role: db, ssh: db, fqdn: db.example.com, internal_ip: 10.0.0.3}
  - {name: app1, role: app, ssh: app1, fqdn: app1.example.com, internal_ip: 10.0.0.2}
domains: [shop.example.com]
database: {name: shop, role: shop, password: {env: X}}
ssh: {authorized_keys: [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHYMxxG3vqHCA+eug0ptUklTD5djvx5I6fEUaBbLhMuQ x\"]}
";
}
