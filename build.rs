//! Build facts for `tandem --version`, as `cargo -vV` gives them: the commit and its date
//! (when built from a git checkout), the build date (`SOURCE_DATE_EPOCH` when set, as Debian's
//! package builds do, so a rebuild says the same) and the target.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let hash = git(&["rev-parse", "HEAD"]);
    let commit_date = git(&["log", "-1", "--format=%cs"]);
    let built = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        });
    let build_date = civil_date(built);
    let target = std::env::var("TARGET").unwrap_or_default();
    let short = match (&hash, &commit_date) {
        (Some(hash), Some(date)) => format!("{version} ({} {date})", &hash[..hash.len().min(12)]),
        _ => version.clone(),
    };
    let unknown = || "unknown (not built from a git checkout)".to_string();
    println!("cargo:rustc-env=TANDEM_VERSION={short}");
    println!(
        "cargo:rustc-env=TANDEM_COMMIT={}",
        hash.unwrap_or_else(unknown)
    );
    println!(
        "cargo:rustc-env=TANDEM_COMMIT_DATE={}",
        commit_date.unwrap_or_else(unknown)
    );
    println!("cargo:rustc-env=TANDEM_BUILD_DATE={build_date}");
    println!("cargo:rustc-env=TANDEM_TARGET={target}");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    for path in [".git/HEAD", ".git/refs/heads", ".git/packed-refs"] {
        println!("cargo:rerun-if-changed={path}");
    }
}

/// `YYYY-MM-DD` of a Unix time (UTC), by Howard Hinnant's days-to-civil.
fn civil_date(seconds: u64) -> String {
    let z = (seconds / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}
