# Helpers shared by the load scripts in benches/ (sourced, not run).

log() { printf '==> %s\n' "$*" >&2; }
die() { printf '%s: %s\n' "${0##*/}" "$*" >&2; exit 1; }

# Is something listening on this loopback port?
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pick_port VAR FIRST: the first free port from FIRST (up to +99) not already taken by this
# script (ports handed out are remembered in $TAKEN), stored in VAR.
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
