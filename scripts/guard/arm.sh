# The lockout guard, armed before a change to sshd or ufw: saves what decides whether the
# operator can log in (sshd's drop-ins, sudoers.d, the deploy user's authorized_keys, ufw)
# beside the revert script already in "$G/revert", and schedules that script with a transient
# systemd timer: if tandem cannot confirm SSH access (or dies), the host puts it all back.
# Set before: G (the guard's directory, fresh) DEPLOY_USER GUARD_SECONDS.
if [ -d /etc/ssh/sshd_config.d ]; then cp -a /etc/ssh/sshd_config.d "$G/"; else mkdir "$G/sshd_config.d"; fi
cp -a /etc/sudoers.d "$G/sudoers.d"
H=$(getent passwd "$DEPLOY_USER" | cut -d: -f6 || true)
if [ -n "$H" ] && [ -e "$H/.ssh/authorized_keys" ]; then cp -a "$H/.ssh/authorized_keys" "$G/authorized_keys"; fi
if [ -d /etc/ufw ]; then cp -a /etc/ufw "$G/ufw"; fi
if command -v ufw >/dev/null && ufw status | grep -q '^Status: active'; then echo active; else echo inactive; fi >"$G/ufw-state"
chmod 700 "$G/revert"
systemctl stop tandem-guard.timer 2>/dev/null || true
systemctl reset-failed tandem-guard.timer tandem-guard.service 2>/dev/null || true
systemd-run --quiet --unit=tandem-guard --on-active="$GUARD_SECONDS" --timer-property=AccuracySec=1s /bin/sh "$G/revert"
