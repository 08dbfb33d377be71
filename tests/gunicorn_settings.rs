//! tandem's gunicorn settings file (`templates/django/gunicorn.conf.py`), loaded by Python as
//! gunicorn loads it, with its `worker_exit` hook called as gunicorn's worker calls it: from
//! the `finally` of the worker's `sys.exit(...)`, where an exception it raises is logged and
//! the exit goes on. The lab's e2e tests run it in real gunicorn.

use std::path::Path;
use std::process::Command;

const HARNESS: &str = r#"
import atexit, runpy, sys, threading, time
conf = runpy.run_path(sys.argv[1])
mode = sys.argv[2]
if mode == "settings":
    print(conf.get("timeout"))
    sys.exit(0)
if mode == "autogroup":
    def nice():
        return open("/proc/self/autogroup").read().split()[-1]
    print("loading", nice())
    conf["when_ready"](None)
    print("ready", nice())
    conf = runpy.run_path(sys.argv[1])
    print("reloading", nice())
    conf["on_reload"](None)
    print("reloaded", nice())
    sys.exit(0)
class Teardown:
    def __del__(self):
        print("teardown", flush=True)
kept = Teardown()
atexit.register(lambda: print("atexit", flush=True))
if mode == "thread":
    threading.Thread(target=time.sleep, args=(0.2,)).start()
try:
    sys.exit(3 if mode == "failed" else 0)
finally:
    try:
        conf["worker_exit"](None, None)
    except Exception:
        print("hook failed", flush=True)
"#;

/// Runs the harness in `dir` (the release's working directory), in a session of its own (the
/// settings change their session's CPU share); stdout and the exit status.
fn run(dir: &Path, mode: &str) -> (String, Option<i32>) {
    let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/django/gunicorn.conf.py");
    let out = Command::new("setsid")
        .args(["--wait", "python3"])
        .arg("-c")
        .arg(HARNESS)
        .arg(&conf)
        .arg(mode)
        .current_dir(dir)
        .output()
        .expect("python3 runs");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into(),
        out.status.code(),
    )
}

/// The template's only Tera expressions are in comments, so the Python tested here is the
/// Python shipped.
#[test]
fn the_template_is_python_as_shipped() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/django/gunicorn.conf.py"),
    )
    .unwrap();
    for line in text.lines() {
        if line.contains("{{") || line.contains("{%") {
            assert!(
                line.starts_with('#'),
                "a template expression in code: {line}"
            );
        }
    }
}

#[test]
fn a_worker_that_ends_normally_skips_the_teardown_but_not_atexit() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(run(dir.path(), "ok"), ("atexit\n".into(), Some(0)));
}

#[test]
fn a_failed_worker_exits_the_usual_way_with_its_status() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        run(dir.path(), "failed"),
        ("atexit\nteardown\n".into(), Some(3))
    );
}

#[test]
fn a_worker_with_a_thread_still_running_exits_the_usual_way() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        run(dir.path(), "thread"),
        ("atexit\nteardown\n".into(), Some(0))
    );
}

/// Without `--config`, gunicorn reads the release's gunicorn.conf.py: it still applies, its
/// hook included.
#[test]
fn the_releases_own_gunicorn_conf_still_applies() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(run(dir.path(), "settings"), ("None\n".into(), Some(0)));
    std::fs::write(
        dir.path().join("gunicorn.conf.py"),
        "timeout = 77\ndef worker_exit(server, worker):\n    print('release hook', flush=True)\n",
    )
    .unwrap();
    assert_eq!(run(dir.path(), "settings"), ("77\n".into(), Some(0)));
    assert_eq!(
        run(dir.path(), "ok"),
        ("release hook\natexit\n".into(), Some(0))
    );
}

/// A release's own hook that raises: gunicorn logs it and the worker exits the usual way.
#[test]
fn a_release_hook_that_raises_leaves_the_usual_exit() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("gunicorn.conf.py"),
        "def worker_exit(server, worker):\n    raise RuntimeError('no')\n",
    )
    .unwrap();
    assert_eq!(
        run(dir.path(), "ok"),
        ("hook failed\natexit\nteardown\n".into(), Some(0))
    );
}

/// While gunicorn loads Django (the settings are read first, `--preload` loads it next), its
/// session yields the CPU (autogroup nice 10); ready, it has the usual share again; a reload
/// (HUP), which reads the settings again, ends the same way. This machine's kernel groups
/// sessions (`/proc/self/autogroup`), as Debian's do.
#[test]
fn gunicorn_yields_the_cpu_while_it_loads_django_and_not_once_ready() {
    let dir = tempfile::tempdir().unwrap();
    let hooks = dir.path().join("hooks");
    std::fs::write(
        dir.path().join("gunicorn.conf.py"),
        format!(
            "def when_ready(server):\n    open({h:?}, 'a').write('ready\\n')\n\
             def on_reload(server):\n    open({h:?}, 'a').write('reload\\n')\n",
            h = hooks.display().to_string()
        ),
    )
    .unwrap();
    assert_eq!(
        run(dir.path(), "autogroup"),
        (
            "loading 10\nready 0\nreloading 10\nreloaded 0\n".into(),
            Some(0)
        )
    );
    assert_eq!(
        std::fs::read_to_string(&hooks).unwrap(),
        "ready\nreload\n",
        "the release's own hooks still run"
    );
}
