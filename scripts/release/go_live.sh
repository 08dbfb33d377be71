# The activation's end: switch to release $R, put the previous one back when gunicorn does not
# start on it or it fails its health check (the failed one is removed), record its code hash
# (only on success, so the next plan retries) and who shipped it, keep the newest $KEEP
# releases.
# Set before: ROOT R HASH KEEP, switch_to (and point) and health.
PREV=$(readlink "$ROOT/current" 2>/dev/null || true)
PREVIOUS=$(readlink "$ROOT/previous" 2>/dev/null || true)
# (A release gunicorn did not start on moved nothing: the live unit still serves $PREV.)
put_back() {
  if [ -z "$PREV" ]; then rm -f "$ROOT/current"
  elif [ "$(readlink "$ROOT/current" 2>/dev/null)" != "$PREV" ]; then switch_to "$PREV" || true; fi
  # The switch back made the removed release `previous`: the one before is again.
  if [ -n "$PREVIOUS" ]; then point "$ROOT/previous" "$PREVIOUS" || true; else rm -f "$ROOT/previous"; fi
  rm -rf "$R"
  echo "$1; running release: ${PREV:-none}" >&2
  exit 1
}
switch_to "$R" || put_back "gunicorn did not start on the new release"
health || put_back "the new release failed its health check"
printf '%s\n' "$HASH" >"$R/.tandem-release"
# Who shipped it, for `tandem releases` (set by the script's work-lock preamble).
printf '%s\n' "${TANDEM_BY:-}" >"$R/.tandem-deployed-by"
cd "$ROOT/releases" && ls -1 | sort | head -n "-$KEEP" | while read -r old; do
  [ "$old" = "$(basename "$(readlink "$ROOT/current")")" ] || rm -rf "$old"
done
echo "released $(basename "$R")"
