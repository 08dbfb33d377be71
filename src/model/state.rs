//! What the probes found of the features' state on a host, as the plan carries it: the
//! HTTPS certificate nginx serves, the releases on an app server. Data only; the kinds that
//! act on them live in resource/.

use serde::Serialize;

/// The subject of the placeholder, so that it is never taken for a real certificate.
pub const PLACEHOLDER_CN: &str = "tandem placeholder";

/// What nginx serves on a server now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum CertificateState {
    Missing,
    Placeholder,
    Issued {
        /// Seconds since the epoch, on the host's clock.
        not_after: i64,
        now: i64,
        names: Vec<String>,
        fingerprint: String,
    },
}

impl CertificateState {
    pub fn parse(stdout: &str) -> CertificateState {
        let field = |name: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
                .map(str::trim)
        };
        let Some(subject) = field("subject") else {
            return CertificateState::Missing;
        };
        if subject.contains(PLACEHOLDER_CN) {
            return CertificateState::Placeholder;
        }
        let number = |name: &str| field(name).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
        CertificateState::Issued {
            not_after: number("end"),
            now: number("now"),
            names: field("names")
                .unwrap_or("")
                .split_whitespace()
                .map(str::to_string)
                .collect(),
            fingerprint: field("fingerprint").unwrap_or("").to_string(),
        }
    }

    /// One line for the plan.
    pub fn describe(&self, renew_days: u32) -> String {
        match self {
            CertificateState::Missing => "missing".into(),
            CertificateState::Placeholder => {
                "self-signed placeholder (no certificate from the CA yet)".into()
            }
            CertificateState::Issued { not_after, .. } if self.due(renew_days) => {
                format!("due for renewal (expires {})", day(*not_after))
            }
            CertificateState::Issued { not_after, .. } => {
                format!("valid until {}", day(*not_after))
            }
        }
    }

    /// Expires within `renew_days` (by the host's clock).
    pub fn due(&self, renew_days: u32) -> bool {
        match self {
            CertificateState::Issued { not_after, now, .. } => {
                not_after - now < i64::from(renew_days) * 86_400
            }
            _ => true,
        }
    }

    pub fn fingerprint(&self) -> Option<&str> {
        match self {
            CertificateState::Issued { fingerprint, .. } => Some(fingerprint),
            _ => None,
        }
    }
}

fn day(epoch: i64) -> String {
    jiff::Timestamp::from_second(epoch)
        .map(|t| t.strftime("%Y-%m-%d").to_string())
        .unwrap_or_else(|_| format!("@{epoch}"))
}

/// One of gunicorn's two units as `resource::release::gunicorn_units_query` reports it.
#[derive(Debug, PartialEq, Eq)]
pub struct GunicornUnit<'a> {
    pub unit: &'a str,
    /// `systemctl is-active`'s answer.
    pub state: &'a str,
    /// The release directory its main process runs in; empty when none runs.
    pub release: &'a str,
}

/// The `gunicorn=UNIT STATE RELEASE` lines of `text`.
pub fn gunicorn_units(text: &str) -> Vec<GunicornUnit<'_>> {
    text.lines()
        .filter_map(|l| l.strip_prefix("gunicorn="))
        .map(|l| {
            let mut words = l.splitn(3, ' ');
            GunicornUnit {
                unit: words.next().unwrap_or(""),
                state: words.next().unwrap_or(""),
                release: words.next().unwrap_or(""),
            }
        })
        .collect()
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
    /// The current release's migration files (paths below it), for the plan to name the
    /// ones a new release adds.
    pub migrations: Vec<String>,
    /// gunicorn's units that have a main process, and the release it runs in (unit, release
    /// directory name): one, on `current`, once a switch is done.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub serving: Vec<(String, String)>,
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
            } else if let Some(v) = line.strip_prefix("migration=./") {
                s.migrations.push(v.to_string());
            }
        }
        s.releases.sort();
        s.migrations.sort();
        s.serving = gunicorn_units(text)
            .into_iter()
            // A unit deactivating is the one a switch just stopped: its workers are gone, its
            // master exits in a moment (scripts/release/switch.sh does not wait for it).
            .filter(|u| !u.release.is_empty() && u.state != "deactivating")
            .map(|u| (u.unit.to_string(), u.release.to_string()))
            .collect();
        s
    }

    /// Why gunicorn's units are not as a finished switch leaves them (one serving, on
    /// `current`): a switch cut off midway, or a unit started by hand. None when they are, or
    /// when none runs (socket activation starts the service at the first request).
    pub fn gunicorn_drift(&self) -> Option<String> {
        let current = self.current.as_deref()?;
        match self.serving.as_slice() {
            [] => None,
            [(_, release)] if release == current => None,
            [(unit, release)] => Some(format!("{unit} runs {release}, current is {current}")),
            many => Some(format!(
                "{} run at once",
                many.iter()
                    .map(|(unit, _)| unit.as_str())
                    .collect::<Vec<_>>()
                    .join(" and ")
            )),
        }
    }

    /// The release before the current one, for rollback.
    pub fn previous(&self) -> Option<&str> {
        let current = self.current.as_deref()?;
        let pos = self.releases.iter().position(|r| r == current)?;
        pos.checked_sub(1).map(|i| self.releases[i].as_str())
    }
}
