# The lockout guard's revert: puts back what scripts/guard/arm.sh saved in $G and reloads sshd
# (its socket too, where sshd is socket-activated as on Ubuntu 24.04) and ufw.
# Set before: G DEPLOY_USER AUDIT_LOG.
rm -rf /etc/ssh/sshd_config.d && cp -a "$G/sshd_config.d" /etc/ssh/sshd_config.d
rm -rf /etc/sudoers.d && cp -a "$G/sudoers.d" /etc/sudoers.d
H=$(getent passwd "$DEPLOY_USER" | cut -d: -f6)
if [ -n "$H" ]; then
  if [ -e "$G/authorized_keys" ]; then cp -a "$G/authorized_keys" "$H/.ssh/authorized_keys"; else rm -f "$H/.ssh/authorized_keys"; fi
fi
systemctl reload ssh 2>/dev/null || systemctl restart ssh 2>/dev/null || true
if systemctl is-enabled ssh.socket >/dev/null 2>&1; then systemctl daemon-reload; systemctl stop ssh.service; systemctl restart ssh.socket; fi
if [ -d "$G/ufw" ]; then rm -rf /etc/ufw && cp -a "$G/ufw" /etc/ufw; fi
if [ "$(cat "$G/ufw-state")" = active ]; then ufw reload; elif command -v ufw >/dev/null; then ufw --force disable; fi
echo "$(date -Is) lockout guard: restored sshd_config.d, sudoers.d, authorized_keys and ufw" >>"$AUDIT_LOG"
