# Defines `switch_to DIR`: takes release DIR live, or restarts it when it is live already,
# without a request waiting for Django to start and none refused. Socket activation keeps the
# listening socket open throughout; the bridge (a second gunicorn on the same socket, on DIR,
# loaded before it answers) takes requests while the service restarts on DIR, and stops,
# gracefully, once the service is back. When the bridge cannot start on DIR (Django does not
# load), nothing has moved: the running release keeps serving.
# Background processes stop (warm shutdown, up to their stop_timeout) before `current` moves,
# so none runs a mix of two releases, and start on the new one after gunicorn. A subshell: its
# `set -f` (unit names are split, never globbed) ends with it.
# Set before: ROOT SERVICE SOCKET BRIDGE PROCESSES (unit names, space-separated, maybe none).

# Starts the bridge on $ROOT/next (restarts it: one left running by a run cut off mid-switch
# serves another release). A status of 200-243 is systemd failing to set the process up (seen
# once in the lab as 219/CGROUP), not Django: tried once more.
start_bridge() {
  systemctl restart "$BRIDGE" && return 0
  code=$(systemctl show -p ExecMainStatus --value "$BRIDGE")
  [ "${code:-0}" -ge 200 ] && [ "$code" -le 243 ] || return 1
  systemctl reset-failed "$BRIDGE" 2>/dev/null || true
  sleep 1
  systemctl restart "$BRIDGE"
}

switch_to() (
  set -f
  moving=1
  [ "$(readlink "$ROOT/current" 2>/dev/null)" = "$1" ] && moving=
  systemctl reset-failed "$SERVICE" "$SOCKET" "$BRIDGE" 2>/dev/null || true
  systemctl start "$SOCKET" || exit 1
  bridged=
  if systemctl is-active --quiet "$SERVICE"; then
    ln -sfn "$1" "$ROOT/next.new" && mv -Tf "$ROOT/next.new" "$ROOT/next" || exit 1
    if ! start_bridge; then
      journalctl -u "$BRIDGE" -n 20 --no-pager >&2
      echo "gunicorn does not start on $(basename "$1") (status $(systemctl show -p ExecMainStatus --value "$BRIDGE")): the running release keeps serving" >&2
      exit 1
    fi
    bridged=1
  fi
  # shellcheck disable=SC2086 # unit names, one word each
  if [ -n "$moving" ] && [ -n "$PROCESSES" ]; then systemctl stop $PROCESSES || true; fi
  ln -sfn "$1" "$ROOT/current.new" && mv -Tf "$ROOT/current.new" "$ROOT/current" || exit 1
  systemctl restart "$SERVICE" || true
  i=0; while [ $i -lt 50 ] && ! systemctl is-active --quiet "$SERVICE"; do sleep 0.1; i=$((i+1)); done
  up=; systemctl is-active --quiet "$SERVICE" && up=1
  # (systemctl warns that the socket could start the bridge again: it is the service's.)
  if [ -n "$bridged" ]; then systemctl stop "$BRIDGE" 2>/dev/null || true; fi
  [ -n "$up" ] || { journalctl -u "$SERVICE" -n 20 --no-pager >&2; exit 1; }
  if [ -n "$moving" ] && [ -n "$PROCESSES" ]; then
    # shellcheck disable=SC2086
    systemctl reset-failed $PROCESSES 2>/dev/null || true
    # shellcheck disable=SC2086,SC2046
    systemctl start $PROCESSES || { journalctl -n 20 --no-pager $(printf ' -u %s' $PROCESSES) >&2; exit 1; }
  fi
)
