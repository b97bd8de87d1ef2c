#!/usr/bin/env bash
# Load benchmark: Signpost against Squid (and the bare origin), all on loopback.
#
# Starts a local nginx origin, Signpost, and (optionally) Squid, drives each proxy with wrk
# using absolute-form requests, and prints a Markdown table of req/s, latency, CPU per
# request and errors. Run with --help for the options.
#
# Everything it starts is stopped by the EXIT trap; every wait is bounded in time.
set -euo pipefail
# Helpers shared with the other load scripts (sourced before any cd).
# shellcheck source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    cat <<'EOF'
Usage: benches/load.sh [--with-squid | --no-squid] [--no-build] [-h | --help]

Benchmarks Signpost (and Squid, for comparison) as a forward proxy on 127.0.0.1 with wrk.
A local nginx serves /1k (1024 bytes) and /1m (1 MiB); each proxy gets:
  keep-alive   1 KiB GET, persistent client connections
  conn-close   1 KiB GET, "Connection: close" (a new client connection per request)
plus a keep-alive reference run straight against the origin. Each measured run follows an
unreported 2 s warm-up.

Options:
  --with-squid   also benchmark Squid (default when `squid` is installed; installs it if not)
  --no-squid     skip Squid
  --no-build     use the existing target/release/signpost instead of `cargo build --release`
  -h, --help     this text

Environment:
  DURATION=10       seconds per measured run
  THREADS=2         wrk threads (-t)
  CONNECTIONS=50    wrk connections (-c)
  OUT=FILE          also write the report to FILE
  KEEP_TMP=1        keep the temporary directory (configs, logs, raw wrk output)
  ORIGIN_PORT=18080 SIGNPOST_PORT=18128 SQUID_PORT=18129
                    first port tried for each; the next free one up to +99 is used

Missing Debian packages (wrk, nginx-light, curl, squid) are installed with apt-get.
EOF
}

# ---------------------------------------------------------------------------------------
# Arguments and settings
# ---------------------------------------------------------------------------------------
WITH_SQUID=auto
BUILD=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --with-squid) WITH_SQUID=yes ;;
        --no-squid) WITH_SQUID=no ;;
        --no-build) BUILD=0 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "load.sh: unknown argument: $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done

DURATION=${DURATION:-10}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-50}
WARMUP=2
for v in DURATION THREADS CONNECTIONS; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "load.sh: $v must be a positive integer" >&2; exit 2; }
done

# Run from the repository root whatever the caller's directory is.
cd "$(dirname "$0")/.."
ROOT=$PWD
SIGNPOST_BIN=$ROOT/target/release/signpost


# ---------------------------------------------------------------------------------------
# Tools: install what is missing (apt-get update only when something must be installed)
# ---------------------------------------------------------------------------------------
if [[ $WITH_SQUID == auto ]]; then
    if command -v squid >/dev/null 2>&1 || [[ -x /usr/sbin/squid ]]; then WITH_SQUID=yes; else WITH_SQUID=no; fi
fi
# Debian puts nginx and squid in /usr/sbin, which a non-login root shell may lack.
export PATH=$PATH:/usr/sbin:/sbin
[[ -d $HOME/.cargo/bin ]] && export PATH=$PATH:$HOME/.cargo/bin

need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v nginx >/dev/null 2>&1 || need+=(nginx-light)
command -v curl >/dev/null 2>&1 || need+=(curl)
if [[ $WITH_SQUID == yes ]] && ! command -v squid >/dev/null 2>&1; then need+=(squid); fi
apt_install "${need[@]}"

# ---------------------------------------------------------------------------------------
# Cleanup: stop exactly the processes this script started, by PID, then remove the tmpdir
# ---------------------------------------------------------------------------------------
start_scratch load
# Squid and nginx exit within a second of SIGTERM here (shutdown_lifetime 0); Signpost has
# nothing in flight.
LOGS=("$TMP"/signpost.log "$TMP"/nginx/{error,stderr}.log "$TMP"/squid/{parse,cache}.log)

pick_port ORIGIN_PORT "${ORIGIN_PORT:-18080}"
pick_port SIGNPOST_PORT "${SIGNPOST_PORT:-18128}"
pick_port SQUID_PORT "${SQUID_PORT:-18129}"
pick_port NOJOURNAL_PORT "${NOJOURNAL_PORT:-18138}"
ORIGIN=http://127.0.0.1:$ORIGIN_PORT

# ---------------------------------------------------------------------------------------
# 1. Build
# ---------------------------------------------------------------------------------------
if [[ $BUILD == 1 ]]; then
    log "cargo build --release"
    cargo build --release --quiet
fi
[[ -x $SIGNPOST_BIN ]] || die "$SIGNPOST_BIN missing (build it, or drop --no-build)"

# ---------------------------------------------------------------------------------------
# 2. Origin: nginx with a throwaway config, static files, no access log
# ---------------------------------------------------------------------------------------
start_origin 120s

# ---------------------------------------------------------------------------------------
# 3. Signpost
# ---------------------------------------------------------------------------------------
# Two instances: the journal on (SQLite plus a Squid-format access log, as Squid keeps
# one), and off, to show what recording every decision costs.
signpost_config "$TMP/signpost.toml" "$SIGNPOST_PORT" "$TMP/signpost-state" true
signpost_config "$TMP/signpost-nojournal.toml" "$NOJOURNAL_PORT" "$TMP/nojournal-state" false
log "signpost on 127.0.0.1:$SIGNPOST_PORT (journal on), 127.0.0.1:$NOJOURNAL_PORT (journal off)"
start_signpost signpost "$SIGNPOST_PORT"
SIGNPOST_PID=${PIDS[-1]}
start_signpost signpost-nojournal "$NOJOURNAL_PORT" error
NOJOURNAL_PID=${PIDS[-1]}

# ---------------------------------------------------------------------------------------
# 4. Squid (optional): no cache, access log on, one process
# ---------------------------------------------------------------------------------------
SQUID_PID=
if [[ $WITH_SQUID == yes ]]; then
    S=$TMP/squid
    squid_conf "$S" "$SQUID_PORT"
    SQUID_VERSION=$(squid -v | awk 'NR == 1 { print $4 }')
    log "squid $SQUID_VERSION on 127.0.0.1:$SQUID_PORT"
    # -N: foreground, a single process (no master/kid), so its PID is the one to measure.
    squid -N -f "$S/squid.conf" >>"$S/stdout.log" 2>&1 &
    SQUID_PID=$!
    PIDS+=("$SQUID_PID")
    wait_until 200 squid "$SQUID_PID" \
        curl -sf -o /dev/null -x "http://127.0.0.1:$SQUID_PORT" "$ORIGIN/1k"
fi

# ---------------------------------------------------------------------------------------
# Sanity: each proxy returns both files intact (a benchmark of wrong answers is worthless)
# ---------------------------------------------------------------------------------------
check_proxy() { # NAME PORT
    local f got
    for f in 1k 1m; do
        got=$(curl -sf -x "http://127.0.0.1:$2" "$ORIGIN/$f" | cksum) || die "$1: GET /$f failed"
        [[ $got == "$(cksum <"$TMP/www/$f")" ]] || die "$1: /$f came back altered"
    done
}
check_proxy signpost "$SIGNPOST_PORT"
[[ -n $SQUID_PID ]] && check_proxy squid "$SQUID_PORT"

# ---------------------------------------------------------------------------------------
# wrk scripts. wrk cannot use a proxy, so it connects to the proxy and the Lua script
# replaces the request target with the origin's absolute URL (absolute-form, as browsers
# send to a proxy). Setting wrk.path/wrk.headers at top level keeps the request static:
# wrk builds it once instead of calling Lua per request, so wrk spends less of the shared
# CPU than with a `request` function.
# ---------------------------------------------------------------------------------------
cat >"$TMP/keepalive.lua" <<EOF
wrk.path = "$ORIGIN/1k"
wrk.headers["Host"] = "127.0.0.1:$ORIGIN_PORT"
EOF
cat >"$TMP/close.lua" <<EOF
wrk.path = "$ORIGIN/1k"
wrk.headers["Host"] = "127.0.0.1:$ORIGIN_PORT"
wrk.headers["Connection"] = "close"
EOF

# Peak RSS is VmHWM from /proc. (Squid's own "Maximum Resident Size" line in cache.log reads
# 4x higher: it scales ru_maxrss, already in KiB on Linux, by the page size.)

# Result rows, one per line: proxy|test|req/s|p50 ms|p99 ms|cpu us/req|requests|errors
ROWS=()
declare -A RPS CPU RSS

# run_test PROXY TEST URL PID [LUA]: warm up, then measure one wrk run. PID is the process
# whose CPU is counted (empty for the direct reference run).
run_test() {
    local proxy=$1 test=$2 url=$3 pid=$4 lua=${5:-} args out c0 c1 cpu
    args=(-t"$THREADS" -c"$CONNECTIONS" --latency)
    [[ -n $lua ]] && args+=(-s "$lua")
    out=$TMP/wrk-$proxy-$test.txt

    log "$proxy $test: warm-up ${WARMUP}s, then ${DURATION}s"
    # wrk stops itself after -d; `timeout` only guards against a wedged run.
    timeout $((WARMUP + 30)) wrk "${args[@]}" -d"${WARMUP}s" "$url" >/dev/null
    [[ -n $pid ]] && c0=$(cpu_ticks "$pid")
    timeout $((DURATION + 30)) wrk "${args[@]}" -d"${DURATION}s" "$url" >"$out"
    [[ -n $pid ]] && c1=$(cpu_ticks "$pid")

    local rps total p50 p99 errors
    rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")
    total=$(awk '/ requests in / { print $1 }' "$out")
    p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$out")")
    p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")
    errors=$(wrk_errors "$out")
    [[ $errors == 0 ]] || errors="⚠ $errors"
    [[ -n $rps && -n $total ]] || { cat "$out" >&2; die "could not parse wrk output"; }

    cpu=n/a
    [[ -n $pid ]] && cpu=$(cpu_us_per "$c0" "$c1" "$total")
    RPS[$proxy/$test]=$rps
    CPU[$proxy/$test]=$cpu
    ROWS+=("$proxy|$test|$rps|$p50|$p99|$cpu|$total|$errors")
}

# ---------------------------------------------------------------------------------------
# 5. and 6. The runs
# ---------------------------------------------------------------------------------------
bench_proxy() { # NAME PORT PID
    run_test "$1" keep-alive "http://127.0.0.1:$2" "$3" "$TMP/keepalive.lua"
    run_test "$1" conn-close "http://127.0.0.1:$2" "$3" "$TMP/close.lua"
    kill -0 "$3" 2>/dev/null || die "$1 died during the benchmark"
    RSS[$1]=$(peak_rss_kib "$3")
}
bench_proxy signpost "$SIGNPOST_PORT" "$SIGNPOST_PID"
bench_proxy signpost-nojournal "$NOJOURNAL_PORT" "$NOJOURNAL_PID"
[[ -n $SQUID_PID ]] && bench_proxy squid "$SQUID_PORT" "$SQUID_PID"
run_test direct keep-alive "$ORIGIN/1k" ""

# ---------------------------------------------------------------------------------------
# 7. Report
# ---------------------------------------------------------------------------------------

report() {
    echo "## Signpost load benchmark"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)," \
        "$(nproc) CPUs, wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s (after a ${WARMUP}s warm-up)," \
        "1 KiB GET from nginx on loopback."
    [[ -n $SQUID_PID ]] && echo "Squid $SQUID_VERSION: no cache, access log on, workers 1. Signpost: RUST_LOG=warn."
    echo
    echo "| proxy | test | req/s | p50 ms | p99 ms | CPU µs/req | requests | errors |"
    echo "|---|---|---:|---:|---:|---:|---:|---|"
    local r
    for r in "${ROWS[@]}"; do
        IFS='|' read -r p t rps p50 p99 cpu total errors <<<"$r"
        echo "| $p | $t | $rps | $p50 | $p99 | $cpu | $total | $errors |"
    done
    echo
    if [[ -n $SQUID_PID ]]; then
        for t in keep-alive conn-close; do
            echo "- signpost/squid req/s, $t: $(ratio "${RPS[signpost/$t]}" "${RPS[squid/$t]}")"
        done
        for t in keep-alive conn-close; do
            echo "- signpost/squid CPU per request, $t: $(ratio "${CPU[signpost/$t]}" "${CPU[squid/$t]}") (lower is better)"
        done
    fi
    for t in keep-alive conn-close; do
        echo "- journal on/off req/s, $t: $(ratio "${RPS[signpost/$t]}" "${RPS[signpost-nojournal/$t]}")"
    done
    echo "- decisions journaled by the journal-on instance: $(sqlite_count "$TMP/signpost-state/journal.db")"
    for p in signpost signpost-nojournal squid; do
        [[ -n ${RSS[$p]:-} ]] && echo "- peak RSS (VmHWM), $p: $(mib "${RSS[$p]}")"
    done
    signpost_warnings "Signpost log lines at warn or above during the run"
    # CPU is counted from /proc in ticks of 1/CLK_TCK s, so short runs are coarse.
}

echo
report | tee "${OUT:-/dev/null}"
