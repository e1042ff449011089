#!/usr/bin/env bash
# hearthgate installer for Raspberry Pi OS / Debian 12 (bookworm).
#
#   sudo ./systemd/install.sh [OPTIONS] [install]        install or update (idempotent)
#   sudo ./systemd/install.sh [OPTIONS] uninstall        remove; keeps /etc/hearthgate, /var/lib/hearthgate
#   sudo ./systemd/install.sh [OPTIONS] udev-add NAME DEVICE   name a USB serial adapter /dev/hearthgate/NAME
#
# Options:
#   --dry-run          print what would change, one action per line, and change nothing
#   --prefix DIR       where the virtualenv goes (default /opt/hearthgate)
#   --root DIR         act on a file tree under DIR instead of / (for tests): accounts go to
#                      DIR/etc/passwd and group via useradd --prefix, the unit is enabled
#                      with systemctl --root; actions on the running system (apt-get,
#                      udevadm, daemon-reload, restart) are listed as skipped. The venv's
#                      scripts name DIR in their #! lines, so the tree is not a system image.
#   --python PY        the Python (>= 3.11) for the virtualenv (default python3)
#   --pip-opts OPTS    extra options for pip install (e.g. "--no-index --find-links DIR", or
#                      a PyPI mirror: "--index-url https://pypi.tuna.tsinghua.edu.cn/simple")
#   --bundle FILE      install the program from an offline bundle (`make bundle`: a .tar.gz, or
#                      the folder it unpacks to) with no package index: its wheels for this
#                      machine's architecture, checked against their sha256, with the extras
#                      (osdp-secure) the bundle has for it; those it lacks for it are named.
#                      Run from an unpacked bundle (its systemd/install.sh), the bundle is
#                      the default.
#   --arch ARCH        with --bundle: the wheels to take (default: those of --python's own
#                      architecture: aarch64, armv7l or x86_64)
#   --example FILE     config example copied to config.yaml when none exists
#                      (default: config/minimal.yaml)
#   --properties FILE  udev-add: read the adapter's properties from FILE (the output of
#                      `udevadm info --query=property --name=DEVICE`) instead of udevadm
#   --by serial|path   udev-add: match on the serial number or on the USB port
#                      (default: serial when the adapter has one)
#
# Actions are printed on stdout, one per line; notes go to stderr. A second run prints nothing.
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PREFIX=/opt/hearthgate
ROOT=""
DRY_RUN=0
PYTHON=python3
PIP_OPTS=""
BUNDLE=""
BUNDLE_DIR="" # the bundle, unpacked
BUNDLE_TMP="" # where this run unpacked it (removed at exit)
ARCH=""
EXAMPLE=""
PROPERTIES=""
MATCH_BY=""
SERVICE_USER=hearthgate
UNIT_NAME=hearthgate.service
CONF_DIR=/etc/hearthgate
STATE_DIR=/var/lib/hearthgate
RULES=/etc/udev/rules.d/99-hearthgate-serial.rules
UNIT_PATH=/etc/systemd/system/$UNIT_NAME
COMMAND_LINK=/usr/local/bin/hearthgate
ACTIONS=0 # actions taken (or, with --dry-run, listed)
FIRST_INSTALL=0 # config.yaml was created by this run

note() { printf '%s\n' "$*" >&2; }
die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//' >&2; exit "${1:-0}"; }

# A path on the target system.
R() { printf '%s%s' "$ROOT" "$1"; }

# The only way anything is changed: print the action, then (unless --dry-run) do it.
act() {
    local desc=$1
    shift
    printf '%s\n' "$desc"
    ACTIONS=$((ACTIONS + 1))
    if ((DRY_RUN)); then
        return 0
    fi
    "$@"
}

# An action on the running system (not on files): not possible with --root, nor in a
# chroot or container where systemd/udev do not run (the files are in place for next boot).
act_host() {
    local desc=$1
    shift
    if [[ -n $ROOT ]]; then
        printf '%s (skipped: --root)\n' "$desc"
        return 0
    fi
    act "$desc" "$@"
}

act_systemd() {
    if [[ -z $ROOT && ! -d /run/systemd/system ]]; then
        printf '%s (skipped: systemd is not running)\n' "$1"
        return 0
    fi
    act_host "$@"
}

act_udev() {
    if [[ -z $ROOT && ! -S /run/udev/control ]]; then
        printf '%s (skipped: udev is not running)\n' "$1"
        return 0
    fi
    act_host "$@"
}

# --- accounts ------------------------------------------------------------------------------

shadow_opts() {
    if [[ -n $ROOT ]]; then
        printf '%s\n' --prefix "$ROOT"
    fi
}

group_exists() {
    if [[ -n $ROOT ]]; then
        [[ -f $ROOT/etc/group ]] && grep -q "^$1:" "$ROOT/etc/group"
    else
        getent group "$1" >/dev/null
    fi
}

user_exists() {
    if [[ -n $ROOT ]]; then
        [[ -f $ROOT/etc/passwd ]] && grep -q "^$1:" "$ROOT/etc/passwd"
    else
        getent passwd "$1" >/dev/null
    fi
}

# Groups that list the user as a member.
user_in_group() {
    local line
    if [[ -n $ROOT ]]; then
        line=$(grep "^$2:" "$ROOT/etc/group" 2>/dev/null || true)
    else
        line=$(getent group "$2" || true)
    fi
    [[ ,${line##*:}, == *,"$1",* ]]
}

uid_of() {
    if [[ -n $ROOT ]]; then
        awk -F: -v n="$1" '$1 == n { print $3 }' "$ROOT/etc/passwd"
    else
        id -u "$1"
    fi
}

gid_of() {
    if [[ -n $ROOT ]]; then
        awk -F: -v n="$1" '$1 == n { print $3 }' "$ROOT/etc/group"
    else
        getent group "$1" | cut -d: -f3
    fi
}

ensure_accounts() {
    local -a opts
    mapfile -t opts < <(shadow_opts)
    if ! group_exists dialout; then
        act "create group dialout" groupadd "${opts[@]}" --system dialout
    fi
    if ! group_exists "$SERVICE_USER"; then
        act "create group $SERVICE_USER" groupadd "${opts[@]}" --system "$SERVICE_USER"
    fi
    if ! user_exists "$SERVICE_USER"; then
        act "create system user $SERVICE_USER (home $STATE_DIR, no login shell)" \
            useradd "${opts[@]}" --system --gid "$SERVICE_USER" --home-dir "$STATE_DIR" \
            --no-create-home --shell /usr/sbin/nologin --comment "hearthgate gateway" \
            "$SERVICE_USER"
    fi
    local g
    for g in dialout gpio; do
        # gpio exists on Raspberry Pi OS only; elsewhere GPIO is not used.
        if group_exists "$g" && ! user_in_group "$SERVICE_USER" "$g"; then
            act "add user $SERVICE_USER to group $g" usermod "${opts[@]}" -aG "$g" "$SERVICE_USER"
        elif [[ $g == dialout ]] && ((DRY_RUN)) && ! group_exists "$g"; then
            printf 'add user %s to group %s\n' "$SERVICE_USER" "$g"
        fi
    done
}

# --- files ---------------------------------------------------------------------------------

# "MODE UID GID" of a path, or nothing.
stat_of() { stat -c '%a %u %g' "$1" 2>/dev/null || true; }

wanted_ids() {
    local uid gid
    uid=$(uid_of "$1" 2>/dev/null || true)
    gid=$(gid_of "$2" 2>/dev/null || true)
    printf '%s %s' "${uid:-?}" "${gid:-?}"
}

set_owner_mode() { # PATH MODE OWNER GROUP
    chown "$(uid_of "$3"):$(gid_of "$4")" "$1"
    chmod "$2" "$1"
}

ensure_dir() { # PATH MODE OWNER GROUP
    local path=$1 mode=$2 owner=$3 group=$4 target
    target=$(R "$path")
    if [[ ! -d $target ]]; then
        act "create directory $path ($mode $owner:$group)" \
            install -d -m "$mode" "$target"
        if ((!DRY_RUN)); then set_owner_mode "$target" "$mode" "$owner" "$group"; fi
    elif [[ $(stat_of "$target") != "${mode#0} $(wanted_ids "$owner" "$group")" ]]; then
        act "set $path to $mode $owner:$group" set_owner_mode "$target" "$mode" "$owner" "$group"
    fi
}

copy_file() { # SOURCE TARGET MODE OWNER GROUP
    install -m "$3" "$1" "$2"
    set_owner_mode "$2" "$3" "$4" "$5"
}

# Install SOURCE as PATH; replaces a different file (for files the installer owns).
# Like every ensure_* function it returns 0; whether it acted shows in $ACTIONS. (A function
# used as a condition would run with `set -e` off, hiding failures inside it.)
ensure_file() { # SOURCE PATH MODE OWNER GROUP
    local source=$1 path=$2 mode=$3 owner=$4 group=$5 target
    target=$(R "$path")
    if [[ ! -e $target ]]; then
        act "install $path ($mode $owner:$group)" copy_file "$source" "$target" "$mode" "$owner" "$group"
    elif ! cmp -s "$source" "$target"; then
        act "update $path" copy_file "$source" "$target" "$mode" "$owner" "$group"
    elif [[ $(stat_of "$target") != "${mode#0} $(wanted_ids "$owner" "$group")" ]]; then
        act "set $path to $mode $owner:$group" set_owner_mode "$target" "$mode" "$owner" "$group"
    fi
}

# Install SOURCE as PATH only if PATH does not exist (files the installer's user edits).
ensure_file_once() { # SOURCE PATH MODE OWNER GROUP DESCRIPTION
    if [[ ! -e $(R "$2") ]]; then
        act "create $2 $6 ($3 $4:$5)" copy_file "$1" "$(R "$2")" "$3" "$4" "$5"
    fi
}

# --- the package -----------------------------------------------------------------------------

PACKAGE_PARTS=(pyproject.toml README.md gateway drivers rules)

source_hash() {
    (cd "$SRC" && find "${PACKAGE_PARTS[@]}" -type f ! -path '*/__pycache__/*' ! -name '*.pyc' \
        -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
}

source_version() {
    # The version comes from git tags (setuptools-scm); without git, say so.
    git -C "$SRC" describe --tags --always 2>/dev/null || echo "from source"
}

pip_install() { # VENV HASH
    local stage
    # Build from a copy: building in the checkout would leave root-owned build files there.
    stage=$(mktemp -d)
    (cd "$SRC" && cp -r "${PACKAGE_PARTS[@]}" "$stage/")
    find "$stage" -name __pycache__ -prune -exec rm -rf {} +
    # With the extra osdp-secure (cryptography, for OSDP Secure Channel readers) where pip can
    # get it; a 32-bit Pi may not (PyPI has no armv7l wheel of its cffi): then without it,
    # as the rest of the gateway does not need it.
    # shellcheck disable=SC2086 # PIP_OPTS is a list of options on purpose
    if ! "$1/bin/python" -m pip install --quiet --disable-pip-version-check --no-cache-dir \
        --upgrade $PIP_OPTS "${stage}[osdp-secure]"; then
        note "note: pip could not install the extra osdp-secure (see above); installing without it:"
        note "  OSDP readers with scbk (Secure Channel) cannot work; hearthgate check refuses them (docs/devices.md)"
        # shellcheck disable=SC2086
        if ! "$1/bin/python" -m pip install --quiet --disable-pip-version-check \
            --no-cache-dir --upgrade $PIP_OPTS "$stage"; then
            rm -rf "$stage"
            die "pip could not install hearthgate into $1 (see above)"
        fi
    fi
    rm -rf "$stage"
    printf '%s\n' "$2" >"$1/.hearthgate-source"
}

# --- the offline bundle (tools/make_bundle.py) -----------------------------------------------

# The architecture whose wheels fit --python. A 32-bit Raspberry Pi OS on a 64-bit kernel
# says aarch64 in `uname -m` but runs armv7l programs: ask the pointer size, as pip does.
python_arch() {
    "$PYTHON" -c 'import platform, struct
m = platform.machine().lower()
if struct.calcsize("P") == 4 and m in ("aarch64", "arm64", "armv8l", "armv8b"):
    m = "armv7l"
print({"amd64": "x86_64", "arm64": "aarch64"}.get(m, m))'
}

# FIELD of the manifest for ARCH: version, describe, python, arches, hash, missing (one
# "EXTRA: why" line per extra the bundle lacks for ARCH; a bundle older than extras has none).
manifest_field() { # FIELD
    "$PYTHON" - "$BUNDLE_DIR/MANIFEST.json" "$ARCH" "$1" <<'PY'
import hashlib, json, sys
path, arch, field = sys.argv[1:]
m = json.load(open(path, encoding="utf-8"))
b = m["build"]
if field == "version":
    print(m["version"])
elif field == "describe":
    print(f"{'tag ' + b['tag'] if b['tag'] else 'no tag'}, commit {b['commit'] or 'unknown'}")
elif field == "python":
    print(m["python"])
elif field == "arches":
    print(" ".join(m["arches"]))
elif field == "hash":  # what this architecture installs: every wheel's sha256
    part = m["arches"][arch]
    text = "\n".join(f"{p['file']} {p['sha256']}" for p in part["packages"])
    print(hashlib.sha256(text.encode()).hexdigest()[:16])
elif field == "missing":
    for extra, why in m["arches"][arch].get("missing_extras", {}).items():
        print(f"{extra}: {why}")
PY
}

cleanup() {
    if [[ -n $BUNDLE_TMP ]]; then rm -rf "$BUNDLE_TMP"; fi
}

# Unpack the bundle (also for --dry-run: reading it changes nothing on the system) and check
# it has wheels for this machine and its Python.
open_bundle() {
    local top arches python have
    if [[ -d $BUNDLE ]]; then
        BUNDLE_DIR=$(cd "$BUNDLE" && pwd)
    else
        [[ -f $BUNDLE ]] || die "bundle $BUNDLE not found"
        BUNDLE_TMP=$(mktemp -d "${TMPDIR:-/tmp}/hearthgate-bundle.XXXXXX")
        trap cleanup EXIT
        tar -xzf "$BUNDLE" -C "$BUNDLE_TMP" --no-same-owner ||
            die "$BUNDLE is not a readable .tar.gz"
        top=$(find "$BUNDLE_TMP" -mindepth 2 -maxdepth 2 -name MANIFEST.json -printf '%h\n')
        [[ -n $top ]] || die "$BUNDLE has no MANIFEST.json: not a hearthgate bundle"
        BUNDLE_DIR=$top
    fi
    [[ -f $BUNDLE_DIR/MANIFEST.json ]] || die "$BUNDLE has no MANIFEST.json: not a hearthgate bundle"
    [[ -n $ARCH ]] || ARCH=$(python_arch)
    arches=$(manifest_field arches) || die "cannot read $BUNDLE_DIR/MANIFEST.json"
    [[ " $arches " == *" $ARCH "* ]] ||
        die "the bundle has no wheels for $ARCH (it has: $arches); build one with make bundle ARCHES=$ARCH"
    python=$(manifest_field python)
    have=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    [[ $have == "$python" ]] ||
        die "the bundle is for Python $python; $PYTHON is $have (use --python python$python)"
    # The unit, udev rules, example config and docs come from the bundle too, so they match
    # the program installed (this script may be an older checkout's).
    SRC=$BUNDLE_DIR
}

pip_install_bundle() { # VENV HASH
    # --isolated: no pip.conf or PIP_* variable can add an index or a wheel from elsewhere;
    # --require-hashes: every wheel is the one the manifest names.
    # shellcheck disable=SC2086 # PIP_OPTS is a list of options on purpose
    if ! "$1/bin/python" -m pip install --isolated --quiet --disable-pip-version-check \
        --no-cache-dir --no-index --find-links "$BUNDLE_DIR/wheels/any" \
        --find-links "$BUNDLE_DIR/wheels/$ARCH" --require-hashes --force-reinstall \
        $PIP_OPTS -r "$BUNDLE_DIR/requirements-$ARCH.txt"; then
        die "pip could not install hearthgate from the bundle into $1 (see above)"
    fi
    printf '%s\n' "$2" >"$1/.hearthgate-source"
}

ensure_python() {
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null ||
        die "$PYTHON is missing or older than 3.11 (Raspberry Pi OS bookworm has 3.11; try --python)"
    if ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
        act_host "apt-get install python3-venv" \
            env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
    fi
}

ensure_venv() {
    local venv hash
    venv=$(R "$PREFIX/venv")
    if [[ ! -x $venv/bin/python ]]; then
        act "create virtualenv $PREFIX/venv" "$PYTHON" -m venv "$venv"
    fi
    if [[ -n $BUNDLE_DIR ]]; then
        hash="bundle $ARCH $(manifest_field hash)"
        if [[ $(cat "$venv/.hearthgate-source" 2>/dev/null || true) != "$hash" ]]; then
            act "install hearthgate $(manifest_field version) ($(manifest_field describe)) from the $hash into $PREFIX/venv" \
                pip_install_bundle "$venv" "$hash"
            # The extras the bundle has for this architecture come with its requirements
            # file; say which it lacks, once, when that is what gets installed.
            local line
            while IFS= read -r line; do
                [[ -n $line ]] || continue
                note "note: the bundle has no extra ${line%%: *} for $ARCH (${line#*: }): installing without it"
                if [[ ${line%%: *} == osdp-secure ]]; then
                    note "  OSDP readers with scbk (Secure Channel) cannot work; hearthgate check refuses them (docs/devices.md)"
                fi
            done <<<"$(manifest_field missing)"
        fi
        return 0
    fi
    hash=$(source_hash)
    if [[ $(cat "$venv/.hearthgate-source" 2>/dev/null || true) != "$hash" ]]; then
        act "install hearthgate $(source_version) (source $hash) into $PREFIX/venv" \
            pip_install "$venv" "$hash"
    fi
}

# /usr/local/bin/hearthgate -> the venv's command, so operators can type `hearthgate`.
ensure_command_link() {
    local target=$PREFIX/venv/bin/hearthgate link
    link=$(R "$COMMAND_LINK")
    if [[ -L $link && $(readlink "$link") == "$target" ]]; then
        return 0
    fi
    if [[ -e $link && ! -L $link ]]; then
        note "note: $COMMAND_LINK exists and is not ours; leaving it alone"
        return 0
    fi
    ensure_dir "$(dirname "$COMMAND_LINK")" 0755 root root
    act "link $COMMAND_LINK -> $target" ln -sfn "$target" "$link"
}

ensure_docs() {
    local f
    [[ -d $SRC/docs ]] || return 0
    ensure_dir "$PREFIX/docs" 0755 root root
    for f in "$SRC"/docs/*.md "$SRC"/docs/*.yaml; do
        if [[ -f $f ]]; then
            ensure_file "$f" "$PREFIX/docs/${f##*/}" 0644 root root
        fi
    done
}

# --- config ------------------------------------------------------------------------------------

find_example() {
    local f
    if [[ -n $EXAMPLE ]]; then
        [[ -f $EXAMPLE ]] || die "example config $EXAMPLE not found"
        printf '%s' "$EXAMPLE"
        return
    fi
    local f="$SRC/config/minimal.yaml"
    [[ -f $f ]] || die "no example config in $SRC/config (give one with --example FILE)"
    printf '%s' "$f"
}

SECRETS_TEMPLATE='# Secrets for config.yaml, read there with the tag !secret NAME,
# e.g.   password: !secret uplink_password
# Keep this file 0640 root:hearthgate.
uplink_password: "CHANGE-ME"
'

ensure_config() {
    local example tmp
    if [[ ! -e $(R "$CONF_DIR/config.yaml") ]]; then
        FIRST_INSTALL=1
        example=$(find_example)
        ensure_file_once "$example" "$CONF_DIR/config.yaml" 0640 root "$SERVICE_USER" \
            "from ${example#"$SRC"/}"
    fi
    if [[ ! -e $(R "$CONF_DIR/secrets.yaml") ]]; then
        tmp=$(mktemp)
        printf '%s' "$SECRETS_TEMPLATE" >"$tmp"
        ensure_file_once "$tmp" "$CONF_DIR/secrets.yaml" 0640 root "$SERVICE_USER" \
            "placeholder"
        rm -f "$tmp"
    fi
}

# --- udev --------------------------------------------------------------------------------------

reload_udev() {
    act_udev "reload udev rules" udevadm control --reload-rules
    act_udev "re-apply udev rules to serial ports" udevadm trigger --subsystem-match=tty --action=add
}

ensure_udev_rules() {
    local saved=$CONF_DIR/99-hearthgate-serial.rules.saved
    ensure_dir "$(dirname "$RULES")" 0755 root root
    if [[ -f $(R "$saved") ]]; then
        # Reinstalling after an uninstall: bring back this site's adapter names.
        ensure_file_once "$(R "$saved")" "$RULES" 0644 root root "from $saved"
    else
        ensure_file_once "$SRC/systemd/99-hearthgate-serial.rules" "$RULES" 0644 root root \
            "(stable names for USB serial adapters)"
    fi
}

# --- systemd -----------------------------------------------------------------------------------

systemctl_t() {
    if [[ -n $ROOT ]]; then
        systemctl --root="$ROOT" "$@"
    else
        systemctl "$@"
    fi
}

render_unit() { # -> path of a temp file
    local out
    out=$(mktemp)
    sed -e "s#/opt/hearthgate#$PREFIX#g" "$SRC/systemd/$UNIT_NAME" >"$out"
    printf '%s' "$out"
}

service_active() {
    [[ -z $ROOT && -d /run/systemd/system ]] && systemctl is-active --quiet "$UNIT_NAME" 2>/dev/null
}

ensure_unit() {
    local unit new=0
    unit=$(render_unit)
    ensure_dir "$(dirname "$UNIT_PATH")" 0755 root root
    cmp -s "$unit" "$(R "$UNIT_PATH")" || new=1
    ensure_file "$unit" "$UNIT_PATH" 0644 root root
    rm -f "$unit"
    if ((new)); then
        act_systemd "systemctl daemon-reload" systemctl daemon-reload
    fi
    if ! systemctl_t is-enabled --quiet "$UNIT_NAME" 2>/dev/null; then
        act "enable $UNIT_NAME (starts at boot)" systemctl_t enable --quiet "$UNIT_NAME"
    fi
}

# --- commands ----------------------------------------------------------------------------------

require_root() {
    # With --root only useradd needs root, and it says so itself.
    if ((!DRY_RUN)) && [[ -z $ROOT && $EUID -ne 0 ]]; then
        die "run as root: sudo $0 $*  (or see what would change with --dry-run)"
    fi
}

cmd_install() {
    local before code_changed=0
    require_root install
    ensure_python
    ensure_accounts
    ensure_dir "$PREFIX" 0755 root root
    before=$ACTIONS
    ensure_venv
    ((ACTIONS == before)) || code_changed=1
    ensure_command_link
    ensure_docs
    ensure_dir "$CONF_DIR" 0770 root "$SERVICE_USER"
    ensure_config
    ensure_dir "$STATE_DIR" 0750 "$SERVICE_USER" "$SERVICE_USER"
    before=$ACTIONS
    ensure_udev_rules
    ((ACTIONS == before)) || reload_udev
    before=$ACTIONS
    ensure_unit
    ((ACTIONS == before)) || code_changed=1
    if ((code_changed)) && service_active; then
        # The running process keeps the old code in memory; replace it only with one that
        # accepts the config, or the gateway would stop (exit 2 is not restarted).
        if ((DRY_RUN)) || "$(R "$PREFIX")/venv/bin/hearthgate" check -c "$CONF_DIR/config.yaml" >&2; then
            act_host "restart $UNIT_NAME (new version)" systemctl restart "$UNIT_NAME"
        else
            note "warning: the new version rejects $CONF_DIR/config.yaml (see above);"
            note "$UNIT_NAME keeps running the old version until you fix it and restart it."
        fi
    fi
    if ((ACTIONS)) && ((!DRY_RUN)) && ((!FIRST_INSTALL)); then
        note "hearthgate is updated; config, secrets and data are unchanged."
    elif ((ACTIONS)) && ((!DRY_RUN)); then
        note ""
        note "hearthgate is installed. Next:"
        note "  1. edit $CONF_DIR/config.yaml (and secrets.yaml)"
        note "  2. sudo -u $SERVICE_USER hearthgate check -c $CONF_DIR/config.yaml"
        note "  3. systemctl start hearthgate && journalctl -u hearthgate -f"
    elif ((!ACTIONS)); then
        note "hearthgate is installed and up to date; nothing to do."
    fi
}

cmd_uninstall() {
    require_root uninstall
    if service_active; then
        act_host "stop $UNIT_NAME" systemctl stop "$UNIT_NAME"
    fi
    if [[ -e $(R "$UNIT_PATH") ]]; then
        if systemctl_t is-enabled --quiet "$UNIT_NAME" 2>/dev/null; then
            act "disable $UNIT_NAME" systemctl_t disable --quiet "$UNIT_NAME"
        fi
        act "remove $UNIT_PATH" rm -f "$(R "$UNIT_PATH")"
        act_systemd "systemctl daemon-reload" systemctl daemon-reload
    fi
    if [[ -e $(R "$RULES") ]]; then
        if [[ -d $(R "$CONF_DIR") ]]; then
            # The rules hold the names given to this site's adapters: keep a copy.
            act "save $RULES as $CONF_DIR/99-hearthgate-serial.rules.saved" \
                cp -p "$(R "$RULES")" "$(R "$CONF_DIR/99-hearthgate-serial.rules.saved")"
        fi
        act "remove $RULES" rm -f "$(R "$RULES")"
        reload_udev
    fi
    if [[ -L $(R "$COMMAND_LINK") && $(readlink "$(R "$COMMAND_LINK")") == "$PREFIX/venv/bin/hearthgate" ]]; then
        act "remove $COMMAND_LINK" rm -f "$(R "$COMMAND_LINK")"
    fi
    if [[ -e $(R "$PREFIX") ]]; then
        act "remove $PREFIX" rm -rf "$(R "$PREFIX")"
    fi
    note "kept: $CONF_DIR (config, secrets), $STATE_DIR (data) and the user $SERVICE_USER."
    note "to remove them too: sudo rm -rf $CONF_DIR $STATE_DIR && sudo userdel $SERVICE_USER"
}

# Adapter properties as KEY=VALUE lines.
device_properties() { # DEVICE
    if [[ -n $PROPERTIES ]]; then
        cat "$PROPERTIES"
    else
        command -v udevadm >/dev/null || die "udevadm not found"
        udevadm info --query=property --name="$1" || die "no such device: $1"
    fi
}

# The active (uncommented) rule lines naming /dev/hearthgate/NAME.
rules_for() { # NAME
    awk -v s="SYMLINK+=\"hearthgate/$1\"" '!/^[[:space:]]*#/ && index($0, s)' "$(R "$RULES")" \
        2>/dev/null || true
}

rewrite_rules() { # NAME LINE
    local target tmp
    target=$(R "$RULES")
    tmp=$(mktemp)
    awk -v s="SYMLINK+=\"hearthgate/$1\"" '/^[[:space:]]*#/ || !index($0, s)' "$target" >"$tmp"
    printf '%s\n' "$2" >>"$tmp"
    cat "$tmp" >"$target"
    rm -f "$tmp"
}

cmd_udev_add() { # NAME DEVICE
    local name=${1-} device=${2-} props serial serial_short id_path bus key value line existing
    [[ -n $name && -n $device ]] || die "usage: install.sh udev-add NAME DEVICE  (e.g. rs485-1 /dev/ttyUSB0)"
    [[ $name =~ ^[a-z0-9][a-z0-9_-]{0,31}$ ]] ||
        die "name '$name': use lowercase letters, digits, - and _ (e.g. rs485-1)"
    require_root udev-add
    props=$(device_properties "$device")
    serial="" serial_short="" id_path="" bus=""
    while IFS='=' read -r key value; do
        case $key in
        ID_SERIAL) serial=$value ;;
        ID_SERIAL_SHORT) serial_short=$value ;;
        ID_PATH) id_path=$value ;;
        ID_BUS) bus=$value ;;
        esac
    done <<<"$props"
    if [[ $bus != usb ]]; then
        note "note: $device is not a USB adapter (ID_BUS=${bus:-none}); its name is already stable."
    fi
    if [[ -z $MATCH_BY ]]; then
        if [[ -n $serial_short && -n $serial ]]; then MATCH_BY=serial; else MATCH_BY=path; fi
    fi
    case $MATCH_BY in
    serial)
        [[ -n $serial ]] || die "$device has no serial number (ID_SERIAL); use --by path"
        line="SUBSYSTEM==\"tty\", ENV{ID_SERIAL}==\"$serial\", SYMLINK+=\"hearthgate/$name\""
        ;;
    path)
        [[ -n $id_path ]] || die "$device has no ID_PATH; is it a USB serial port?"
        line="SUBSYSTEM==\"tty\", ENV{ID_PATH}==\"$id_path\", SYMLINK+=\"hearthgate/$name\""
        if [[ -z $serial_short ]]; then
            note "note: this adapter has no serial number: the name follows the USB port it is in."
        fi
        ;;
    *) die "--by must be serial or path" ;;
    esac
    ensure_udev_rules
    existing=$(rules_for "$name")
    if [[ $existing == "$line" ]]; then
        note "/dev/hearthgate/$name is already defined this way; nothing to do."
        return 0
    fi
    if [[ -n $existing ]]; then
        act "replace udev rule for /dev/hearthgate/$name in $RULES" rewrite_rules "$name" "$line"
    else
        act "add udev rule for /dev/hearthgate/$name to $RULES" rewrite_rules "$name" "$line"
    fi
    reload_udev
    note "use port: /dev/hearthgate/$name in $CONF_DIR/config.yaml"
}

main() {
    local command="" args=()
    while (($#)); do
        case $1 in
        --dry-run) DRY_RUN=1 ;;
        --prefix) PREFIX=${2:?--prefix needs a directory}; shift ;;
        --prefix=*) PREFIX=${1#*=} ;;
        --root) ROOT=${2:?--root needs a directory}; shift ;;
        --root=*) ROOT=${1#*=} ;;
        --python) PYTHON=${2:?--python needs a program}; shift ;;
        --pip-opts) PIP_OPTS=${2?--pip-opts needs options}; shift ;;
        --bundle) BUNDLE=${2:?--bundle needs a file}; shift ;;
        --bundle=*) BUNDLE=${1#*=} ;;
        --arch) ARCH=${2:?--arch needs an architecture}; shift ;;
        --example) EXAMPLE=${2:?--example needs a file}; shift ;;
        --properties) PROPERTIES=${2:?--properties needs a file}; shift ;;
        --by) MATCH_BY=${2:?--by needs serial or path}; shift ;;
        -h | --help) usage 0 ;;
        -*) note "unknown option $1"; usage 2 ;;
        *) if [[ -z $command ]]; then command=$1; else args+=("$1"); fi ;;
        esac
        shift
    done
    [[ $PREFIX == /* ]] || die "--prefix must be an absolute path"
    if [[ -n $ROOT ]]; then
        [[ -d $ROOT ]] || die "--root $ROOT is not a directory"
        ROOT=$(cd "$ROOT" && pwd)
        [[ $ROOT != / ]] || ROOT=""
    fi
    if [[ -z $BUNDLE && ${command:-install} == install && -f $SRC/MANIFEST.json ]]; then
        BUNDLE=$SRC # run from an unpacked bundle: it has no source to build
    fi
    case ${command:-install} in
    install)
        ((${#args[@]} == 0)) || usage 2
        if [[ -n $BUNDLE ]]; then open_bundle; fi
        cmd_install
        ;;
    uninstall) ((${#args[@]} == 0)) || usage 2; cmd_uninstall ;;
    udev-add) cmd_udev_add "${args[@]}" ;;
    *) note "unknown command $command"; usage 2 ;;
    esac
}

main "$@"
