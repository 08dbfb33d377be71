# Managed by tandem: this file is overwritten on every apply. Mode 0644, owner root.
# gunicorn's settings (`--config`) for {{ units.service }} and its bridge unit.
# Without `--config` gunicorn reads gunicorn.conf.py from the release (its working
# directory): that file, when the release has one, is read first here, so its settings and
# hooks still apply; tandem's command-line options win over both, as they did.
import atexit
import os
import sys
import threading

_release_conf = os.path.join(os.getcwd(), "gunicorn.conf.py")
if os.path.isfile(_release_conf):
    _settings = {"__file__": _release_conf, "__name__": "__config__"}
    with open(_release_conf, "rb") as _file:
        exec(compile(_file.read(), _release_conf, "exec"), _settings)
    globals().update((k, v) for k, v in _settings.items() if not k.startswith("__"))

_release_worker_exit = globals().get("worker_exit")


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
