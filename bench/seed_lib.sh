# shellcheck shell=bash
# seed_lib.sh - what run_memory.sh, run_http.sh and plot.sh share: the
# header every table starts with, installing a missing Debian package,
# picking a free port on 127.0.0.1 and bounded waits. Sourced, not run.

SEED_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SEED_APT_UPDATED=0

# seed_header "$0 $*": the command line, machine and date, as comments.
seed_header() {
    echo "# command: $1"
    echo "# machine: nproc $(nproc), $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), Linux $(uname -r)"
    echo "# date: $(date -Iseconds)"
    echo "# load average (1/5/15 min) at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
}

# seed_need COMMAND PACKAGE: installs PACKAGE from Debian when COMMAND is
# missing (as root; apt-get update once per script).
seed_need() {
    command -v "$1" >/dev/null 2>&1 && return 0
    if [ "$(id -u)" != 0 ]; then
        echo "$1 is missing: apt-get install -y $2 (as root)" >&2
        return 1
    fi
    if [ "$SEED_APT_UPDATED" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        SEED_APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >&2
}

# seed_build TARGET...: configures and builds the given targets in build/.
seed_build() {
    (cd "$SEED_ROOT" && cmake -S . -B build >/dev/null &&
        cmake --build build -j2 --target "$@" >/dev/null)
}

# seed_free_port: prints a TCP port that nothing listens on at 127.0.0.1
# (up to 200 random tries; a race with another program is possible, and
# the server's own start check then fails).
seed_free_port() {
    local port listening
    listening=$(ss -Htln | awk '{print $4}' | sed 's/.*://')
    for _ in $(seq 1 200); do
        port=$((20000 + RANDOM % 40000))
        if ! grep -qx "$port" <<<"$listening"; then
            echo "$port"
            return 0
        fi
    done
    echo "no free port found" >&2
    return 1
}

# seed_wait SECONDS COMMAND...: runs COMMAND until it succeeds, at most
# SECONDS and 100,000 tries; returns 1 when it never did. Each try is a
# real check (a ping, a request), so this waits on the server, not a clock.
seed_wait() {
    local until=$((SECONDS + $1)) tries=0
    shift
    until "$@" >/dev/null 2>&1; do
        tries=$((tries + 1))
        if [ $SECONDS -ge $until ] || [ $tries -ge 100000 ]; then
            return 1
        fi
    done
}

# seed_read_line SECONDS FD PATTERN: reads lines from FD until one matches
# PATTERN (grep -E), up to SECONDS; prints it. Returns 1 on timeout or EOF.
seed_read_line() {
    local until=$((SECONDS + $1)) line left
    while left=$((until - SECONDS)) && [ $left -gt 0 ] && IFS= read -r -t "$left" -u "$2" line; do
        if grep -qE "$3" <<<"$line"; then
            echo "$line"
            return 0
        fi
    done
    return 1
}

# seed_kill PID...: stops each process the script started, by its id:
# SIGTERM, then SIGKILL if it has not exited within 5 s.
seed_kill() {
    local pid
    for pid in "$@"; do
        if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
            continue
        fi
        kill "$pid" 2>/dev/null || continue
        timeout 5 tail --pid="$pid" -s 0.05 -f /dev/null || kill -9 "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null || true
    done
    return 0
}
