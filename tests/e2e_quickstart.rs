//! The README's quickstart, followed word for word on fresh lab servers, so it cannot drift
//! from what works: its shell blocks are read out of README.md and run as they are, in a copy
//! of the example project, with the installed-style `tandem` first on PATH. The only human
//! step, `$EDITOR tandem.yml`, is an editor that makes the edits the text asks for (the
//! servers' addresses, the domains, the ACME email; here also the lab's ACME CA). The first
//! apply runs on a terminal (a pty) and is answered `yes` when it asks, as a person would.

mod support;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use support::acme;
use support::lab::Suite;
use support::scenario::{assert_ok, shell_quote, text};

/// The shell blocks of the README's Quickstart section, in order.
fn quickstart_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("reading README.md");
    let start = readme
        .find("\n## Quickstart")
        .expect("README.md has no Quickstart section");
    let section = &readme[start + 1..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let mut commands = Vec::new();
    let mut in_sh = false;
    for line in section.lines() {
        match line.trim_end() {
            "```sh" => in_sh = true,
            "```" => in_sh = false,
            l if in_sh && !l.trim().is_empty() => commands.push(l.to_string()),
            _ => {}
        }
    }
    commands
}

/// An `$EDITOR` that makes the quickstart's edits to the starter `init` wrote: each `from`
/// must be in it (a starter that changed shape fails here, loudly).
fn editor(dir: &Path, edits: &[(String, String)]) -> std::path::PathBuf {
    let path = dir.join("editor");
    let pairs: Vec<String> = edits
        .iter()
        .map(|(from, to)| format!("({from:?}, {to:?})"))
        .collect();
    std::fs::write(
        &path,
        format!(
            "#!/usr/bin/env python3\nimport sys\npath = sys.argv[1]\ntext = open(path).read()\nfor old, new in [{}]:\n    assert old in text, f'the starter has no {{old!r}}'\n    text = text.replace(old, new, 1)\nopen(path, 'w').write(text)\n",
            pairs.join(", ")
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    path
}

#[test]
fn the_readme_quickstart_works_word_for_word_on_two_fresh_servers() {
    let lab = lab_or_skip!();
    let mut servers = lab.servers(3, Suite::Bookworm);
    let outsider = servers.pop().unwrap();
    let app = servers.pop().unwrap();
    let db = servers.pop().unwrap();
    let acme = acme::start(
        &outsider,
        &[
            ("timesheet.lab.test", &app.ip),
            ("www.timesheet.lab.test", &app.ip),
        ],
    );

    let home = tempfile::tempdir().unwrap();
    let project = home.path().join("timesheet");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/timesheet"),
        &project,
    );
    let ca = home.path().join("lab-ca.pem");
    std::fs::write(&ca, &acme.ca_pem).unwrap();
    let key = format!("{}.pub", lab.key.display());
    let edits = [
        ("deploy@db.example.com", format!("deploy@{}", db.name)),
        ("deploy@app1.example.com", format!("deploy@{}", app.name)),
        ("internal_ip: 10.0.0.3", format!("internal_ip: {}", db.ip)),
        ("internal_ip: 10.0.0.2", format!("internal_ip: {}", app.ip)),
        (
            "domains: [example.com, www.example.com]",
            "domains: [timesheet.lab.test, www.timesheet.lab.test]".to_string(),
        ),
        ("[~/.ssh/id_ed25519.pub]", format!("[{key}]")),
        ("email: ops@example.com", "email: ops@lab.test".to_string()),
        // The lab's CA instead of Let's Encrypt, as a user of a private ACME CA would write.
        (
            "# directory: https://acme-v02.api.letsencrypt.org/directory",
            format!("directory: {}", acme.directory),
        ),
        (
            "  hsts: true",
            format!("  ca_certificate: {}\n  hsts: true", ca.display()),
        ),
    ]
    .map(|(from, to)| (from.to_string(), to));
    let editor = editor(home.path(), &edits);

    let commands = quickstart_commands();
    for expected in [
        "tandem init",
        "tandem apply",
        "tandem verify",
        "tandem deploy",
    ] {
        assert!(
            commands.iter().any(|c| c.starts_with(expected)),
            "the quickstart has no `{expected}`: {commands:#?}"
        );
    }
    let script = home.path().join("quickstart.sh");
    // Each command is shown as written before it runs (not `set -x`, which would show the
    // generated password).
    let shown: Vec<String> = commands
        .iter()
        .map(|c| format!("printf '+ %s\\n' {}\n{c}", shell_quote(c)))
        .collect();
    std::fs::write(
        &script,
        format!("set -euo pipefail\n{}\n", shown.join("\n")),
    )
    .unwrap();

    let bin_dir = Path::new(env!("CARGO_BIN_EXE_tandem")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // `script` gives the commands a terminal, as a person's shell has: the first apply asks.
    let mut child = Command::new("timeout")
        .args(["1500", "script", "-qefc"])
        .arg(format!("bash {}", script.display()))
        .arg("/dev/null")
        .current_dir(&project)
        .env("PATH", path)
        .env("EDITOR", &editor)
        .env("TANDEM_SSH_CONFIG", &lab.ssh_config)
        .env_remove("TANDEM_DB_PASSWORD")
        .env_remove("TANDEM_BACKUP_KEY")
        .env_remove("TANDEM_REDIS_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running the quickstart under script(1)");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut answered = 0;
    let mut buf = [0u8; 4096];
    loop {
        let n = stdout.read(&mut buf).unwrap_or(0);
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
        let asked = text(&seen).matches("Type yes:").count();
        if asked > answered {
            stdin.write_all(b"yes\n").unwrap();
            answered = asked;
        }
    }
    drop(stdin);
    let status = child.wait().unwrap();
    let transcript = text(&seen);
    // Kept for reading after a run, as the browser test keeps its screenshots.
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    std::fs::write(artifacts.join("quickstart.log"), &transcript).unwrap();
    assert!(
        status.success(),
        "the quickstart failed ({status}):\n{transcript}"
    );
    assert_eq!(
        answered, 1,
        "the first apply should ask once:\n{transcript}"
    );
    for said in [
        "read ./manage.py: settings timesheet.settings",
        "verify: all",
    ] {
        assert!(transcript.contains(said), "no `{said}` in:\n{transcript}");
    }

    // The site answers over HTTPS with the certificate from the CA, from this machine.
    let page = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(&ca)
        .arg("--resolve")
        .arg(format!("timesheet.lab.test:443:{}", app.ip))
        .arg("https://timesheet.lab.test/")
        .output()
        .unwrap();
    assert_ok("fetching the site", &page);
    assert!(
        text(&page.stdout).to_lowercase().contains("timesheet"),
        "{}",
        text(&page.stdout)
    );
}

fn copy_dir(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-r")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}
