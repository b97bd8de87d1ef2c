#!/usr/bin/env bash
# Builds the Debian package with cargo-deb (a release build, stripped), into target/debian/.
# Installs cargo-deb first when it is missing. Arguments are passed to `cargo deb`.
# Then check the package: packaging/check-deb.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo deb --version >/dev/null 2>&1; then
    echo "packaging/build-deb.sh: installing cargo-deb" >&2
    cargo install cargo-deb --locked
fi

# --strip: [profile.release] keeps line tables for backtraces in benches; the package
# does not need them.
cargo deb --locked --strip "$@"
ls -l "${CARGO_TARGET_DIR:-target}"/debian/signpost_*.deb
