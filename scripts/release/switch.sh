# Defines `switch_to DIR`: takes release DIR live, or restarts it when it is live already,
# with one Django start, no request waiting for it and none refused. Two gunicorn units share
# the listening socket (socket activation keeps it open throughout) and take turns: the idle
# one starts on DIR (Django loaded before it answers), then the live one stops, gracefully.
# The service runs `current`, the bridge runs `next`; whichever stopped is the idle one of the
# next switch. While the bridge serves, systemd does not start the service for a connection
# (the socket counts the bridge among the units it triggers), and if the bridge dies the next
# connection starts the service on `current`, the same release. At boot the service starts.
# When the idle unit cannot start on DIR (Django does not load), nothing has moved: the live
# release keeps serving.
# Background processes stop (warm shutdown, up to their stop_timeout) before `current` moves,
# so none runs a mix of two releases, and start on DIR once it serves. A subshell: its
# `set -f` (unit names are split, never globbed) ends with it.
# Set before: ROOT SERVICE SOCKET BRIDGE PROCESSES (unit names, space-separated, maybe none)
# WORKERS (gunicorn's --workers).

# Starts unit $1 (restarts it: a unit left running by a run cut off mid-switch may serve
# another release). A status of 200-243 is systemd failing to set the process up (seen once in
# the lab as 219/CGROUP), not Django: tried once more.
start_unit() {
  systemctl restart "$1" && return 0
  code=$(systemctl show -p ExecMainStatus --value "$1")
  [ "${code:-0}" -ge 200 ] && [ "$code" -le 243 ] || return 1
  systemctl reset-failed "$1" 2>/dev/null || true
  sleep 1
  systemctl restart "$1"
}

# Says why unit $1 did not start on $2, with its journal's end; then stops it (Restart=
# would try again on whatever its link names by then) and clears its failed state (the
# failure is this run's to report, not the server's monitoring's).
not_started() {
  journalctl -u "$1" -n 20 --no-pager >&2
  echo "gunicorn does not start on $(basename "$2") (status $(systemctl show -p ExecMainStatus --value "$1")): the running release keeps serving" >&2
  systemctl stop "$1" 2>/dev/null || true
  systemctl reset-failed "$1" 2>/dev/null || true
}

# The children of process $1 that still run (a zombie, exited and not yet reaped by
# gunicorn's master, holds no socket and answers nothing).
running_children() {
  for child in $(cat "/proc/$1/task/$1/children" 2>/dev/null); do
    state=$(cut -d')' -f2 "/proc/$child/stat" 2>/dev/null | cut -d' ' -f2)
    [ -z "$state" ] || [ "$state" = Z ] || echo "$child"
  done
}

# Stops unit $1, the one that served, gracefully, and returns once its workers are gone:
# they exit within milliseconds of TERM (their requests in flight answered; tandem's
# gunicorn settings skip Python's teardown), while gunicorn's master takes another ~0.3 s to
# reap them and exit, which nothing here waits for (the unit is `deactivating` meanwhile).
# The health check that follows must not be answered by the old release's workers. Past
# TimeoutStopSec systemd kills what is left.
# (systemctl warns that the socket could start the stopped unit again: only the service, and
# only while neither runs.)
stop_serving() {
  pid=$(systemctl show -p MainPID --value "$1" 2>/dev/null || true)
  systemctl stop --no-block "$1" 2>/dev/null || return 0
  [ "${pid:-0}" -gt 0 ] || return 0
  waited=0
  while [ "$waited" -lt 1500 ]; do
    [ "$(systemctl show -p ActiveState --value "$1" 2>/dev/null)" != active ] &&
      [ -z "$(running_children "$pid")" ] && return 0
    sleep 0.01
    waited=$((waited + 1))
  done
}

# gunicorn tells systemd it is ready (READY) before it forks its workers, one at a time with
# a random pause of up to 0.1 s between them: returns once unit $1's main process has $WORKERS
# workers, so that the live unit stops only when the new one can take its load (after 5 s the
# switch goes on with what there is).
await_workers() {
  pid=$(systemctl show -p MainPID --value "$1" 2>/dev/null || true)
  [ "${pid:-0}" -gt 0 ] || return 0
  waited=0
  while [ "$waited" -lt 500 ]; do
    [ "$(running_children "$pid" | wc -l)" -ge "$WORKERS" ] && return 0
    sleep 0.01
    waited=$((waited + 1))
  done
}

# Points link $1 at $2, atomically.
point() {
  ln -sfn "$2" "$1.new" && mv -Tf "$1.new" "$1"
}

# Moves `current` to $1; the release it leaves (`$was`) becomes `previous`, whose static files
# nginx serves after the live one's (a page loaded before the switch may still ask for them).
move_current() {
  if [ -n "$was" ] && [ "$was" != "$1" ]; then point "$ROOT/previous" "$was" || return 1; fi
  point "$ROOT/current" "$1"
}

switch_to() (
  set -f
  systemctl reset-failed "$SERVICE" "$SOCKET" "$BRIDGE" 2>/dev/null || true
  systemctl start "$SOCKET" || exit 1
  was=$(readlink "$ROOT/current" 2>/dev/null || true)
  was_previous=$(readlink "$ROOT/previous" 2>/dev/null || true)
  # The live unit; both running is a switch cut off before its end: the service stays live
  # and the bridge, restarted, takes over.
  live=
  if systemctl is-active --quiet "$SERVICE"; then live=$SERVICE
  elif systemctl is-active --quiet "$BRIDGE"; then live=$BRIDGE; fi
  # shellcheck disable=SC2086 # unit names, one word each
  stop_processes() { if [ -n "$PROCESSES" ]; then systemctl stop $PROCESSES || true; fi; }
  if [ "$live" = "$SERVICE" ]; then
    point "$ROOT/next" "$1" || exit 1
    start_unit "$BRIDGE" || { not_started "$BRIDGE" "$1"; exit 1; }
    stop_processes
    move_current "$1" || exit 1
  else
    # The service runs `current`: it moves first, and back when the service does not start.
    stop_processes
    move_current "$1" || exit 1
    if ! start_unit "$SERVICE"; then
      not_started "$SERVICE" "$1"
      if [ -n "$was" ]; then point "$ROOT/current" "$was"; else rm -f "$ROOT/current"; fi
      if [ -n "$was_previous" ]; then point "$ROOT/previous" "$was_previous"; else rm -f "$ROOT/previous"; fi
      # shellcheck disable=SC2086
      if [ -n "$was" ] && [ -n "$PROCESSES" ]; then systemctl start $PROCESSES || true; fi
      exit 1
    fi
  fi
  if [ -n "$live" ]; then
    if [ "$live" = "$SERVICE" ]; then await_workers "$BRIDGE"; else await_workers "$SERVICE"; fi
    stop_serving "$live"
  fi
  # The idle unit's link too, so that `next` and `current` agree once the switch is done.
  point "$ROOT/next" "$1" || exit 1
  if [ -n "$PROCESSES" ]; then
    # shellcheck disable=SC2086
    systemctl reset-failed $PROCESSES 2>/dev/null || true
    # shellcheck disable=SC2086,SC2046
    systemctl start $PROCESSES || { journalctl -n 20 --no-pager $(printf ' -u %s' $PROCESSES) >&2; exit 1; }
  fi
)
