#!/usr/bin/env bash
# Boot a Debian bookworm tree under a real systemd (systemd-nspawn), install hearthgate
# with systemd/install.sh inside it, and check the service the way systemd runs it:
# Type=notify readiness, the STATUS= line, the watchdog killing and restarting a hung
# process, journald fields, hearthgate devices/alerts, an update by the installer while the
# service runs (restarted on the new version), systemd-analyze security, clean stop.
#
#   sudo tests/ops/nspawn_probe.sh ROOTDIR
#
# ROOTDIR: a bookworm tree, made once (about 3 minutes) with
#   sudo debootstrap --variant=minbase --include=python3,python3-venv,passwd,systemd,udev \
#        bookworm ROOTDIR http://deb.debian.org/debian
# The tree is modified (hearthgate installed, a probe unit added). Needs root, systemd-nspawn
# (apt-get install systemd-container) and network access for pip inside the tree. Not run
# in CI; tests/ops/test_nspawn.py runs it when HEARTHGATE_NSPAWN_ROOT is set.
set -euo pipefail

ROOTDIR=${1:?usage: nspawn_probe.sh ROOTDIR}
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
[[ -x $ROOTDIR/lib/systemd/systemd ]] || { echo "no systemd in $ROOTDIR" >&2; exit 2; }
command -v systemd-nspawn >/dev/null || { echo "systemd-nspawn missing" >&2; exit 2; }

# The tree sees the host's pip configuration and CA bundle (mirrors, proxies).
for f in /etc/pip.conf /etc/resolv.conf /etc/ssl/certs/ca-certificates.crt; do
    if [[ -f $f ]]; then
        mkdir -p "$ROOTDIR$(dirname "$f")"
        cp "$f" "$ROOTDIR$f"
    fi
done
binds=()
for d in /opt/wheels /opt/pypi /opt/pypi-more; do
    if [[ -d $d ]]; then binds+=("--bind-ro=$d"); fi
done

rm -rf "$ROOTDIR/root/hearthgate"
mkdir -p "$ROOTDIR/root/hearthgate"
(cd "$SRC" && tar --exclude=.venv --exclude=.git --exclude='__pycache__' -cf - .) |
    tar -xf - -C "$ROOTDIR/root/hearthgate"

# Install as an installer would, inside the tree (systemd is not running there yet: the
# installer says so and leaves daemon-reload to the boot).
systemd-nspawn -q -D "$ROOTDIR" --register=no --keep-unit "${binds[@]}" \
    --setenv=PIP_FIND_LINKS="${PIP_FIND_LINKS-}" \
    /bin/bash -c 'cd /root/hearthgate && ./systemd/install.sh && ./systemd/install.sh'

mkdir -p "$ROOTDIR/etc/systemd/system/hearthgate.service.d"
printf '[Service]\nWatchdogSec=6s\n' >"$ROOTDIR/etc/systemd/system/hearthgate.service.d/probe.conf"
cat >"$ROOTDIR/etc/systemd/system/hearthgate-probe.service" <<'EOF'
[Unit]
Description=probe hearthgate under a real systemd
After=hearthgate.service
[Service]
Type=oneshot
StandardOutput=append:/root/probe.txt
StandardError=inherit
ExecStart=/bin/sh -c '\
  sleep 6; \
  echo "== ready"; systemctl show hearthgate -p ActiveState -p SubState -p StatusText -p NRestarts; \
  echo "== devices"; su -s /bin/sh hearthgate -c "hearthgate devices -c /etc/hearthgate/config.yaml"; echo "exit=$?"; \
  echo "== alerts"; su -s /bin/sh hearthgate -c "hearthgate alerts -c /etc/hearthgate/config.yaml"; echo "exit=$?"; \
  echo "== fields"; journalctl -u hearthgate -b -o verbose --no-pager | grep -E "^ +(SYSLOG_IDENTIFIER|LOGGER|PRIORITY|CODE_FUNC)=" | sort -u; \
  echo "== update"; echo "# probe update" >> /root/hearthgate/gateway/__init__.py; \
  cd /root/hearthgate && ./systemd/install.sh 2>&1; sleep 3; \
  systemctl show hearthgate -p ActiveState -p SubState -p NRestarts; \
  P=$(systemctl show hearthgate -p MainPID --value); echo "== hang $P"; kill -STOP $P; sleep 16; \
  echo "== after hang"; systemctl show hearthgate -p ActiveState -p SubState -p NRestarts; \
  journalctl -u hearthgate -b --no-pager | grep -E "Watchdog timeout|Scheduled restart"; \
  echo "== security"; systemd-analyze security hearthgate --no-pager | tail -1; \
  echo "== stop"; systemctl stop hearthgate; systemctl show hearthgate -p ActiveState -p Result; \
  journalctl -u hearthgate --no-pager | grep -c "Traceback" || true'
ExecStartPost=/bin/sh -c 'systemctl poweroff --no-block >/dev/null 2>&1 || poweroff' 
[Install]
WantedBy=multi-user.target
EOF
ln -sf /etc/systemd/system/hearthgate-probe.service \
    "$ROOTDIR/etc/systemd/system/multi-user.target.wants/hearthgate-probe.service"
rm -f "$ROOTDIR/root/probe.txt"

timeout 180 systemd-nspawn -q -D "$ROOTDIR" -b --register=no --keep-unit "${binds[@]}" \
    >"$ROOTDIR/root/boot.log" 2>&1 || true
rm -f "$ROOTDIR/etc/systemd/system/multi-user.target.wants/hearthgate-probe.service" \
    "$ROOTDIR/etc/systemd/system/hearthgate.service.d/probe.conf"

cat "$ROOTDIR/root/probe.txt"
report=$(cat "$ROOTDIR/root/probe.txt")
fail=0
expect() {
    if ! grep -qE "$1" <<<"$report"; then
        echo "PROBE FAILED: expected /$1/" >&2
        fail=1
    fi
}
expect '^StatusText=running: '
expect '^SubState=running'
expect 'SYSLOG_IDENTIFIER=hearthgate'
expect 'Watchdog timeout \(limit 6s\)'
expect '^NRestarts=1'
expect 'Overall exposure level for hearthgate.service: [01]\.[0-9] OK'
expect '^Result=success'
expect '^restart hearthgate.service \(new version\)'
exit $fail
