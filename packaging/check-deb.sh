#!/usr/bin/env bash
# Checks a built Signpost .deb without installing it on this machine:
#   1. its control data: conffiles, maintainer scripts, dependencies;
#   2. the files a working install needs are in it;
#   3. unpacked into a throw-away root (dpkg -x), the packaged `signpost check` accepts the
#      installed /etc/signpost/signpost.toml, and the shipped example from the service's
#      working directory, with that root as / (so every absolute path in the config must
#      resolve inside the package; state such as the CA does not exist yet, as on a fresh
#      install before postinst);
#   4. the systemd unit passes `systemd-analyze verify` and the logrotate file parses.
#
# Usage: packaging/check-deb.sh [PACKAGE.deb]   (default: the newest target/debian/signpost_*.deb)
# Build the package first with packaging/build-deb.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
    echo "check-deb: FAIL: $*" >&2
    exit 1
}
step() { echo "check-deb: $*"; }

deb="${1:-}"
if [ -z "$deb" ]; then
    # shellcheck disable=SC2012 # cargo-deb names its files; ls -t picks the newest
    deb=$(ls -t "${CARGO_TARGET_DIR:-target}"/debian/signpost_*.deb 2>/dev/null | head -n 1 || true)
    [ -n "$deb" ] || fail "no target/debian/signpost_*.deb: build it with packaging/build-deb.sh"
fi
[ -f "$deb" ] || fail "$deb does not exist"
step "package $deb"

work=$(mktemp -d "${TMPDIR:-/tmp}/signpost-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
root="$work/root"
control="$work/control"
mkdir -p "$root" "$control"
dpkg-deb -x "$deb" "$root"
dpkg-deb -e "$deb" "$control"

# 1. Control data.
[ "$(dpkg-deb -f "$deb" Package)" = signpost ] || fail "Package is not signpost"
depends=$(dpkg-deb -f "$deb" Depends)
for dep in adduser libc6; do
    grep -q "$dep" <<<"$depends" || fail "Depends lacks $dep: $depends"
done
grep -qx /etc/signpost/signpost.toml "$control/conffiles" || fail "signpost.toml is not a conffile"
for script in postinst prerm postrm; do
    [ -x "$control/$script" ] || fail "no executable $script"
    sh -n "$control/$script" || fail "$script is not valid sh"
    ! grep -q '#DEBHELPER#' "$control/$script" || fail "$script still holds #DEBHELPER#"
done
grep -q 'adduser --quiet --system --group --no-create-home --home /var/lib/signpost signpost' "$control/postinst" ||
    fail "postinst does not create the signpost user"
grep -q 'signpost ca init --dir /var/lib/signpost' "$control/postinst" || fail "postinst does not make the CA"
grep -q 'deb-systemd-helper enable' "$control/postinst" || fail "postinst does not enable the unit"
step "control data OK (Depends: $depends; $(wc -l <"$control/conffiles") conffiles)"

# 2. Files.
unit=""
for dir in usr/lib/systemd/system lib/systemd/system; do
    if [ -f "$root/$dir/signpost.service" ]; then unit="$root/$dir/signpost.service"; fi
done
[ -n "$unit" ] || fail "no signpost.service in the package"
for f in usr/bin/signpost etc/signpost/signpost.toml etc/signpost/assets/README \
    etc/signpost/guidance/social.md etc/signpost/guidance/read-later.md \
    etc/logrotate.d/signpost etc/default/signpost var/lib/signpost/lists/malware/domains \
    usr/share/signpost/pages/coach.html usr/share/doc/signpost/admin-guide.md \
    usr/share/doc/signpost/examples/example.toml; do
    [ -e "$root/$f" ] || fail "/$f is not in the package"
done
[ -x "$root/usr/bin/signpost" ] || fail "/usr/bin/signpost is not executable"
for state in ca.pem ca-key.pem coach-secret journal.db; do
    [ ! -e "$root/var/lib/signpost/$state" ] || fail "/var/lib/signpost/$state must not be packaged"
done
step "files OK (unit ${unit#"$root"})"

# 3. `signpost check` with the unpacked package as /. The binary's shared libraries are
# copied in from this machine (the package depends on them; the throw-away root has no
# libc of its own).
ldd "$root/usr/bin/signpost" | grep -o '/[^ ]*' | while read -r lib; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
done
# As an unprivileged user through a user namespace; as root, a plain chroot.
if unshare --map-root-user --root="$root" /usr/bin/signpost --version >/dev/null 2>&1; then
    enter=(unshare --map-root-user --root="$root")
elif [ "$(id -u)" = 0 ]; then
    enter=(unshare --root="$root")
else
    fail "cannot enter the throw-away root: \`unshare --map-root-user\` is not allowed here (run as root)"
fi
in_root() {
    local wd="$1"
    shift
    "${enter[@]}" --wd="$wd" "$@"
}
step "signpost check -c /etc/signpost/signpost.toml (in the unpacked root)"
in_root / /usr/bin/signpost check -c /etc/signpost/signpost.toml ||
    fail "the installed config does not pass signpost check"
step "signpost check -c /usr/share/doc/signpost/examples/example.toml (from /var/lib/signpost)"
in_root /var/lib/signpost /usr/bin/signpost check -c /usr/share/doc/signpost/examples/example.toml ||
    fail "the example config does not pass signpost check from the service's working directory"
version=$(in_root / /usr/bin/signpost --version)
step "$version"

# 4. The unit and the logrotate file.
if command -v systemd-analyze >/dev/null; then
    step "systemd-analyze verify ${unit#"$root"}"
    # Inside the unpacked root, so that the unit's /usr/bin/signpost is the packaged one;
    # the targets it names and /bin/kill (ExecReload) come from this machine.
    for dir in /usr/lib/systemd/system /lib/systemd/system; do
        if [ -d "$dir" ]; then
            mkdir -p "$root$dir"
            cp -rn "$dir/." "$root$dir/"
        fi
    done
    mkdir -p "$root/bin"
    cp -L /bin/kill "$root/bin/kill"
    systemd-analyze verify --man=no --root="$root" "${unit#"$root"}" ||
        fail "systemd-analyze verify rejects the unit"
else
    step "systemd-analyze is not installed: unit not verified"
fi
if [ -x /usr/sbin/logrotate ]; then
    step "logrotate --debug /etc/logrotate.d/signpost"
    /usr/sbin/logrotate --debug --state "$work/logrotate.state" "$root/etc/logrotate.d/signpost" \
        >"$work/logrotate.out" 2>&1 || {
        cat "$work/logrotate.out" >&2
        fail "logrotate rejects /etc/logrotate.d/signpost"
    }
    if grep -qi 'error' "$work/logrotate.out"; then
        cat "$work/logrotate.out" >&2
        fail "logrotate reports errors for /etc/logrotate.d/signpost"
    fi
else
    step "logrotate is not installed: its file not parsed"
fi

step "OK: $deb"
