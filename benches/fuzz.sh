#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a set time each, and saves what crashes.
#
#   benches/fuzz.sh                 # every target, FUZZ_SECONDS (default 60) each
#   FUZZ_SECONDS=600 benches/fuzz.sh pac domains
#   benches/fuzz.sh --list
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`) and a nightly toolchain
# (`rustup toolchain install nightly`); without nightly it falls back to
# RUSTC_BOOTSTRAP=1 on the default toolchain (usually accepted for -Zsanitizer builds;
# not tried here, where nightly is installed).
#
# Each target starts from fuzz/seeds/<target> and the saved regressions in
# tests/fuzz-regressions/<target> (except open-* findings, which still crash), and grows
# fuzz/corpus/<target> (not committed).
# A crashing input is copied to tests/fuzz-regressions/<target>/, where
# tests/fuzz_regressions.rs replays it in CI through the same check (fuzz/checks.rs).
# FUZZ_KEEP_GOING=1 runs libFuzzer in fork mode and goes on past crashes (to find more
# than the first); its crashing inputs stay in fuzz/artifacts/<target> for you to triage.
# FUZZ_SKIP_OPEN=1 skips the assertions that the open findings (open-* inputs) break, to
# look past bugs already known.
# Exit status: 0 when nothing crashed, 1 when something did.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
targets_all=(config target connect domains pac)
seconds=${FUZZ_SECONDS:-60}
jobs=${FUZZ_JOBS:-1}
keep_going=${FUZZ_KEEP_GOING:-0}

case "${1:-}" in
-h | --help)
    sed -n '2,/^set -e/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'
    exit 0
    ;;
--list)
    printf '%s\n' "${targets_all[@]}"
    exit 0
    ;;
esac
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${targets_all[@]}")

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is missing: cargo install cargo-fuzz --locked" >&2
    exit 2
fi
toolchain=()
if rustup run nightly rustc --version >/dev/null 2>&1; then
    toolchain=(+nightly)
else
    echo "no nightly toolchain: using RUSTC_BOOTSTRAP=1 on $(rustc --version)" >&2
    export RUSTC_BOOTSTRAP=1
fi

echo "building the fuzz targets (release, address sanitizer)..." >&2
cargo "${toolchain[@]}" fuzz build --fuzz-dir fuzz >&2

crashed=0
summary=()
for t in "${targets[@]}"; do
    corpus="$root/fuzz/corpus/$t"
    seeds="$root/fuzz/seeds/$t"
    regressions="$root/tests/fuzz-regressions/$t"
    artifacts="$root/fuzz/artifacts/$t"
    log="$root/fuzz/$t.log"
    mkdir -p "$corpus" "$artifacts" "$seeds"
    parallel=()
    if [ "$keep_going" = 1 ]; then
        parallel=(-fork="$jobs" -ignore_crashes=1)
    elif [ "$jobs" -gt 1 ]; then
        parallel=(-jobs="$jobs" -workers="$jobs")
    fi
    touch "$artifacts/.started"
    echo "== $t: ${seconds}s" >&2
    started=$(date +%s)
    set +e
    dirs=("$corpus" "$seeds")
    # Fixed regressions seed the corpus; open findings (open-*) would stop the run at once.
    for f in "$regressions"/*; do
        case "$(basename "$f")" in open-*) ;; *) [ -f "$f" ] && cp "$f" "$corpus/" ;; esac
    done
    cargo "${toolchain[@]}" fuzz run --fuzz-dir fuzz "$t" "${dirs[@]}" \
        -- -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 "${parallel[@]}" \
        -artifact_prefix="$artifacts/" -print_final_stats=1 2>"$log"
    status=$?
    set -e
    took=$(($(date +%s) - started))
    runs=$(grep -Eo '^#[0-9]+' "$log" | tail -1 | tr -d '#' || true)
    cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -1 || true)
    new=$(find "$artifacts" -type f -newer "$artifacts/.started" ! -name .started)
    if [ "$status" -ne 0 ] || [ -n "$new" ]; then
        crashed=1
        if [ "$keep_going" = 1 ]; then
            summary+=("$t: $(echo "$new" | grep -c .) crashing inputs in ${took}s, left in $artifacts; log $log")
        else
            mkdir -p "$regressions"
            for f in $new; do cp "$f" "$regressions/"; done
            summary+=("$t: CRASH after ${took}s (exit $status), inputs copied to $regressions; log $log")
            tail -40 "$log" >&2
        fi
    else
        summary+=("$t: ok, ${took}s, ${runs:-?} runs, ${cov:-cov ?}, corpus $(find "$corpus" -type f | wc -l) files")
    fi
done

printf '%s\n' "${summary[@]}"
exit "$crashed"
