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

if ((${#missing[@]})); then
    echo "scripts/test.sh: installing ${missing[*]}" >&2
    sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The browser driver's one dependency (playwright-core, pinned in tests/browser/package-lock.json;
# it drives the Debian Chromium above and downloads no browser of its own).
if [ ! -d tests/browser/node_modules/playwright-core ]; then
    echo "scripts/test.sh: installing tests/browser's node modules" >&2
    npm ci --prefix tests/browser --no-audit --no-fund
fi

cargo test --locked "$@"
