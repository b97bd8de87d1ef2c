#!/usr/bin/env bash
# Issue 8 comparison: Signpost (journal on) against Squid, in one run, on loopback.
#
# Rows: 1 KiB GET keep-alive, 1 KiB GET with a new connection per request, 1 MiB GET
# throughput, CONNECT tunnels per second, and 1 MiB GETs through a CONNECT tunnel. Prints a
# Markdown table with the Signpost/Squid ratio per row and each proxy's peak RSS (VmHWM).
# Structure and helpers copied from benches/load.sh (not sourced, so each stands alone).
#
# Everything it starts is stopped by the EXIT trap; every wait is bounded in time.
set -euo pipefail
# Helpers shared with the other load scripts (sourced before any cd).
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    cat <<'EOF'
Usage: benches/compare.sh [--build] [-h | --help]

Signpost (journal on) vs Squid as forward proxies on 127.0.0.1. A local nginx serves /1k
(1024 bytes) and /1m (1 MiB). Rows:
  1 KiB GET keep-alive     wrk, persistent client connections              (req/s)
  1 KiB GET conn-close     wrk, "Connection: close"                        (req/s)
  1 MiB GET keep-alive     wrk, Transfer/sec                               (MiB/s)
  CONNECT tunnels          Python: CONNECT -> 200 -> close, WORKERS at once (tunnels/s)
  1 MiB GET via tunnel     Python: STREAMS tunnels, plain-HTTP GET /1m in each (MiB/s)
Each measured run follows an unreported 2 s warm-up.

Options:
  --build        run `cargo build --release` first (default: use target/release/signpost,
                 waiting up to 10 minutes for it to appear, building only if it never does)
  -h, --help     this text

Environment:
  DURATION=10       seconds per measured run
  THREADS=2         wrk threads (-t), and client processes for the CONNECT-rate run
  CONNECTIONS=50    wrk connections (-c), and concurrent workers for the CONNECT-rate run
  STREAMS=8         concurrent tunnels for the tunnel-throughput run
  OUT=FILE          also write the report to FILE
  KEEP_TMP=1        keep the temporary directory (configs, logs, raw output)
  ORIGIN_PORT=18280 SIGNPOST_PORT=18328 SQUID_PORT=18329
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

cd "$(dirname "$0")/.."
ROOT=$PWD
SIGNPOST_BIN=$ROOT/target/release/signpost


export PATH=$PATH:/usr/sbin:/sbin
[[ -d $HOME/.cargo/bin ]] && export PATH=$PATH:$HOME/.cargo/bin

need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v nginx >/dev/null 2>&1 || need+=(nginx-light)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v squid >/dev/null 2>&1 || need+=(squid)
if [[ ${#need[@]} -gt 0 ]]; then
    log "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v python3 >/dev/null 2>&1 || die "python3 is required for the CONNECT rows"

TMP=$(mktemp -d -t signpost-compare.XXXXXX)
PIDS=()
cleanup() {
    local rc=$? pid i
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ $rc -ne 0 ]]; then
        echo "compare.sh: failed (exit $rc)" >&2
        for f in "$TMP"/signpost.log "$TMP"/nginx/{error,stderr}.log "$TMP"/squid/{parse,cache}.log "$TMP"/client-*.err; do
            [[ -s $f ]] && { echo "--- $f (last 20 lines)" >&2; tail -n 20 "$f" >&2; }
        done
    fi
    if [[ ${KEEP_TMP:-0} == 1 ]]; then
        echo "compare.sh: kept $TMP" >&2
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
chmod 755 "$TMP"

TAKEN=" "

pick_port ORIGIN_PORT "${ORIGIN_PORT:-18280}"
pick_port SIGNPOST_PORT "${SIGNPOST_PORT:-18328}"
pick_port SQUID_PORT "${SQUID_PORT:-18329}"
ORIGIN=http://127.0.0.1:$ORIGIN_PORT

# ---------------------------------------------------------------------------------------
# 1. Binary: by default wait (bounded) for one another process may be building
# ---------------------------------------------------------------------------------------
if [[ $BUILD == 1 ]]; then
    log "cargo build --release"
    cargo build --release --quiet
else
    for ((i = 0; i < 600; i++)); do
        [[ -x $SIGNPOST_BIN ]] && break
        ((i % 60 == 0)) && log "waiting for $SIGNPOST_BIN (up to 10 min)"
        sleep 1
    done
    if [[ ! -x $SIGNPOST_BIN ]]; then
        log "$SIGNPOST_BIN still missing: cargo build --release"
        cargo build --release --quiet
    fi
fi
[[ -x $SIGNPOST_BIN ]] || die "$SIGNPOST_BIN missing"

# ---------------------------------------------------------------------------------------
# 2. Origin: nginx
# ---------------------------------------------------------------------------------------
mkdir -p "$TMP/www" "$TMP/nginx/tmp"
head -c 1024 /dev/zero | tr '\0' 'a' >"$TMP/www/1k"
head -c $((1024 * 1024)) /dev/urandom >"$TMP/www/1m"
chmod -R a+rX "$TMP/www"
cat >"$TMP/nginx/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    default_type application/octet-stream;
    client_body_temp_path $TMP/nginx/tmp;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    server {
        listen 127.0.0.1:$ORIGIN_PORT backlog=4096;
        root $TMP/www;
    }
}
EOF
nginx -t -q -e "$TMP/nginx/error.log" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf"
log "origin: nginx on 127.0.0.1:$ORIGIN_PORT"
nginx -e "$TMP/nginx/error.log" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" 2>"$TMP/nginx/stderr.log" &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
wait_until 100 nginx "$NGINX_PID" curl -sf -o /dev/null "$ORIGIN/1k"

# ---------------------------------------------------------------------------------------
# 3. Signpost, journal on; CONNECT allowed to the origin's (plain HTTP) port
# ---------------------------------------------------------------------------------------
mkdir -p "$TMP/signpost-state"
cat >"$TMP/signpost.toml" <<EOF
[proxy]
listen = "127.0.0.1:$SIGNPOST_PORT"
allow_clients = ["127.0.0.0/8"]
connect_ports = [$ORIGIN_PORT]

[coach]
secret_file = "$TMP/signpost-state/coach-secret"

[journal]
enabled = true
path = "$TMP/signpost-state/journal.db"
squid_log = "$TMP/signpost-state/access.log"

[admin]
enabled = false
EOF
"$SIGNPOST_BIN" check -c "$TMP/signpost.toml" >/dev/null
log "signpost on 127.0.0.1:$SIGNPOST_PORT (journal on)"
RUST_LOG=warn "$SIGNPOST_BIN" run -c "$TMP/signpost.toml" 2>"$TMP/signpost.log" &
SIGNPOST_PID=$!
PIDS+=("$SIGNPOST_PID")
wait_until 100 signpost "$SIGNPOST_PID" curl -sf -o /dev/null "http://127.0.0.1:$SIGNPOST_PORT/healthz"

# ---------------------------------------------------------------------------------------
# 4. Squid: no cache, access log on, one process; CONNECT allowed to the origin's port
# ---------------------------------------------------------------------------------------
S=$TMP/squid
mkdir -p "$S"
cat >"$S/squid.conf" <<EOF
http_port 127.0.0.1:$SQUID_PORT
acl localnet src 127.0.0.0/8
acl SSL_ports port $ORIGIN_PORT
acl CONNECT method CONNECT
http_access deny CONNECT !SSL_ports
http_access allow localnet
http_access deny all
cache deny all
cache_mem 0 MB
access_log stdio:$S/access.log
cache_log $S/cache.log
pid_filename $S/squid.pid
coredump_dir $S
cache_effective_user proxy
shutdown_lifetime 0 seconds
workers 1
visible_hostname signpost-bench
pinger_enable off
netdb_filename none
logfile_rotate 0
EOF
chown -R proxy:proxy "$S"
squid -k parse -f "$S/squid.conf" >"$S/parse.log" 2>&1 ||
    { cat "$S/parse.log" >&2; die "squid.conf rejected"; }
SQUID_VERSION=$(squid -v | awk 'NR == 1 { print $4 }')
log "squid $SQUID_VERSION on 127.0.0.1:$SQUID_PORT"
squid -N -f "$S/squid.conf" >>"$S/stdout.log" 2>&1 &
SQUID_PID=$!
PIDS+=("$SQUID_PID")
wait_until 200 squid "$SQUID_PID" curl -sf -o /dev/null -x "http://127.0.0.1:$SQUID_PORT" "$ORIGIN/1k"

# ---------------------------------------------------------------------------------------
# Sanity: both files intact, plain and through a CONNECT tunnel
# ---------------------------------------------------------------------------------------
check_proxy() { # NAME PORT
    local f got
    for f in 1k 1m; do
        got=$(curl -sf -x "http://127.0.0.1:$2" "$ORIGIN/$f" | cksum) || die "$1: GET /$f failed"
        [[ $got == "$(cksum <"$TMP/www/$f")" ]] || die "$1: /$f came back altered"
        got=$(curl -sf --proxytunnel -x "http://127.0.0.1:$2" "$ORIGIN/$f" | cksum) ||
            die "$1: GET /$f through a CONNECT tunnel failed"
        [[ $got == "$(cksum <"$TMP/www/$f")" ]] || die "$1: /$f came back altered through a tunnel"
    done
}
check_proxy signpost "$SIGNPOST_PORT"
check_proxy squid "$SQUID_PORT"

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

# wrk's error summary: "status>=400: N socket: read=N ..." or 0.
wrk_errors() {
    local sock non2xx
    sock=$(awk -F'[:,]' '/Socket errors:/ {
        for (i = 2; i <= NF; i++) { split($i, kv, " "); if (kv[2] > 0) s = s kv[1] "=" kv[2] " " }
        } END { print s }' "$1")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$1")
    if [[ -n $sock || -n $non2xx ]]; then
        local e="${non2xx:+status>=400: $non2xx }${sock:+socket: $sock}"
        echo "${e% }"
    else
        echo 0
    fi
}

declare -A VAL ERR
# run_wrk PROXY TEST PORT LUA METRIC(rps|mib)
run_wrk() {
    local proxy=$1 test=$2 port=$3 lua=$4 metric=$5 out
    local args=(-t"$THREADS" -c"$CONNECTIONS" -s "$lua")
    out=$TMP/wrk-$proxy-$test.txt
    log "$proxy $test: warm-up ${WARMUP}s, then ${DURATION}s"
    timeout $((WARMUP + 30)) wrk "${args[@]}" -d"${WARMUP}s" "http://127.0.0.1:$port" >/dev/null
    timeout $((DURATION + 30)) wrk "${args[@]}" -d"${DURATION}s" "http://127.0.0.1:$port" >"$out"
    local v
    if [[ $metric == rps ]]; then
        v=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")
    else
        v=$(to_mib "$(awk '/^Transfer\/sec:/ { print $2 }' "$out")")
    fi
    [[ -n $v ]] || { cat "$out" >&2; die "could not parse wrk output"; }
    VAL[$proxy/$test]=$v
    ERR[$proxy/$test]=$(wrk_errors "$out")
}

# run_rate PROXY PORT: CONNECT tunnels per second
run_rate() {
    local proxy=$1 port=$2 out=$TMP/rate-$1.txt n e secs
    log "$proxy connect-rate: warm-up ${WARMUP}s, then ${DURATION}s"
    timeout $((WARMUP + 60)) python3 "$TMP/tunnel_client.py" rate "$port" "$ORIGIN_PORT" "$WARMUP" \
        "$CONNECTIONS" "$THREADS" >/dev/null 2>>"$TMP/client-$proxy.err"
    timeout $((DURATION + 60)) python3 "$TMP/tunnel_client.py" rate "$port" "$ORIGIN_PORT" "$DURATION" \
        "$CONNECTIONS" "$THREADS" >"$out" 2>>"$TMP/client-$proxy.err"
    read -r n e secs <"$out" || die "$proxy: CONNECT-rate client printed nothing"
    VAL[$proxy/connect-rate]=$(awk -v n="$n" -v s="$secs" 'BEGIN { printf "%.0f", n / s }')
    ERR[$proxy/connect-rate]=$e
}

# run_tunnel PROXY PORT: 1 MiB GETs through STREAMS CONNECT tunnels, MiB/s
run_tunnel() {
    local proxy=$1 port=$2 out=$TMP/tunnel-$1.txt b n e secs
    log "$proxy tunnel-1m: warm-up ${WARMUP}s, then ${DURATION}s"
    timeout $((WARMUP + 60)) python3 "$TMP/tunnel_client.py" bytes "$port" "$ORIGIN_PORT" "$WARMUP" \
        "$STREAMS" /1m >/dev/null 2>>"$TMP/client-$proxy.err"
    timeout $((DURATION + 60)) python3 "$TMP/tunnel_client.py" bytes "$port" "$ORIGIN_PORT" "$DURATION" \
        "$STREAMS" /1m >"$out" 2>>"$TMP/client-$proxy.err"
    read -r b n e secs <"$out" || die "$proxy: tunnel client printed nothing"
    VAL[$proxy/tunnel-1m]=$(awk -v b="$b" -v s="$secs" 'BEGIN { printf "%.1f", b / s / 1048576 }')
    ERR[$proxy/tunnel-1m]=$e
}

declare -A RSS
bench_proxy() { # NAME PORT PID
    run_wrk "$1" keepalive-1k "$2" "$TMP/keepalive-1k.lua" rps
    run_wrk "$1" close-1k "$2" "$TMP/close-1k.lua" rps
    run_wrk "$1" keepalive-1m "$2" "$TMP/keepalive-1m.lua" mib
    run_rate "$1" "$2"
    run_tunnel "$1" "$2"
    kill -0 "$3" 2>/dev/null || die "$1 died during the benchmark"
    RSS[$1]=$(peak_rss_kib "$3")
}
bench_proxy signpost "$SIGNPOST_PORT" "$SIGNPOST_PID"
bench_proxy squid "$SQUID_PORT" "$SQUID_PID"

# ---------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------

report() {
    echo "## Signpost vs Squid (issue 8)"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)," \
        "$(nproc) CPUs, ${DURATION}s per run after a ${WARMUP}s warm-up, nginx origin on loopback." \
        "wrk rows: -t$THREADS -c$CONNECTIONS. CONNECT rate: $CONNECTIONS Python asyncio workers in $THREADS processes." \
        "Tunnel throughput: $STREAMS tunnels, one Python thread each."
    echo "Signpost: journal on (SQLite + Squid-format log), RUST_LOG=warn. Squid $SQUID_VERSION: no cache, access log on, workers 1."
    echo
    echo "| test | unit | Signpost | Squid | Signpost/Squid | errors (Signpost / Squid) |"
    echo "|---|---|---:|---:|---:|---|"
    local t unit label
    for t in keepalive-1k close-1k keepalive-1m connect-rate tunnel-1m; do
        case $t in
            keepalive-1k) label="1 KiB GET, keep-alive"; unit="req/s" ;;
            close-1k) label="1 KiB GET, new connection per request"; unit="req/s" ;;
            keepalive-1m) label="1 MiB GET, keep-alive"; unit="MiB/s" ;;
            connect-rate) label="CONNECT tunnels (open, 200, close)"; unit="tunnels/s" ;;
            tunnel-1m) label="1 MiB GET through a CONNECT tunnel"; unit="MiB/s" ;;
        esac
        echo "| $label | $unit | ${VAL[signpost/$t]} | ${VAL[squid/$t]} | $(ratio "${VAL[signpost/$t]}" "${VAL[squid/$t]}") | ${ERR[signpost/$t]} / ${ERR[squid/$t]} |"
    done
    echo "| peak RSS (VmHWM) after all runs | MiB | $(mib "${RSS[signpost]}" | cut -d' ' -f1) | $(mib "${RSS[squid]}" | cut -d' ' -f1) | $(ratio "${RSS[signpost]}" "${RSS[squid]}") | |"
    echo
    echo "- decisions journaled by Signpost: $(sqlite_count "$TMP/signpost-state/journal.db")"
    local warnings
    warnings=$(grep -c . "$TMP/signpost.log" || true)
    echo "- Signpost log lines at warn or above: $warnings"
    if [[ $warnings -gt 0 ]]; then
        echo
        echo '```'
        sed -E 's/^[^ ]+ +//' "$TMP/signpost.log" | sort | uniq -c | sort -rn | head -n 10
        echo '```'
    fi
    local f
    for f in "$TMP"/client-*.err; do
        [[ -s $f ]] || continue
        echo "- client stderr, $(basename "$f" .err): $(sort "$f" | uniq -c | sort -rn | head -n 3 | tr '\n' ';')"
    done
}

echo
report | tee "${OUT:-/dev/null}"
