#!/usr/bin/env bash
# Idle-connection memory: Signpost (journal on) holding 10,000 idle keep-alive clients.
#
# Starts a local nginx origin and Signpost with a temporary state directory, opens IDLE_CONNS
# client connections (a Python asyncio client), sends one proxied 1 KiB GET on each, reads
# the response and leaves the connection open and idle. With all of them open it prints
# Signpost's VmRSS and VmHWM, checks a fresh request is still served and that the idle
# connections still work (a second GET on each), then closes everything.
#
# Everything it starts is stopped by the EXIT trap; every wait is bounded in time.
# Environment: IDLE_CONNS=10000, OPEN_CONCURRENCY=200, ORIGIN_PORT=18380, SIGNPOST_PORT=18428,
# KEEP_TMP=1, OUT=FILE. Uses target/release/signpost (waits up to 10 min for it, then builds).
set -euo pipefail
# Helpers shared with the other load scripts (sourced before any cd).
# shellcheck source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

IDLE_CONNS=${IDLE_CONNS:-10000}
OPEN_CONCURRENCY=${OPEN_CONCURRENCY:-200}
for v in IDLE_CONNS OPEN_CONCURRENCY; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "idle.sh: $v must be a positive integer" >&2; exit 2; }
done
case ${1:-} in
    -h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    "") ;;
    *) echo "idle.sh: unknown argument: $1" >&2; exit 2 ;;
esac

cd "$(dirname "$0")/.."
ROOT=$PWD
SIGNPOST_BIN=$ROOT/target/release/signpost


export PATH=$PATH:/usr/sbin:/sbin
[[ -d $HOME/.cargo/bin ]] && export PATH=$PATH:$HOME/.cargo/bin
need=()
command -v nginx >/dev/null 2>&1 || need+=(nginx-light)
command -v curl >/dev/null 2>&1 || need+=(curl)
apt_install "${need[@]}"
command -v python3 >/dev/null 2>&1 || die "python3 is required"

# Both Signpost (one fd per client, plus origin connections) and the client need more than
# IDLE_CONNS descriptors. Ask for 30000; fall back to the hard limit if that is lower.
ulimit -n 30000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
NOFILE=$(ulimit -n)
[[ $NOFILE == unlimited || $NOFILE -ge $((IDLE_CONNS + 1000)) ]] ||
    die "open-file limit $NOFILE is too low for $IDLE_CONNS connections (need $((IDLE_CONNS + 1000)))"

start_scratch idle
LOGS=("$TMP"/signpost.log "$TMP"/nginx/{error,stderr}.log "$TMP"/client.err)

pick_port ORIGIN_PORT "${ORIGIN_PORT:-18380}"
pick_port SIGNPOST_PORT "${SIGNPOST_PORT:-18428}"
ORIGIN=http://127.0.0.1:$ORIGIN_PORT

await_binary

# Origin
start_origin 600s

# Signpost: journal on; idle clients kept 10 minutes; room for twice the connections
signpost_config "$TMP/signpost.toml" "$SIGNPOST_PORT" "$TMP/state" true \
    $'idle_timeout = "10m"\nmax_connections = 20000'
log "signpost on 127.0.0.1:$SIGNPOST_PORT (journal on, open-file limit $NOFILE)"
start_signpost signpost "$SIGNPOST_PORT"
SIGNPOST_PID=${PIDS[-1]}
curl -sf -o /dev/null -x "http://127.0.0.1:$SIGNPOST_PORT" "$ORIGIN/1k" || die "proxied GET failed"

rss_kib() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status"; }
mb() { awk -v k="$1" 'BEGIN { printf "%.1f MiB (%.1f MB)", k / 1024, k * 1024 / 1e6 }'; }
RSS_BEFORE=$(rss_kib "$SIGNPOST_PID" VmRSS)

# Client: opens the connections, one GET each, then holds them until $TMP/release appears
# (at most HOLD seconds), then sends a second GET on each and reports how many still work.
cat >"$TMP/idle_client.py" <<'PYEOF'
import asyncio, os, sys, time

pport, oport, n, conc, release = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
HOLD = 300
req = (f"GET http://127.0.0.1:{oport}/1k HTTP/1.1\r\nHost: 127.0.0.1:{oport}\r\n\r\n").encode()


async def exchange(r, w):
    w.write(req)
    head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 30)
    status = head.split(b" ", 2)[1]
    clen = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            clen = int(v)
    await asyncio.wait_for(r.readexactly(clen), 30)
    if status != b"200":
        raise RuntimeError(f"status {status!r}")


async def main():
    sem = asyncio.Semaphore(conc)
    conns, errors = [], {}

    async def open_one():
        async with sem:
            try:
                r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", pport), 30)
                await exchange(r, w)
                conns.append((r, w))
            except Exception as e:
                errors[repr(e)[:80]] = errors.get(repr(e)[:80], 0) + 1

    t0 = time.monotonic()
    await asyncio.gather(*(open_one() for _ in range(n)))
    print(f"ready {len(conns)} {sum(errors.values())} {time.monotonic() - t0:.1f}", flush=True)
    for e, c in errors.items():
        print(f"open error x{c}: {e}", file=sys.stderr)
    deadline = time.monotonic() + HOLD
    while not os.path.exists(release) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)

    alive = 0

    async def again(r, w):
        nonlocal alive
        async with sem:
            try:
                await exchange(r, w)
                alive += 1
            except Exception:
                pass

    await asyncio.gather(*(again(r, w) for r, w in conns))
    for _, w in conns:
        w.close()
    print(f"alive {alive}", flush=True)


asyncio.run(main())
PYEOF

log "opening $IDLE_CONNS idle keep-alive connections ($OPEN_CONCURRENCY at a time)"
python3 "$TMP/idle_client.py" "$SIGNPOST_PORT" "$ORIGIN_PORT" "$IDLE_CONNS" "$OPEN_CONCURRENCY" \
    "$TMP/release" >"$TMP/client.out" 2>"$TMP/client.err" &
CLIENT_PID=$!
PIDS+=("$CLIENT_PID")
wait_until 1200 client "$CLIENT_PID" grep -q '^ready' "$TMP/client.out"
read -r _ OPENED OPEN_ERRORS OPEN_SECS < <(grep '^ready' "$TMP/client.out")
log "$OPENED open ($OPEN_ERRORS failed) in ${OPEN_SECS}s; settling 3 s"
sleep 3

kill -0 "$SIGNPOST_PID" 2>/dev/null || die "signpost died"
RSS_IDLE=$(rss_kib "$SIGNPOST_PID" VmRSS)
HWM_IDLE=$(rss_kib "$SIGNPOST_PID" VmHWM)
FDS=$(find "/proc/$SIGNPOST_PID/fd" -mindepth 1 -maxdepth 1 | wc -l)
THREADS_N=$(awk '/^Threads:/ { print $2 }' "/proc/$SIGNPOST_PID/status")
ESTAB=$(ss -Htn state established "( sport = :$SIGNPOST_PORT )" 2>/dev/null | wc -l || echo n/a)
FRESH=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' -m 10 -x "http://127.0.0.1:$SIGNPOST_PORT" "$ORIGIN/1k" || true)

touch "$TMP/release"
for ((i = 0; i < 1200; i++)); do
    kill -0 "$CLIENT_PID" 2>/dev/null || break
    sleep 0.1
done
ALIVE=$(awk '/^alive/ { print $2 }' "$TMP/client.out")

report() {
    echo "## Signpost idle connections"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)," \
        "$(nproc) CPUs. Journal on, idle_timeout 10m, max_connections 20000, open-file limit $NOFILE."
    echo
    echo "- idle keep-alive client connections opened: $OPENED of $IDLE_CONNS ($OPEN_ERRORS failed) in ${OPEN_SECS}s"
    echo "- established connections on the Signpost port: $ESTAB; Signpost fds: $FDS; threads: $THREADS_N"
    echo "- Signpost VmRSS before: $(mb "$RSS_BEFORE")"
    echo "- **Signpost VmRSS with all open: $(mb "$RSS_IDLE")**"
    echo "- Signpost VmHWM (peak) with all open: $(mb "$HWM_IDLE")"
    echo "- per idle connection: $(awk -v a="$RSS_IDLE" -v b="$RSS_BEFORE" -v n="$OPENED" 'BEGIN { if (n > 0) printf "%.1f KiB", (a - b) / n; else print "n/a" }')"
    echo "- fresh request while they are open: HTTP ${FRESH:-failed} (status, seconds)"
    echo "- idle connections still serving a second GET afterwards: ${ALIVE:-n/a} of $OPENED"
    echo "- Signpost log lines at warn or above: $(grep -c . "$TMP/signpost.log" || true)"
    [[ -s $TMP/client.err ]] && echo "- client errors: $(sort "$TMP/client.err" | uniq -c | sort -rn | head -n 3 | tr '\n' ';')"
    return 0
}
echo
report | tee "${OUT:-/dev/null}"
[[ ${FRESH%% *} == 200 ]] || die "fresh request not served while $OPENED connections were open"
