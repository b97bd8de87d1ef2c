# Helpers shared by the load scripts in benches/ (sourced, not run).
# shellcheck shell=bash

log() { printf '==> %s\n' "$*" >&2; }
die() { printf '%s: %s\n' "${0##*/}" "$*" >&2; exit 1; }

# apt_install PACKAGE...: installs the Debian packages (nothing when none is given). The
# services they ship (a system nginx or Squid, Privoxy, tinyproxy, e2guardian and the ClamAV
# daemons e2guardian depends on) would compete for the CPU during the runs: unless a
# policy-rc.d is already there, one tells invoke-rc.d/deb-systemd-invoke not to start them,
# for this install only.
apt_install() {
    (($# > 0)) || return 0
    log "installing $*"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    if [[ -e /usr/sbin/policy-rc.d ]]; then
        apt-get install -y -qq "$@" >/dev/null
    else
        (
            trap 'rm -f /usr/sbin/policy-rc.d' EXIT
            trap 'exit 130' INT
            trap 'exit 143' TERM
            printf '#!/bin/sh\n# benches/%s: no service starts while it installs\nexit 101\n' "${0##*/}" \
                >/usr/sbin/policy-rc.d
            chmod 755 /usr/sbin/policy-rc.d
            apt-get install -y -qq "$@" >/dev/null
        )
    fi
}

# Is something listening on this loopback port?
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pick_port VAR FIRST: the first free port from FIRST (up to +99) not already taken by this
# script (ports handed out are remembered in $TAKEN), stored in VAR. Not in $(...): TAKEN
# must persist.
TAKEN=" "
pick_port() {
    local p
    for ((p = $2; p < $2 + 100; p++)); do
        if [[ $TAKEN != *" $p "* ]] && ! port_busy "$p"; then
            TAKEN+="$p "
            printf -v "$1" '%s' "$p"
            return 0
        fi
    done
    die "no free port in $2..$(($2 + 99))"
}

# wait_until TRIES WHAT PID COMMAND...: retries COMMAND every 0.1 s while PID lives.
wait_until() {
    local tries=$1 what=$2 pid=$3 i
    shift 3
    for ((i = 0; i < tries; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        kill -0 "$pid" 2>/dev/null || die "$what exited during startup"
        sleep 0.1
    done
    die "$what not ready after $((tries / 10)) s"
}

peak_rss_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "n/a" }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }
# Counted by Python's sqlite3 module (always there with python3), not a sqlite3 binary.
sqlite_count() { python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from decisions").fetchone()[0])' "$1" 2>/dev/null || echo n/a; }

# utime+stime of PID in clock ticks (fields 14 and 15 of /proc/PID/stat; all threads).
# The comm field may contain spaces, so count fields after its closing parenthesis.
cpu_ticks() {
    local stat
    stat=$(<"/proc/$1/stat") || die "process $1 is gone"
    stat=${stat##*) }
    awk '{ print $12 + $13 }' <<<"$stat"
}

# PID and every live process below it, one per line (for daemons that fork helpers).
proc_tree() {
    ps -e -o pid=,ppid= | awk -v root="$1" '{ parent[$1] = $2 } END {
        n = 1; list[1] = root; print root
        for (i = 1; i <= n; i++) for (p in parent) if (parent[p] == list[i]) { list[++n] = p; print p }
    }'
}

# cpu_ticks summed over proc_tree PID; PID itself must be alive, helpers may come and go.
tree_cpu_ticks() {
    local p t sum
    sum=$(cpu_ticks "$1")
    for p in $(proc_tree "$1" | tail -n +2); do
        t=$( (cpu_ticks "$p") 2>/dev/null) && sum=$((sum + t))
    done
    echo "$sum"
}

# Peak RSS (VmHWM) in KiB summed over proc_tree PID.
tree_peak_rss_kib() {
    local p k sum=0
    for p in $(proc_tree "$1"); do
        k=$(peak_rss_kib "$p" 2>/dev/null) && sum=$((sum + ${k:-0}))
    done
    echo "$sum"
}

# CPU microseconds per unit of work: cpu_us_per TICKS_BEFORE TICKS_AFTER COUNT.
cpu_us_per() {
    awk -v d=$(($2 - $1)) -v hz="$(getconf CLK_TCK)" -v n="$3" \
        'BEGIN { if (n + 0 > 0) printf "%.1f", d / hz * 1e6 / n; else print "n/a" }'
}

# wrk prints latencies as 850.00us, 1.23ms, 1.02s or 2.00m; convert to milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        if (v == "") { print "n/a"; exit }
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
        printf "%.2f", n
    }'
}

# wrk's error summary: "status>=400: N socket: read=N ..." or 0. wrk prints "Socket errors:
# connect 0, read 0, write 0, timeout 0" only when one is non-zero, and counts responses
# with status >= 400 as "Non-2xx or 3xx".
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

# signpost_warnings TEXT: the report line "- TEXT: N", N the lines in $TMP/signpost.log
# (Signpost runs at RUST_LOG=warn), then, if any, its ten most frequent messages (timestamps
# dropped) in a fenced block: the same message repeated thousands of times says no more
# than a few copies.
signpost_warnings() {
    local n
    n=$(grep -c . "$TMP/signpost.log" || true)
    echo "- $1: $n"
    if [[ $n -gt 0 ]]; then
        echo
        echo '```'
        sed -E 's/^[^ ]+ +//' "$TMP/signpost.log" | sort | uniq -c | sort -rn | head -n 10
        echo '```'
    fi
}

# start_origin KEEPALIVE_TIMEOUT: nginx on 127.0.0.1:$ORIGIN_PORT serving $TMP/www/1k (1024
# bytes) and $TMP/www/1m (1 MiB), with no access log and one worker (the proxy under test
# and its client share the few cores). Adds its PID to PIDS and waits until it serves.
start_origin() {
    mkdir -p "$TMP/www" "$TMP/nginx/tmp"
    head -c 1024 /dev/zero | tr '\0' 'a' >"$TMP/www/1k"
    head -c $((1024 * 1024)) /dev/urandom >"$TMP/www/1m"
    chmod -R a+rX "$TMP/www"
    cat >"$TMP/nginx/nginx.conf" <<NGINXEOF
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
    # The proxies keep pooled connections to the origin; let the origin keep them too, so
    # we measure the proxies and not nginx's default recycling every 1000 requests.
    keepalive_requests 1000000;
    keepalive_timeout $1;
    server {
        listen 127.0.0.1:$ORIGIN_PORT backlog=4096;
        root $TMP/www;
    }
}
NGINXEOF
    nginx -t -q -e "$TMP/nginx/error.log" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf"
    log "origin: nginx on 127.0.0.1:$ORIGIN_PORT"
    nginx -e "$TMP/nginx/error.log" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" 2>"$TMP/nginx/stderr.log" &
    NGINX_PID=$!
    PIDS+=("$NGINX_PID")
    wait_until 100 nginx "$NGINX_PID" curl -sf -o /dev/null "http://127.0.0.1:$ORIGIN_PORT/1k"
}

# signpost_config FILE PORT STATE JOURNAL [PROXY_LINES]: a Signpost config in FILE listening
# on 127.0.0.1:PORT for 127.0.0.0/8, its state (coach secret, journal, Squid-format access
# log) in STATE, the journal on or off (JOURNAL true or false), the admin listener off, and
# PROXY_LINES added to [proxy]. Checked with `signpost check`.
signpost_config() {
    mkdir -p "$3"
    cat >"$1" <<EOF
[proxy]
listen = "127.0.0.1:$2"
allow_clients = ["127.0.0.0/8"]
${5:-}
[coach]
secret_file = "$3/coach-secret"

[journal]
enabled = $4
path = "$3/journal.db"
squid_log = "$3/access.log"

[admin]
enabled = false
EOF
    "$SIGNPOST_BIN" check -c "$1" >/dev/null
}

# start_signpost NAME PORT [RUST_LOG]: runs Signpost with $TMP/NAME.toml, stderr to
# $TMP/NAME.log, at RUST_LOG=warn by default (no per-request logging, but warnings and
# errors land in the log); adds its PID to PIDS (last, so ${PIDS[-1]}) and waits until
# 127.0.0.1:PORT/healthz answers.
start_signpost() {
    RUST_LOG=${3:-warn} "$SIGNPOST_BIN" run -c "$TMP/$1.toml" 2>"$TMP/$1.log" &
    PIDS+=("$!")
    wait_until 100 "$1" "$!" curl -sf -o /dev/null "http://127.0.0.1:$2/healthz"
}

# squid_conf DIR PORT [CONNECT_PORT]: DIR/squid.conf for Squid as the scripts measure it, a
# pure forwarding proxy on 127.0.0.1:PORT for 127.0.0.0/8 (nothing cached, access log on,
# one process as user proxy, no helpers), CONNECT allowed only to CONNECT_PORT when given.
# DIR goes to user proxy; the config is checked with `squid -k parse` (output in parse.log).
squid_conf() {
    local connect=""
    [[ -n ${3:-} ]] && connect="acl SSL_ports port $3
acl CONNECT method CONNECT
http_access deny CONNECT !SSL_ports"
    mkdir -p "$1"
    cat >"$1/squid.conf" <<EOF
http_port 127.0.0.1:$2
acl localnet src 127.0.0.0/8
$connect
http_access allow localnet
http_access deny all
# A pure forwarding proxy, like Signpost: nothing is cached.
cache deny all
cache_mem 0 MB
# Access log ON, as Signpost's journal is on.
access_log stdio:$1/access.log
cache_log $1/cache.log
pid_filename $1/squid.pid
coredump_dir $1
cache_effective_user proxy
shutdown_lifetime 0 seconds
workers 1
# Keep Squid from touching system paths or starting helpers we do not measure.
visible_hostname signpost-bench
pinger_enable off
netdb_filename none
logfile_rotate 0
EOF
    # The log files are opened after Squid drops to user proxy.
    chown -R proxy:proxy "$1"
    squid -k parse -f "$1/squid.conf" >"$1/parse.log" 2>&1 || die "squid.conf rejected"
}

# await_binary: waits up to 10 minutes for $SIGNPOST_BIN (another build may be making it),
# then builds it if it never appears.
await_binary() {
    local i
    for ((i = 0; i < 600; i++)); do
        [[ -x $SIGNPOST_BIN ]] && break
        ((i % 60 == 0)) && log "waiting for $SIGNPOST_BIN (up to 10 min)"
        sleep 1
    done
    if [[ ! -x $SIGNPOST_BIN ]]; then
        log "$SIGNPOST_BIN still missing: cargo build --release"
        cargo build --release --quiet
    fi
    [[ -x $SIGNPOST_BIN ]] || die "$SIGNPOST_BIN missing"
}

# stop_started: SIGTERM to every PID in PIDS, 5 s for each to go, then SIGKILL and reap.
stop_started() {
    local pid i
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
}

# start_scratch NAME: $TMP, a fresh directory signpost-NAME.XXXXXX (searchable, for nginx's
# and the peers' unprivileged users), and the EXIT trap, cleanup. Whatever the script starts
# goes in PIDS (or KILL_PIDS, for processes that ignore SIGTERM); the logs worth showing when
# the run fails go in LOGS.
start_scratch() {
    TMP=$(mktemp -d -t "signpost-$1.XXXXXX")
    PIDS=() KILL_PIDS=() LOGS=()
    trap cleanup EXIT
    # Ctrl-C or a kill: leave through the EXIT trap so everything is stopped. Bash runs the
    # trap once the current foreground command (at worst one client run) has returned.
    trap 'exit 130' INT
    trap 'exit 143' TERM
    chmod 755 "$TMP"
}

# cleanup: stops exactly the processes the script started, by PID (KILL_PIDS with SIGKILL at
# once, then stop_started); on failure shows the last 20 lines of each non-empty file in
# LOGS; removes $TMP unless KEEP_TMP=1; exits with the script's status.
cleanup() {
    local rc=$? pid f
    trap - EXIT INT TERM
    # (bash's "Killed" notices for the reaped jobs go to /dev/null too)
    {
        for pid in "${KILL_PIDS[@]}"; do
            kill -KILL "$pid" || true
        done
        stop_started
    } 2>/dev/null
    if [[ $rc -ne 0 ]]; then
        echo "${0##*/}: failed (exit $rc)" >&2
        for f in "${LOGS[@]}"; do
            [[ -s $f ]] && { echo "--- $f (last 20 lines)" >&2; tail -n 20 "$f" >&2; }
        done
    fi
    if [[ ${KEEP_TMP:-0} == 1 ]]; then
        echo "${0##*/}: kept $TMP" >&2
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
