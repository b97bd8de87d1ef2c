#!/usr/bin/env bash
# The one test command (the README's and CI's): installs what the tests need when it is
# missing, then runs every test. Tests whose tool is missing fail and name this script.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the integration tests drive: a real PAC engine for the PAC file.
missing=()
/usr/bin/python3 -c 'import pacparser' 2>/dev/null || missing+=(python3-pacparser)
command -v curl >/dev/null || missing+=(curl)

if ((${#missing[@]})); then
    echo "scripts/test.sh: installing ${missing[*]}" >&2
    sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

cargo test --locked "$@"
