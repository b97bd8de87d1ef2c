#!/usr/bin/env bash
# Issue 8 comparison: Signpost (journal on) against the proxies administrators run today,
# Squid, Privoxy, e2guardian and tinyproxy (Debian's packages, each with access logging on),
# in one run, on loopback.
#
# Rows: 1 KiB GET keep-alive, 1 KiB GET with a new connection per request, 1 MiB GET
# throughput, CONNECT tunnels per second, and 1 MiB GETs through a CONNECT tunnel. Prints one
# Markdown table: per proxy the row's figure, p50/p99 (wrk rows) and the proxy's CPU per
# request, then Signpost/best-peer and Signpost/Squid ratios; a last row gives peak RSS.
#
# Everything it starts is stopped by the EXIT trap; every wait is bounded in time.
set -euo pipefail
# Helpers shared with the other load scripts (sourced before any cd).
# shellcheck source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ALL_PEERS="squid privoxy e2guardian tinyproxy"

usage() {
    cat <<'EOF'
Usage: benches/compare.sh [--build] [-h | --help]

Signpost (journal on) vs Squid, Privoxy, e2guardian and tinyproxy as forward proxies on
127.0.0.1. Each peer is Debian's package (installed with apt-get when missing, without
starting the services it ships), run in the foreground with a config written to the
temporary directory, access logging on, no cache and no filtering beyond allowing CONNECT
to the origin. A local nginx serves /1k (1024 bytes) and /1m (1 MiB). Rows:
  1 KiB GET keep-alive     wrk, persistent client connections              (req/s)
  1 KiB GET conn-close     wrk, "Connection: close"                        (req/s)
  1 MiB GET keep-alive     wrk, Transfer/sec                               (MiB/s)
  CONNECT tunnels          Python: CONNECT -> 200 -> close, WORKERS at once (tunnels/s)
  1 MiB GET via tunnel     Python: STREAMS tunnels, plain-HTTP GET /1m in each (MiB/s)
Each measured run follows an unreported 2 s warm-up. Per proxy and row the table gives the
figure, wrk's p50/p99 latency (wrk rows only) and the proxy's CPU time (utime+stime from
/proc/PID/stat, all threads and child processes) per request, tunnel or 1 MiB response;
then the best peer, Signpost/best-peer and Signpost/Squid. The last row is peak RSS (VmHWM).

Options:
  --build        run `cargo build --release` first (default: use target/release/signpost,
                 waiting up to 10 minutes for it to appear, building only if it never does)
  -h, --help     this text

Environment:
  PEERS="squid privoxy e2guardian tinyproxy"
                    the peers to compare against, in table order (any non-empty subset);
                    a peer that fails to start fails the run, with its log
  DURATION=10       seconds per measured run
  THREADS=2         wrk threads (-t), and client processes for the CONNECT-rate run
  CONNECTIONS=50    wrk connections (-c), and concurrent workers for the CONNECT-rate run
  STREAMS=8         concurrent tunnels for the tunnel-throughput run
  OUT=FILE          also write the report to FILE
  KEEP_TMP=1        keep the temporary directory (configs, logs, raw output)
  ORIGIN_PORT=18280 SIGNPOST_PORT=18328 SQUID_PORT=18329 PRIVOXY_PORT=18330
  E2GUARDIAN_PORT=18331 TINYPROXY_PORT=18332
                    first port tried for each; the next free one up to +99 is used
EOF
}

BUILD=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --build) BUILD=1 ;;
        --no-build) BUILD=0 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "compare.sh: unknown argument: $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done

DURATION=${DURATION:-10}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-50}
STREAMS=${STREAMS:-8}
WARMUP=2
for v in DURATION THREADS CONNECTIONS STREAMS; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "compare.sh: $v must be a positive integer" >&2; exit 2; }
done

# PEERS: known names only, each once, in the order given.
declare -A IS_PEER=()
SELECTED=()
for p in ${PEERS:-$ALL_PEERS}; do
    [[ " $ALL_PEERS " == *" $p "* ]] ||
        { echo "compare.sh: unknown peer in PEERS: $p (known: $ALL_PEERS)" >&2; exit 2; }
    [[ -n ${IS_PEER[$p]:-} ]] && continue
    IS_PEER[$p]=1
    SELECTED+=("$p")
done
[[ ${#SELECTED[@]} -gt 0 ]] || { echo "compare.sh: PEERS names no peer (known: $ALL_PEERS)" >&2; exit 2; }

# Client connections each peer must serve at once, with room for ones closing: its
# worker/client limit (e2guardian httpworkers, Privoxy max-client-connections, tinyproxy
# MaxClients; Squid has no such limit below its descriptor limit).
PEAK=$((CONNECTIONS > STREAMS ? CONNECTIONS : STREAMS))
PEER_CLIENTS=$((PEAK * 4 + 64))

cd "$(dirname "$0")/.."
ROOT=$PWD
SIGNPOST_BIN=$ROOT/target/release/signpost


export PATH=$PATH:/usr/sbin:/sbin
[[ -d $HOME/.cargo/bin ]] && export PATH=$PATH:$HOME/.cargo/bin

need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v nginx >/dev/null 2>&1 || need+=(nginx-light)
command -v curl >/dev/null 2>&1 || need+=(curl)
for p in "${SELECTED[@]}"; do
    # Each peer's package is named after its binary.
    command -v "$p" >/dev/null 2>&1 || need+=("$p")
done
apt_install "${need[@]}"
command -v python3 >/dev/null 2>&1 || die "python3 is required for the CONNECT rows"

start_scratch compare
# e2guardian -N hangs in its graceful stop: it goes in KILL_PIDS. Each peer adds its logs to
# LOGS when it starts, and each proxy its client's stderr when the runs begin.
LOGS=("$TMP"/signpost.log "$TMP"/nginx/error.log "$TMP"/nginx/stderr.log)

pick_port ORIGIN_PORT "${ORIGIN_PORT:-18280}"
pick_port SIGNPOST_PORT "${SIGNPOST_PORT:-18328}"
declare -A FIRST_PORT=([squid]=18329 [privoxy]=18330 [e2guardian]=18331 [tinyproxy]=18332)
for p in "${SELECTED[@]}"; do
    v=${p^^}_PORT
    pick_port "$v" "${!v:-${FIRST_PORT[$p]}}"
done
ORIGIN=http://127.0.0.1:$ORIGIN_PORT

# ---------------------------------------------------------------------------------------
# 1. Binary: by default wait (bounded) for one another process may be building
# ---------------------------------------------------------------------------------------
if [[ $BUILD == 1 ]]; then
    log "cargo build --release"
    cargo build --release --quiet
else
    await_binary
fi

# ---------------------------------------------------------------------------------------
# 2. Origin: nginx
# ---------------------------------------------------------------------------------------
start_origin 120s

# Per proxy: listening port, process id, version, access log and an extended regular
# expression matching one line of it per request or tunnel, and what its config does.
declare -A PORT PID VERSION ACCESS_LOG ACCESS_RE SETUP
declare -A NAME=([signpost]=Signpost [squid]=Squid [privoxy]=Privoxy [e2guardian]=e2guardian [tinyproxy]=tinyproxy)

# ---------------------------------------------------------------------------------------
# 3. Signpost, journal on; CONNECT allowed to the origin's (plain HTTP) port
# ---------------------------------------------------------------------------------------
signpost_config "$TMP/signpost.toml" "$SIGNPOST_PORT" "$TMP/signpost-state" true \
    "connect_ports = [$ORIGIN_PORT]"
log "signpost on 127.0.0.1:$SIGNPOST_PORT (journal on)"
PORT[signpost]=$SIGNPOST_PORT
VERSION[signpost]=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
ACCESS_LOG[signpost]=$TMP/signpost-state/access.log
ACCESS_RE[signpost]=.
SETUP[signpost]="journal on (SQLite + Squid-format access log), RUST_LOG=warn, CONNECT to the origin's port only"
start_signpost signpost "$SIGNPOST_PORT"
PID[signpost]=${PIDS[-1]}

# ---------------------------------------------------------------------------------------
# 4. The peers, each in the foreground with its config in $TMP/NAME/
# ---------------------------------------------------------------------------------------

# started NAME PID WAIT_TENTHS: record a peer's process and wait (bounded) until a GET
# through it works; a peer that dies or never answers fails the run with its logs.
started() {
    PID[$1]=$2
    PIDS+=("$2")
    wait_until "$3" "$1" "$2" curl -sf -o /dev/null -x "http://127.0.0.1:${PORT[$1]}" "$ORIGIN/1k"
}

# Squid: no cache, access log on, one process; CONNECT allowed to the origin's port.
start_squid() {
    local S=$TMP/squid
    LOGS+=("$S/parse.log" "$S/cache.log" "$S/stdout.log")
    squid_conf "$S" "$SQUID_PORT" "$ORIGIN_PORT"
    VERSION[squid]=$(squid -v | awk 'NR == 1 { print $4 }')
    PORT[squid]=$SQUID_PORT
    ACCESS_LOG[squid]=$S/access.log
    ACCESS_RE[squid]=.
    SETUP[squid]="\`squid -N\`, workers 1, user proxy, no cache (\`cache deny all\`, \`cache_mem 0\`), access_log stdio, CONNECT to the origin's port only"
    log "squid ${VERSION[squid]} on 127.0.0.1:$SQUID_PORT"
    squid -N -f "$S/squid.conf" >>"$S/stdout.log" 2>&1 &
    started squid $! 200
}

# Privoxy: no filter files; one actions file whose only action limits CONNECT to the
# origin's port. With --no-daemon it logs to stderr (a `logfile` is ignored), so stderr is
# the log: `debug 512` writes one Common Log Format line per request or tunnel.
start_privoxy() {
    local P=$TMP/privoxy
    mkdir -p "$P"
    LOGS+=("$P/config-test.log" "$P/privoxy.log")
    printf '{ +limit-connect{%s} }\n/\n' "$ORIGIN_PORT" >"$P/bench.action"
    cat >"$P/config" <<EOF
confdir $P
templdir /etc/privoxy/templates
logdir $P
actionsfile bench.action
debug 512
listen-address 127.0.0.1:$PRIVOXY_PORT
toggle 1
enable-remote-toggle 0
enable-remote-http-toggle 0
enable-edit-actions 0
enforce-blocks 0
max-client-connections $PEER_CLIENTS
keep-alive-timeout 5
tolerate-pipelining 1
socket-timeout 300
EOF
    chmod -R a+rX "$P"
    privoxy --config-test "$P/config" >"$P/config-test.log" 2>&1 || die "privoxy config rejected"
    VERSION[privoxy]=$(privoxy --version | awk 'NR == 1 { print $3 }')
    PORT[privoxy]=$PRIVOXY_PORT
    ACCESS_LOG[privoxy]=$P/privoxy.log
    ACCESS_RE[privoxy]='^[0-9.]+ - - \['
    SETUP[privoxy]="\`privoxy --no-daemon --user privoxy\`, \`debug 512\` (Common Log Format line per request), no filter files, one action: \`limit-connect\` to the origin's port, max-client-connections $PEER_CLIENTS, keep-alive-timeout 5"
    log "privoxy ${VERSION[privoxy]} on 127.0.0.1:$PRIVOXY_PORT"
    privoxy --no-daemon --user privoxy "$P/config" >>"$P/privoxy.log" 2>&1 &
    started privoxy $! 100
}

# e2guardian 5 goes direct (no proxyip). The storyboard marks every request an exception:
# no list lookups, no content scanning, CONNECT passed through (no SSL MITM). Access log
# in Squid format (logfileformat 3), every request (loglevel 3).
start_e2guardian() {
    local E=$TMP/e2guardian
    mkdir -p "$E"
    LOGS+=("$E/stderr.log")
    : >"$E/filtergroupslist"
    cat >"$E/bench.story" <<'EOF'
function(checkrequest)
if(true) return setexception
function(checkresponse)
function(thttps-checkrequest)
function(icap-checkrequest)
function(icap-checkresponse)
EOF
    cat >"$E/preauth.story" <<'EOF'
function(pre-authcheck)
function(thttps-pre-authcheck)
function(icap-pre-authcheck)
EOF
    # The group's file is found beside the main one, by name.
    cat >"$E/e2guardianf1.conf" <<EOF
groupname = 'bench'
storyboard = '$E/bench.story'
maxuploadsize = -1
EOF
    cat >"$E/e2guardian.conf" <<EOF
languagedir = '/usr/share/e2guardian/languages'
language = 'ukenglish'
loglevel = 3
logexceptionhits = 2
logfileformat = 3
loglocation = '$E/access.log'
filterip = 127.0.0.1
filterports = $E2GUARDIAN_PORT
mapportstoips = off
proxytimeout = 5
connecttimeout = 5
proxyexchange = 61
pcontimeout = 55
httpworkers = $PEER_CLIENTS
pidfilename = '$E/e2guardian.pid'
nodaemon = on
nologger = off
daemonuser = 'e2guardian'
daemongroup = 'e2guardian'
usecustombannedimage = off
usecustombannedflash = off
filtergroups = 1
filtergroupslist = '$E/filtergroupslist'
preauthstoryboard = '$E/preauth.story'
downloadmanager = '/etc/e2guardian/downloadmanagers/default.conf'
EOF
    chown -R e2guardian:e2guardian "$E"
    VERSION[e2guardian]=$(e2guardian -v | awk 'NR == 1 { print $2 }')
    PORT[e2guardian]=$E2GUARDIAN_PORT
    ACCESS_LOG[e2guardian]=$E/access.log
    ACCESS_RE[e2guardian]=.
    SETUP[e2guardian]="\`e2guardian -N\`, direct (no parent proxy), user e2guardian, httpworkers $PEER_CLIENTS, loglevel 3 (every request), logfileformat 3 (Squid), a storyboard that makes every request an exception (no list lookups or content scanning; CONNECT passed through, no MITM)"
    log "e2guardian ${VERSION[e2guardian]} on 127.0.0.1:$E2GUARDIAN_PORT"
    e2guardian -N -c "$E/e2guardian.conf" >>"$E/stderr.log" 2>&1 &
    KILL_PIDS+=("$!")
    started e2guardian $! 150
}

# tinyproxy: LogLevel Connect is the least that logs every request ("Request (file
# descriptor N): GET ..." plus a line per connection); Debian's default is Info.
start_tinyproxy() {
    local T=$TMP/tinyproxy
    mkdir -p "$T"
    LOGS+=("$T/tinyproxy.log" "$T/stderr.log")
    cat >"$T/tinyproxy.conf" <<EOF
User tinyproxy
Group tinyproxy
Port $TINYPROXY_PORT
Listen 127.0.0.1
Timeout 600
LogFile "$T/tinyproxy.log"
LogLevel Connect
PidFile "$T/tinyproxy.pid"
MaxClients $PEER_CLIENTS
Allow 127.0.0.1
ConnectPort $ORIGIN_PORT
EOF
    chown -R tinyproxy:tinyproxy "$T"
    VERSION[tinyproxy]=$(tinyproxy -v | awk 'NR == 1 { print $2 }')
    PORT[tinyproxy]=$TINYPROXY_PORT
    ACCESS_LOG[tinyproxy]=$T/tinyproxy.log
    ACCESS_RE[tinyproxy]='Request \(file descriptor'
    SETUP[tinyproxy]="\`tinyproxy -d\`, user tinyproxy, LogLevel Connect (the least that logs each request), MaxClients $PEER_CLIENTS, \`Allow 127.0.0.1\`, \`ConnectPort\` the origin's port"
    log "tinyproxy ${VERSION[tinyproxy]} on 127.0.0.1:$TINYPROXY_PORT"
    tinyproxy -d -c "$T/tinyproxy.conf" >>"$T/stderr.log" 2>&1 &
    started tinyproxy $! 100
}

for p in "${SELECTED[@]}"; do
    "start_$p"
done
PROXIES=(signpost "${SELECTED[@]}")
for p in "${PROXIES[@]}"; do
    LOGS+=("$TMP/client-$p.err")
done

# ---------------------------------------------------------------------------------------
# Sanity: both files intact through every proxy, plain and through a CONNECT tunnel
# ---------------------------------------------------------------------------------------
check_proxy() { # NAME PORT
    local f got
    for f in 1k 1m; do
        got=$(curl -sf -m 10 -x "http://127.0.0.1:$2" "$ORIGIN/$f" | cksum) || die "$1: GET /$f failed"
        [[ $got == "$(cksum <"$TMP/www/$f")" ]] || die "$1: /$f came back altered"
        got=$(curl -sf -m 10 --proxytunnel -x "http://127.0.0.1:$2" "$ORIGIN/$f" | cksum) ||
            die "$1: GET /$f through a CONNECT tunnel failed"
        [[ $got == "$(cksum <"$TMP/www/$f")" ]] || die "$1: /$f came back altered through a tunnel"
    done
}
for p in "${PROXIES[@]}"; do
    check_proxy "$p" "${PORT[$p]}"
done

# ---------------------------------------------------------------------------------------
# Clients: wrk Lua scripts (absolute-form targets) and the Python CONNECT client
# ---------------------------------------------------------------------------------------
for f in 1k 1m; do
    cat >"$TMP/keepalive-$f.lua" <<EOF
wrk.path = "$ORIGIN/$f"
wrk.headers["Host"] = "127.0.0.1:$ORIGIN_PORT"
EOF
done
cat >"$TMP/close-1k.lua" <<EOF
wrk.path = "$ORIGIN/1k"
wrk.headers["Host"] = "127.0.0.1:$ORIGIN_PORT"
wrk.headers["Connection"] = "close"
EOF

cat >"$TMP/tunnel_client.py" <<'PYEOF'
"""CONNECT benchmark client (used by benches/compare.sh).

  rate  PROXY_PORT TARGET_PORT DURATION WORKERS PROCS
        each worker loops: connect to the proxy, CONNECT 127.0.0.1:TARGET_PORT, read the
        200 reply, close; prints "<tunnels completed> <errors> <seconds>"
  bytes PROXY_PORT TARGET_PORT DURATION STREAMS PATH
        each stream opens one tunnel and loops plain-HTTP GET PATH through it, reading each
        body in full; prints "<body bytes> <responses> <errors> <seconds>"
"""
import asyncio, multiprocessing, socket, sys, threading, time


def connect_req(port):
    return (f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").encode()


async def rate_worker(pport, req, deadline, stats):
    while time.monotonic() < deadline:
        w = None
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", pport), 5)
            w.write(req)
            head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
            if head.split(b" ", 2)[1] == b"200":
                stats[0] += 1
            else:
                stats[1] += 1
        except Exception:
            stats[1] += 1
            await asyncio.sleep(0.01)
        finally:
            if w is not None:
                w.close()
                try:
                    await asyncio.wait_for(w.wait_closed(), 1)
                except Exception:
                    pass


def rate_proc(args):
    pport, tport, duration, workers = args
    stats = [0, 0]
    deadline = time.monotonic() + duration

    async def main():
        req = connect_req(tport)
        await asyncio.gather(*(rate_worker(pport, req, deadline, stats) for _ in range(workers)))

    asyncio.run(main())
    return stats


def rate(pport, tport, duration, workers, procs):
    per = [max(1, workers // procs)] * procs
    t0 = time.monotonic()
    with multiprocessing.Pool(procs) as pool:
        res = pool.map(rate_proc, [(pport, tport, duration, n) for n in per])
    secs = time.monotonic() - t0
    print(sum(r[0] for r in res), sum(r[1] for r in res), f"{secs:.3f}")


def recv_until(sock, buf, marker):
    while marker not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError("closed")
        buf += chunk
    i = buf.index(marker) + len(marker)
    return bytes(buf[:i]), buf[i:]


def stream(pport, tport, deadline, path, stats, lock):
    body = bytearray(1 << 20)
    view = memoryview(body)
    try:
        s = socket.create_connection(("127.0.0.1", pport), timeout=10)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(connect_req(tport))
        head, rest = recv_until(s, bytearray(), b"\r\n\r\n")
        if head.split(b" ", 2)[1] != b"200":
            raise RuntimeError(head[:40])
        if rest:
            raise RuntimeError("unexpected bytes after 200")
        req = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{tport}\r\n\r\n".encode()
        buf = bytearray()
        nbytes = nresp = 0
        while time.monotonic() < deadline:
            s.sendall(req)
            head, buf = recv_until(s, buf, b"\r\n\r\n")
            if b" 200 " not in head.split(b"\r\n", 1)[0] + b" ":
                raise RuntimeError(head[:40])
            clen = None
            for line in head.split(b"\r\n")[1:]:
                k, _, v = line.partition(b":")
                if k.strip().lower() == b"content-length":
                    clen = int(v)
            if clen is None:
                raise RuntimeError("no content-length")
            got = min(len(buf), clen)
            buf = buf[got:]
            while got < clen:
                n = s.recv_into(view, min(len(body), clen - got))
                if n == 0:
                    raise EOFError("closed mid-body")
                got += n
            nbytes += clen
            nresp += 1
        s.close()
        with lock:
            stats[0] += nbytes
            stats[1] += nresp
    except Exception as e:
        with lock:
            stats[2] += 1
        print(f"stream error: {e!r}", file=sys.stderr)


def bytes_(pport, tport, duration, streams, path):
    stats, lock = [0, 0, 0], threading.Lock()
    t0 = time.monotonic()
    deadline = t0 + duration
    ts = [threading.Thread(target=stream, args=(pport, tport, deadline, path, stats, lock))
          for _ in range(streams)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(duration + 30)
    secs = time.monotonic() - t0
    print(stats[0], stats[1], stats[2], f"{secs:.3f}")


if __name__ == "__main__":
    mode = sys.argv[1]
    a = sys.argv[2:]
    if mode == "rate":
        rate(int(a[0]), int(a[1]), float(a[2]), int(a[3]), int(a[4]))
    elif mode == "bytes":
        bytes_(int(a[0]), int(a[1]), float(a[2]), int(a[3]), a[4])
    else:
        sys.exit("mode must be rate or bytes")
PYEOF


# wrk's Transfer/sec (e.g. 812.35MB, binary units) in MiB/s.
to_mib() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "B") n /= 1048576; else if (u == "KB") n /= 1024
        else if (u == "GB") n *= 1024; else if (u == "TB") n *= 1048576
        printf "%.1f", n
    }'
}

# Per PROXY/TEST: the row's figure, errors, p50/p99 in ms (wrk rows), the proxy's CPU µs per
# request (per tunnel, per 1 MiB response); per PROXY: peak RSS in KiB.
declare -A VAL ERR P50 P99 CPU RSS
NO_LATENCY=–

# run_wrk PROXY TEST LUA METRIC(rps|mib)
run_wrk() {
    local proxy=$1 test=$2 lua=$3 metric=$4 out c0 c1 v n
    local args=(-t"$THREADS" -c"$CONNECTIONS" --latency -s "$lua") url=http://127.0.0.1:${PORT[$1]}
    out=$TMP/wrk-$proxy-$test.txt
    log "$proxy $test: warm-up ${WARMUP}s, then ${DURATION}s"
    # wrk stops itself after -d; `timeout` only guards against a wedged run.
    timeout $((WARMUP + 30)) wrk "${args[@]}" -d"${WARMUP}s" "$url" >/dev/null
    c0=$(tree_cpu_ticks "${PID[$proxy]}")
    timeout $((DURATION + 30)) wrk "${args[@]}" -d"${DURATION}s" "$url" >"$out"
    c1=$(tree_cpu_ticks "${PID[$proxy]}")
    if [[ $metric == rps ]]; then
        v=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")
    else
        v=$(to_mib "$(awk '/^Transfer\/sec:/ { print $2 }' "$out")")
    fi
    n=$(awk '/ requests in / { print $1 }' "$out")
    [[ -n $v && -n $n ]] || { cat "$out" >&2; die "could not parse wrk output"; }
    VAL[$proxy/$test]=$v
    ERR[$proxy/$test]=$(wrk_errors "$out")
    P50[$proxy/$test]=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$out")")
    P99[$proxy/$test]=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")
    CPU[$proxy/$test]=$(cpu_us_per "$c0" "$c1" "$n")
}

# run_rate PROXY: CONNECT tunnels per second
run_rate() {
    local proxy=$1 port=${PORT[$1]} out=$TMP/rate-$1.txt n e secs c0 c1
    log "$proxy connect-rate: warm-up ${WARMUP}s, then ${DURATION}s"
    timeout $((WARMUP + 60)) python3 "$TMP/tunnel_client.py" rate "$port" "$ORIGIN_PORT" "$WARMUP" \
        "$CONNECTIONS" "$THREADS" >/dev/null 2>>"$TMP/client-$proxy.err"
    c0=$(tree_cpu_ticks "${PID[$proxy]}")
    timeout $((DURATION + 60)) python3 "$TMP/tunnel_client.py" rate "$port" "$ORIGIN_PORT" "$DURATION" \
        "$CONNECTIONS" "$THREADS" >"$out" 2>>"$TMP/client-$proxy.err"
    c1=$(tree_cpu_ticks "${PID[$proxy]}")
    read -r n e secs <"$out" || die "$proxy: CONNECT-rate client printed nothing"
    VAL[$proxy/connect-rate]=$(awk -v n="$n" -v s="$secs" 'BEGIN { printf "%.0f", n / s }')
    ERR[$proxy/connect-rate]=$e
    P50[$proxy/connect-rate]=$NO_LATENCY
    P99[$proxy/connect-rate]=$NO_LATENCY
    CPU[$proxy/connect-rate]=$(cpu_us_per "$c0" "$c1" "$n")
}

# run_tunnel PROXY: 1 MiB GETs through STREAMS CONNECT tunnels, MiB/s
run_tunnel() {
    local proxy=$1 port=${PORT[$1]} out=$TMP/tunnel-$1.txt b n e secs c0 c1
    log "$proxy tunnel-1m: warm-up ${WARMUP}s, then ${DURATION}s"
    timeout $((WARMUP + 60)) python3 "$TMP/tunnel_client.py" bytes "$port" "$ORIGIN_PORT" "$WARMUP" \
        "$STREAMS" /1m >/dev/null 2>>"$TMP/client-$proxy.err"
    c0=$(tree_cpu_ticks "${PID[$proxy]}")
    timeout $((DURATION + 60)) python3 "$TMP/tunnel_client.py" bytes "$port" "$ORIGIN_PORT" "$DURATION" \
        "$STREAMS" /1m >"$out" 2>>"$TMP/client-$proxy.err"
    c1=$(tree_cpu_ticks "${PID[$proxy]}")
    read -r b n e secs <"$out" || die "$proxy: tunnel client printed nothing"
    VAL[$proxy/tunnel-1m]=$(awk -v b="$b" -v s="$secs" 'BEGIN { printf "%.1f", b / s / 1048576 }')
    ERR[$proxy/tunnel-1m]=$e
    P50[$proxy/tunnel-1m]=$NO_LATENCY
    P99[$proxy/tunnel-1m]=$NO_LATENCY
    CPU[$proxy/tunnel-1m]=$(cpu_us_per "$c0" "$c1" "$n")
}

bench_proxy() { # NAME
    run_wrk "$1" keepalive-1k "$TMP/keepalive-1k.lua" rps
    run_wrk "$1" close-1k "$TMP/close-1k.lua" rps
    run_wrk "$1" keepalive-1m "$TMP/keepalive-1m.lua" mib
    run_rate "$1"
    run_tunnel "$1"
    kill -0 "${PID[$1]}" 2>/dev/null || die "$1 died during the benchmark"
    RSS[$1]=$(tree_peak_rss_kib "${PID[$1]}")
}
for p in "${PROXIES[@]}"; do
    bench_proxy "$p"
done

# ---------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------
TESTS=(keepalive-1k close-1k keepalive-1m connect-rate tunnel-1m)
declare -A LABEL=(
    [keepalive-1k]="1 KiB GET, keep-alive"
    [close-1k]="1 KiB GET, new connection per request"
    [keepalive-1m]="1 MiB GET, keep-alive"
    [connect-rate]="CONNECT tunnels (open, 200, close)"
    [tunnel-1m]="1 MiB GET through a CONNECT tunnel"
)
declare -A UNIT=([keepalive-1k]=req/s [close-1k]=req/s [keepalive-1m]=MiB/s [connect-rate]=tunnels/s [tunnel-1m]=MiB/s)

# best_peer KEY... : "name value" of the peer with the highest (or, with BEST=min, lowest)
# numeric value in VAL[peer/KEY] (or RSS[peer] for KEY=rss).
best_peer() {
    local key=$1 p v
    for p in "${SELECTED[@]}"; do
        if [[ $key == rss ]]; then v=${RSS[$p]:-}; else v=${VAL[$p/$key]:-}; fi
        [[ $v =~ ^[0-9.]+$ ]] && echo "$p $v"
    done | sort -k2,2g | { if [[ ${BEST:-max} == min ]]; then head -n 1; else tail -n 1; fi; }
}

report() {
    local p t row bname bval
    local squid=${IS_PEER[squid]:-}
    echo "## Signpost vs $(for p in "${SELECTED[@]}"; do printf '%s %s, ' "${NAME[$p]}" "${VERSION[$p]}"; done | sed 's/, $//') (issue 8)"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), commit ${VERSION[signpost]}," \
        "$(nproc) CPUs, ${DURATION}s per run after a ${WARMUP}s warm-up, nginx origin on loopback." \
        "wrk rows: -t$THREADS -c$CONNECTIONS. CONNECT rate: $CONNECTIONS Python asyncio workers in $THREADS processes." \
        "Tunnel throughput: $STREAMS tunnels, one Python thread each. Every proxy logs every request."
    echo
    row="| test | unit |"
    for p in "${PROXIES[@]}"; do row+=" ${NAME[$p]} | p50 ms | p99 ms | CPU µs/req |"; done
    row+=" best peer | Signpost/best peer |"
    [[ -n $squid ]] && row+=" Signpost/Squid |"
    echo "$row"
    row="|---|---|"
    for p in "${PROXIES[@]}"; do row+="---:|---:|---:|---:|"; done
    row+="---|---:|"
    [[ -n $squid ]] && row+="---:|"
    echo "$row"
    for t in "${TESTS[@]}"; do
        row="| ${LABEL[$t]} | ${UNIT[$t]} |"
        for p in "${PROXIES[@]}"; do
            row+=" ${VAL[$p/$t]} | ${P50[$p/$t]} | ${P99[$p/$t]} | ${CPU[$p/$t]} |"
        done
        bname=n/a bval=""
        read -r bname bval < <(best_peer "$t") || true
        row+=" ${NAME[$bname]:-$bname} | $(ratio "${VAL[signpost/$t]}" "$bval") |"
        [[ -n $squid ]] && row+=" $(ratio "${VAL[signpost/$t]}" "${VAL[squid/$t]}") |"
        echo "$row"
    done
    row="| peak RSS (VmHWM) after all runs | MiB |"
    for p in "${PROXIES[@]}"; do row+=" $(mib "${RSS[$p]}" | cut -d' ' -f1) | | | |"; done
    bname=n/a bval=""
    read -r bname bval < <(BEST=min best_peer rss) || true
    row+=" ${NAME[$bname]:-$bname} (lowest) | $(ratio "${RSS[signpost]}" "$bval") |"
    [[ -n $squid ]] && row+=" $(ratio "${RSS[signpost]}" "${RSS[squid]}") |"
    echo "$row"
    echo
    echo "Higher is better in every row but the last; a ratio above 1 puts Signpost ahead (in the RSS row, below 1)." \
        "CPU µs/req: the proxy's CPU time (utime+stime, all threads and processes) during the measured run" \
        "divided by requests served; per tunnel in the CONNECT row, per 1 MiB response in the 1 MiB rows." \
        "p50/p99 come from wrk (– for the Python-driven CONNECT rows). CPU is counted in ticks of" \
        "1/$(getconf CLK_TCK) s, so short runs are coarse."
    echo
    if [[ -n $squid ]]; then
        row="- Signpost/Squid CPU per request (lower is better):"
        for t in "${TESTS[@]}"; do row+=" ${LABEL[$t]} $(ratio "${CPU[signpost/$t]}" "${CPU[squid/$t]}");"; done
        echo "${row%;}"
        row="- Signpost/Squid p99 (lower is better):"
        for t in keepalive-1k close-1k keepalive-1m; do
            row+=" ${LABEL[$t]} $(ratio "${P99[signpost/$t]}" "${P99[squid/$t]}");"
        done
        echo "${row%;}"
    fi
    local errors=""
    for p in "${PROXIES[@]}"; do
        for t in "${TESTS[@]}"; do
            [[ ${ERR[$p/$t]} == 0 ]] || errors+=" ${NAME[$p]}, ${LABEL[$t]}: ${ERR[$p/$t]};"
        done
    done
    echo "- errors (wrk: status >= 400 and socket errors; Python rows: failed tunnels):${errors:- none;}" | sed 's/;$//'
    if [[ -n ${IS_PEER[tinyproxy]:-} ]]; then
        echo "- tinyproxy closes each client connection after one response without saying so" \
            "(no \`Connection: close\`): in the keep-alive rows wrk's next request on it fails (a socket read" \
            "error) and wrk reconnects, so its keep-alive figures are really one-connection-per-request ones."
    fi
    row="- requests and tunnels in each access log at the end (warm-ups and checks included):"
    local lines
    for p in "${PROXIES[@]}"; do
        lines=$(grep -cE "${ACCESS_RE[$p]}" "${ACCESS_LOG[$p]}" 2>/dev/null) || true
        row+=" ${NAME[$p]} ${lines:-0};"
    done
    echo "${row%;}; decisions journaled by Signpost: $(sqlite_count "$TMP/signpost-state/journal.db")"
    echo "- set-ups:"
    for p in "${PROXIES[@]}"; do
        echo "  - ${NAME[$p]} ${VERSION[$p]}: ${SETUP[$p]}"
    done
    signpost_warnings "Signpost log lines at warn or above"
    local f
    for f in "$TMP"/client-*.err; do
        [[ -s $f ]] || continue
        echo "- client stderr, $(basename "$f" .err): $(sort "$f" | uniq -c | sort -rn | head -n 3 | tr '\n' ';')"
    done
}

echo
report | tee "${OUT:-/dev/null}"
