# Managed by tandem: this file is overwritten on every apply. Mode 0644, owner root.
# gunicorn's settings (`--config`) for {{ units.service }} and its bridge unit.
# Without `--config` gunicorn reads gunicorn.conf.py from the release (its working
# directory): that file, when the release has one, is read first here, so its settings and
# hooks still apply; tandem's command-line options win over both, as they did.
import atexit
import os
import sys
import threading
import time


def _autogroup_nice(value):
    """Sets the CPU share of this process's session: the kernel shares the CPU between
    sessions (autogroups) first, and each systemd service is one. False when the kernel
    refuses (no autogroups, or a change within the last 0.1 s: tried again, 1 s at most)."""
    for _ in range(20):
        try:
            with open("/proc/self/autogroup", "w") as autogroup:
                autogroup.write(str(value))
            return True
        except BlockingIOError:
            time.sleep(0.05)
        except OSError:
            return False
    return False


# While this gunicorn loads Django (--preload: in the master, before it answers), it yields
# the CPU to the unit serving: a release starts the idle unit beside the live one, and
# Django's start (about 0.4 s of a core) would take its share from the requests being
# served. Back to the usual share once ready (`when_ready`, `on_reload` below).
_autogroup_nice(10)

_release_conf = os.path.join(os.getcwd(), "gunicorn.conf.py")
if os.path.isfile(_release_conf):
    _settings = {"__file__": _release_conf, "__name__": "__config__"}
    with open(_release_conf, "rb") as _file:
        exec(compile(_file.read(), _release_conf, "exec"), _settings)
    globals().update((k, v) for k, v in _settings.items() if not k.startswith("__"))

_release_worker_exit = globals().get("worker_exit")
_release_when_ready = globals().get("when_ready")
_release_on_reload = globals().get("on_reload")


def when_ready(server):
    """Django is loaded and gunicorn answers: the usual CPU share again."""
    _autogroup_nice(0)
    if _release_when_ready is not None:
        _release_when_ready(server)


def on_reload(server):
    """A reload (HUP) reads this file again, so it yields again: back to the usual share."""
    _autogroup_nice(0)
    if _release_on_reload is not None:
        _release_on_reload(server)


def worker_exit(server, worker):
    """A worker that ends normally (stopped, or recycled) leaves without tearing the
    interpreter down.

    Freeing a Django worker's heap, object by object, costs about 0.2 s of CPU per worker,
    and every worker of the release that stops pays it at once, on the CPUs the new release
    is starting to serve from. Everything a normal exit does first is still done: other
    threads finish (if any is still running, the normal exit runs instead), the database
    connections close, atexit handlers run, output is flushed. A worker that fails (boot or
    load error, exit status other than 0) exits the usual way, so gunicorn reads its status.
    """
    if _release_worker_exit is not None:
        _release_worker_exit(server, worker)
    ending = sys.exc_info()[1]
    if not isinstance(ending, SystemExit) or ending.code not in (0, None):
        return
    others = [t for t in threading.enumerate() if t is not threading.main_thread()]
    if any(t.is_alive() and not t.daemon for t in others):
        return
    if "django.db" in sys.modules:
        try:
            sys.modules["django.db"].connections.close_all()
        except Exception:
            pass
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
