#!/bin/sh
# What keeping the search index costs the daemon: the exec storm of
# bench/storm.sh (shell loops of /bin/true on every CPU under an execve and
# exit_group rule, half of them in containers) read by contid as the
# kernel's audit daemon, with search_index on and off, alternately, ROUNDS
# times (default 5) for SECONDS each (default 30). Prints each run's CPU
# time per 1,000 events, then the medians and the index's share of the
# daemon's CPU. The difference of two noisy medians can hide a small cost,
# so a last run with the index on takes a CPU profile of the daemon and
# reports the share of its samples spent in the index (internal/search:
# noting records, indexing lines, writing sidecars). Root; installs
# nothing.
#
#   bench/index-cost.sh [SECONDS] [ROUNDS]
set -eu
S=${1:-30}
R=${2:-5}
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "index-cost.sh: run as root" >&2; exit 1; }
command -v auditctl >/dev/null || { echo "index-cost.sh: auditctl is not installed" >&2; exit 1; }
# Kernel audit is global: hold the lock the tests take (audittest), so
# that they wait rather than meet this daemon.
exec 9>/run/contid-audit-test.lock
flock 9
if [ "$(auditctl -s | awk '$1 == "pid" {print $2}')" != 0 ]; then
	echo "index-cost.sh: an audit daemon is registered; stop it first" >&2
	exit 1
fi
T=$(mktemp -d)
chmod 755 "$T"
state=$(auditctl -s)
pid=
cleanup() {
	[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
	auditctl -D >/dev/null 2>&1 || true
	auditctl -e "$(echo "$state" | awk '$1 == "enabled" {print $2}')" >/dev/null
	auditctl -b "$(echo "$state" | awk '$1 == "backlog_limit" {print $2}')" >/dev/null
	rm -rf "$T" /sys/fs/bpf/contid-index-cost
}
trap cleanup EXIT INT TERM
CGO_ENABLED=0 go build -o "$T/contid" ./cmd/contid
printf -- '-a always,exit -F arch=b64 -S execve -F key=storm\n-a always,exit -F arch=b64 -S exit_group -F key=storm\n' > "$T/rules"
ncpu=$(nproc)
ticks=$(getconf CLK_TCK)

# cpu PID: user+system clock ticks of the process (all its threads).
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }

storm() {
	i=0
	jobs=""
	while [ $i -lt "$ncpu" ]; do
		if [ $((i % 2)) = 0 ]; then
			CONTID_SOCKET=$T/s.sock "$T/contid" exec --contid $((100 + i)) -- timeout "$S" sh -c 'while :; do /bin/true; done' &
		else
			timeout "$S" sh -c 'while :; do /bin/true; done' &
		fi
		jobs="$jobs $!"
		i=$((i + 1))
	done
	for j in $jobs; do wait "$j" || true; done
	sleep 3 # let the reader drain
}

# run on|off: one storm; appends "ms-per-1000-events" to $T/on or $T/off.
run() {
	idx=true
	[ "$1" = off ] && idx=false
	rm -rf "$T/logs" /sys/fs/bpf/contid-index-cost
	# storm.sh's log settings, with the host log rotating at its default
	# size so that rotations (and final sidecars) happen too.
	printf 'search_index = %s\n[log]\nflush = "incremental_async"\nfreq = 50\n[containers]\nmax_log_file_action = "ignore"\n' "$idx" > "$T/contid.toml"
	"$T/contid" daemon --config "$T/contid.toml" --log-dir "$T/logs" --socket "$T/s.sock" --pin-dir /sys/fs/bpf/contid-index-cost \
		--audit primary --audit-rules "$T/rules" --log-level warn ${PROFILE:+--cpu-profile "$PROFILE"} 2>"$T/contid.err" &
	pid=$!
	until CONTID_SOCKET=$T/s.sock "$T/contid" status >/dev/null 2>&1; do sleep 0.1; done
	c0=$(cpu "$pid")
	storm
	c1=$(cpu "$pid")
	CONTID_SOCKET=$T/s.sock "$T/contid" status > "$T/status"
	kill -TERM "$pid"; wait "$pid" || true
	pid=
	ev=$(awk '$1 == "audit_events:" {print $2}' "$T/status")
	sidecars=$(ls "$T/logs/.contid-index" 2>/dev/null | wc -l)
	awk -v n="$1" -v c=$((c1 - c0)) -v e="$ev" -v t="$ticks" -v s="$sidecars" 'BEGIN {
		printf "index %-3s %8d events  %6.2f s CPU  %6.2f ms CPU per 1,000 events  (%d sidecars)\n", n, e, c / t, 1e6 * c / t / e, s }'
	awk -v c=$((c1 - c0)) -v e="$ev" -v t="$ticks" 'BEGIN { printf "%.4f\n", 1e6 * c / t / e }' >> "$T/$1"
}

median() { sort -n "$1" | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

echo "== contid (primary), index on and off alternately, $R rounds of $S s"
r=0
while [ $r -lt "$R" ]; do
	if [ $((r % 2)) = 0 ]; then run on; run off; else run off; run on; fi
	r=$((r + 1))
done
on=$(median "$T/on"); off=$(median "$T/off")
awk -v on="$on" -v off="$off" 'BEGIN {
	printf "\nmedian ms CPU per 1,000 events: index on %.2f, off %.2f; the index costs %.1f%% of the daemon'"'"'s CPU\n", on, off, 100 * (on - off) / on }'

PROFILE=$T/cpu.prof run on >/dev/null
go tool pprof -top -nodecount 100000 -focus 'internal/search\.' "$T/contid" "$T/cpu.prof" 2>/dev/null |
	awk '/Showing nodes accounting for/ { gsub(/,/, ""); printf "CPU profile of a run with the index on: the index takes %s of the daemon'"'"'s samples (%s of %s)\n", $6, $5, $8 }'
