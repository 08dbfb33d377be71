//! Who holds each server's apply lock, read without taking it (`tandem lock status`): the
//! holder as it wrote itself into `lock.owner`, since when, and whether remote work of a run
//! that was cut off still runs there (the work lock, see `resource::script::WORK_LOCK`).

use crate::config::identifier::shell_word;

/// What one server's locks say.
#[derive(Debug, PartialEq, Eq, serde::Serialize)]
pub struct LockStatus {
    pub held: bool,
    /// The run holding it ("user@machine run ID"), when held.
    pub owner: Option<String>,
    /// When the holder took it (epoch seconds), when held.
    pub since: Option<i64>,
    /// The server's clock when asked (epoch seconds).
    pub now: i64,
    /// A script of an earlier run still runs there (its tandem was cut off).
    pub work_running: bool,
}

/// The script that reads the locks in `dir` (`/var/lib/tandem`): `flock -n` on a descriptor
/// of its own, so a free lock is held only for the instant of asking.
pub fn script(dir: &str) -> String {
    format!(
        "D={dir}\n\
         echo \"now=$(date +%s)\"\n\
         if [ -e \"$D/lock\" ] && ! flock -n \"$D/lock\" true; then\n\
           echo lock=held\n\
           echo \"owner=$(head -c 300 \"$D/lock.owner\" 2>/dev/null | head -n 1)\"\n\
           echo \"since=$(stat -c %Y \"$D/lock.owner\" 2>/dev/null)\"\n\
         else echo lock=free; fi\n\
         if [ -e \"$D/work.lock\" ] && ! flock -n -x \"$D/work.lock\" true; then echo work=running; else echo work=idle; fi\n",
        dir = shell_word(dir)
    )
}

/// Reads `script`'s answer.
pub fn parse(text: &str) -> LockStatus {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
            .map(str::trim)
    };
    let held = field("lock") == Some("held");
    LockStatus {
        held,
        owner: field("owner")
            .filter(|o| held && !o.is_empty())
            .map(str::to_string),
        since: field("since").filter(|_| held).and_then(|s| s.parse().ok()),
        now: field("now").and_then(|s| s.parse().ok()).unwrap_or(0),
        work_running: field("work") == Some("running"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    fn ask(dir: &std::path::Path) -> LockStatus {
        let out = Command::new("sh")
            .arg("-c")
            .arg(script(&dir.display().to_string()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        parse(&String::from_utf8_lossy(&out.stdout))
    }

    /// A process holding `file`'s flock (with `options`), once it has it. `-o`: flock itself
    /// holds it, not its command, so killing flock frees it.
    fn hold(options: &[&str], file: &std::path::Path) -> std::process::Child {
        let mut holder = Command::new("flock")
            .args(options)
            .arg("-o")
            .arg(file)
            .args(["sh", "-c", "echo taken; exec sleep 30"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut taken = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(holder.stdout.as_mut().unwrap()),
            &mut taken,
        )
        .unwrap();
        holder
    }

    /// The real script against real flocks: free, then held by another process (which keeps
    /// it: asking never takes it away), then a cut-off run's work.
    #[test]
    fn the_locks_are_read_as_flock_holds_them() {
        let dir = tempfile::tempdir().unwrap();
        let free = ask(dir.path());
        assert!(!free.held && !free.work_running && free.now > 0, "{free:?}");
        std::fs::write(dir.path().join("lock.owner"), "ops@laptop run 42\n").unwrap();
        let mut holder = hold(&[], &dir.path().join("lock"));
        let held = ask(dir.path());
        assert!(held.held, "{held:?}");
        assert_eq!(held.owner.as_deref(), Some("ops@laptop run 42"));
        assert!(held.since.is_some_and(|s| s <= held.now), "{held:?}");
        assert!(ask(dir.path()).held, "asking did not take the lock away");
        holder.kill().unwrap();
        holder.wait().unwrap();
        let mut work = hold(&["-s"], &dir.path().join("work.lock"));
        let running = ask(dir.path());
        assert!(!running.held && running.work_running, "{running:?}");
        work.kill().unwrap();
        work.wait().unwrap();
    }
}
