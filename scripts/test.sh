#!/usr/bin/env bash
# The one test command (the README's and CI's): installs what the tests need when it is
# missing, then runs every test. Tests whose tool is missing fail and name this script.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the integration tests drive: a real PAC engine for the PAC file, and a
# real browser (Chromium, with NSS's certutil for its certificate store) for the pages.
missing=()
/usr/bin/python3 -c 'import pacparser' 2>/dev/null || missing+=(python3-pacparser)
command -v curl >/dev/null || missing+=(curl)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v certutil >/dev/null || missing+=(libnss3-tools)
# A real directory for the LDAP tests: OpenLDAP's server and its tools (slapadd,
# slappasswd; they live in /usr/sbin, often not on a user's PATH) and clients.
[ -x /usr/sbin/slapd ] && [ -x /usr/sbin/slapadd ] || missing+=(slapd)
command -v ldapsearch >/dev/null || missing+=(ldap-utils)

if ((${#missing[@]})); then
    echo "scripts/test.sh: installing ${missing[*]}" >&2
    sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -q
    # (`env` because sudo drops DEBIAN_FRONTEND from the environment: slapd's debconf
    # questions must not wait for an answer.)
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
    if [[ " ${missing[*]} " == *" slapd "* ]]; then
        # The package may start a system slapd on port 389; the tests start their own.
        $sudo systemctl disable --now slapd >/dev/null 2>&1 ||
            { $sudo service slapd stop >/dev/null 2>&1; $sudo update-rc.d slapd disable >/dev/null 2>&1; } ||
            true
    fi
fi

# The browser driver's one dependency (playwright-core, pinned in tests/browser/package-lock.json;
# it drives the Debian Chromium above and downloads no browser of its own).
if [ ! -d tests/browser/node_modules/playwright-core ]; then
    echo "scripts/test.sh: installing tests/browser's node modules" >&2
    npm ci --prefix tests/browser --no-audit --no-fund
fi

# A clean build of the tests takes about 3 GB under target/; with less, the linker fails
# part-way with "No space left on device" or a bus error. Say so before starting.
if [ ! -d "${CARGO_TARGET_DIR:-target}/debug/deps" ]; then
    free_mb=$(df -Pm . | awk 'NR == 2 { print $4 }')
    if [ "${free_mb:-0}" -lt 3072 ]; then
        echo "scripts/test.sh: warning: ${free_mb} MB free here; a clean build of the tests needs about 3 GB" >&2
    fi
fi

cargo test --locked "$@"
