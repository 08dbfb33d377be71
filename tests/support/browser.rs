//! A real browser for end-to-end tests, as the seed's functional tests use Selenium: Debian's
//! headless Chromium driven over WebDriver by chromedriver. It runs on this machine and reaches
//! the app server's bridge address; `--host-resolver-rules` makes the site's domains (and
//! tenant subdomains) resolve there, so nginx sees the real Host header.

// Notes to the person running the tests go to stderr.
#![allow(clippy::print_stderr)]
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use super::lab::{lab_command, required};

/// One chromedriver process with one browser session; both end on drop.
pub struct Browser {
    driver: Child,
    /// The browser's HOME, holding its NSS trust store when a lab CA is trusted.
    _home: Option<tempfile::TempDir>,
    base: String,
    session: String,
    agent: ureq::Agent,
}

/// What a page showed: the `h1#title` text and its computed colour, the body text.
#[derive(Debug)]
pub struct PageView {
    pub title: String,
    pub title_color: String,
    pub body: String,
}

/// Installs the browser once per test run (`lab browser`), or says why there is none.
fn installed() -> Result<(), String> {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    INSTALLED.get_or_init(|| lab_command(&["browser"])).clone()
}

impl Browser {
    /// A headless Chromium whose name resolution sends every name under each of `domains`
    /// to `ip`. `None` (with a note) only where the lab itself is optional.
    pub fn start(domains: &[&str], ip: &str) -> Option<Browser> {
        Browser::start_trusting(domains, ip, None)
    }

    /// `start`, with `root_pem` (a lab CA's root) trusted as the system's CAs are: the user's
    /// NSS store, which Chromium on Linux reads for locally added roots.
    pub fn start_trusting(domains: &[&str], ip: &str, root_pem: Option<&str>) -> Option<Browser> {
        if let Err(err) = installed() {
            assert!(!required(), "the browser test needs chromium: {err}");
            eprintln!("NOTE: browser test not run: {err}");
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let home = root_pem.map(|pem| {
            let home = tempfile::tempdir().unwrap();
            let db = home.path().join(".pki/nssdb");
            std::fs::create_dir_all(&db).unwrap();
            let root = home.path().join("root.pem");
            std::fs::write(&root, pem).unwrap();
            let db_arg = format!("sql:{}", db.display());
            for args in [
                vec!["-N", "-d", &db_arg, "--empty-password"],
                vec![
                    "-A",
                    "-d",
                    &db_arg,
                    "-t",
                    "C,,",
                    "-n",
                    "tandem-lab-ca",
                    "-i",
                    root.to_str().unwrap(),
                ],
            ] {
                let out = Command::new("certutil")
                    .args(&args)
                    .output()
                    .expect("running certutil");
                assert!(
                    out.status.success(),
                    "certutil {args:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            home
        });
        let mut driver = Command::new("chromedriver");
        if let Some(home) = &home {
            driver.env("HOME", home.path());
        }
        let driver = driver
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver");
        // WebDriver errors come back as JSON with a 4xx/5xx status: read them, don't throw.
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .proxy(None)
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !agent
            .get(format!("{base}/status"))
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_json::<Value>().ok())
            .is_some_and(|v| v["value"]["ready"] == true)
        {
            assert!(Instant::now() < deadline, "chromedriver not ready in 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        let rules: Vec<String> = domains
            .iter()
            .flat_map(|d| [format!("MAP {d} {ip}"), format!("MAP *.{d} {ip}")])
            .collect();
        let mut browser = Browser {
            driver,
            _home: home,
            base,
            session: String::new(),
            agent,
        };
        let created = browser.command(
            "POST",
            "/session",
            json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": "/usr/bin/chromium",
                    "args": [
                        "--headless=new", "--no-sandbox", "--disable-gpu",
                        "--disable-dev-shm-usage", "--no-proxy-server",
                        "--window-size=1024,768",
                        format!("--host-resolver-rules={}", rules.join(", ")),
                    ],
                },
            }}}),
        );
        browser.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {created}"))
            .to_string();
        Some(browser)
    }

    /// One WebDriver command; its `value`, or a panic naming the WebDriver error.
    fn command(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.base);
        let response = match method {
            "GET" => self.agent.get(&url).call(),
            "DELETE" => self.agent.delete(&url).call(),
            _ => self.agent.post(&url).send_json(&body),
        };
        let mut response = response.unwrap_or_else(|e| panic!("WebDriver {path}: {e}"));
        let reply: Value = response
            .body_mut()
            .read_json()
            .unwrap_or_else(|e| panic!("WebDriver {path}: {e}"));
        if let Some(error) = reply["value"]["error"].as_str() {
            panic!(
                "WebDriver {path}: {error}: {}",
                reply["value"]["message"].as_str().unwrap_or("")
            );
        }
        reply["value"].clone()
    }

    fn session_path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    /// Loads `url` (and waits for its load event, as WebDriver does) and reads the page.
    pub fn visit(&self, url: &str) -> PageView {
        self.command("POST", &self.session_path("/url"), json!({ "url": url }));
        let seen = self.command(
            "POST",
            &self.session_path("/execute/sync"),
            json!({
                "script": "const h = document.querySelector('h1#title'); \
                           return [h ? h.textContent : '', \
                                   h ? getComputedStyle(h).color : '', \
                                   document.body ? document.body.innerText : ''];",
                "args": [],
            }),
        );
        let text = |i: usize| seen[i].as_str().unwrap_or("").to_string();
        PageView {
            title: text(0),
            title_color: text(1),
            body: text(2),
        }
    }

    /// Saves what the browser shows now as a PNG under tests/artifacts/ and returns its path.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.command("GET", &self.session_path("/screenshot"), Value::Null);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("screenshot is base64"))
            .expect("screenshot decodes");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/artifacts");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let url = format!("{}{}", self.base, self.session_path(""));
            let _ = self.agent.delete(&url).call();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
