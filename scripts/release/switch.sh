# Defines `switch_to DIR`: points `current` at DIR atomically, then restarts gunicorn and waits
# for it. Socket activation keeps the socket open across the restart: requests wait in its
# queue, none is refused. Background processes stop (warm shutdown, up to their stop_timeout)
# before `current` moves, so none runs a mix of two releases, and start on the new one after
# gunicorn. A subshell: its `set -f` (unit names are split, never globbed) ends with it.
# Set before: ROOT SERVICE SOCKET PROCESSES (unit names, space-separated, maybe none).
switch_to() (
  set -f
  # shellcheck disable=SC2086 # unit names, one word each
  if [ -n "$PROCESSES" ]; then systemctl stop $PROCESSES || true; fi
  ln -sfn "$1" "$ROOT/current.new" && mv -Tf "$ROOT/current.new" "$ROOT/current" || exit 1
  systemctl reset-failed "$SERVICE" "$SOCKET" 2>/dev/null || true
  systemctl start "$SOCKET" || exit 1
  systemctl restart "$SERVICE" || true
  i=0; while [ $i -lt 50 ] && ! systemctl is-active --quiet "$SERVICE"; do sleep 0.1; i=$((i+1)); done
  systemctl is-active --quiet "$SERVICE" || { journalctl -u "$SERVICE" -n 20 --no-pager >&2; exit 1; }
  if [ -n "$PROCESSES" ]; then
    # shellcheck disable=SC2086
    systemctl reset-failed $PROCESSES 2>/dev/null || true
    # shellcheck disable=SC2086,SC2046
    systemctl start $PROCESSES || { journalctl -n 20 --no-pager $(printf ' -u %s' $PROCESSES) >&2; exit 1; }
  fi
)
