# The build half of a release: the unpacked code in $R gets its virtualenv. Nothing here
# needs the database and nothing goes live.
# Set before: ROOT R APPUSER V REQUIREMENTS BUILT BUILD_DEPS BUILD_DEPS_COUNT, and the
# functions apt_install and build_deps_installed.
chown -R "$APPUSER:$APPUSER" "$R" "$ROOT/venvs"
# One virtualenv per requirements file: reused while the requirements do not change. Built in
# place (a venv cannot be moved: its scripts name their interpreter by path) and marked
# complete only when pip succeeded. `--no-compile`: Python writes the bytecode of what it
# imports (the venv is the app user's), most of it when the activation starts Django;
# compiling every file up front cost about a second of a fresh apply.
# App servers get a compiler only when a requirement needs one: when pip fails and the build
# dependencies are missing, they are installed and pip tries again.
if [ ! -e "$V/.tandem-complete" ]; then
  rm -rf "$V"
  runuser -u "$APPUSER" -- python3 -m venv "$V"
  PIPLOG=$(mktemp)
  ok=
  for i in 1 2 3; do
    if runuser -u "$APPUSER" -- "$V/bin/pip" install -q --disable-pip-version-check --no-compile -r "$R/$REQUIREMENTS" >"$PIPLOG" 2>&1; then ok=1; break; fi
    if [ "$(build_deps_installed | grep -c ' ii')" -ne "$BUILD_DEPS_COUNT" ]; then
      echo "pip needs a compiler for a requirement (last lines below); installing $BUILD_DEPS" >&2
      tail -n 5 "$PIPLOG" >&2
      # shellcheck disable=SC2086 # package names, one word each
      apt_install $BUILD_DEPS || { echo "apt could not install $BUILD_DEPS" >&2; exit 1; }
      continue
    fi
    sleep $((i * 5))
  done
  [ -n "$ok" ] || { cat "$PIPLOG" >&2; rm -f "$PIPLOG"; echo 'pip install failed three times' >&2; exit 1; }
  rm -f "$PIPLOG"
  touch "$V/.tandem-complete"
fi
ln -sfn "$V" "$R/venv"
touch "$R/$BUILT"
