#!/bin/sh
# Exec storm: shell loops of /bin/true on every CPU for SECONDS
# (default 60) under an execve and exit_group rule, read by
#   1. contid as the kernel's audit daemon (host and container logs; half
#      the loops run in a container);
#   2. auditd alone (RAW log, as shipped: incremental_async);
#   3. auditd with laurel as its plugin (Debian's package);
# one after the other on this machine. Prints each reader's CPU time per
# 1,000 events, contid's against auditd's as a ratio, and for contid the
# kernel's lost delta and the serial gaps (both must be 0). Root; installs
# nothing (scripts/test installs auditd, laurel comes from `apt-get install
# laurel`). Usage: bench/storm.sh [SECONDS]
set -eu
S=${1:-60}
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "storm.sh: run as root" >&2; exit 1; }
for c in auditd auditctl laurel; do
	command -v $c >/dev/null || { echo "storm.sh: $c is not installed" >&2; exit 1; }
done
if [ "$(auditctl -s | awk '$1 == "pid" {print $2}')" != 0 ]; then
	echo "storm.sh: an audit daemon is registered; stop it first" >&2
	exit 1
fi
T=$(mktemp -d)
chmod 755 "$T"
state=$(auditctl -s)
cleanup() {
	pkill -TERM -f "$T/contid daemon" 2>/dev/null || true
	[ -f "$T/auditd.pid" ] && kill "$(cat "$T/auditd.pid")" 2>/dev/null || true
	sleep 1
	auditctl -D >/dev/null 2>&1 || true
	auditctl -e "$(echo "$state" | awk '$1 == "enabled" {print $2}')" >/dev/null
	auditctl -b "$(echo "$state" | awk '$1 == "backlog_limit" {print $2}')" >/dev/null
	rm -rf "$T" /sys/fs/bpf/contid-storm
}
trap cleanup EXIT INT TERM
CGO_ENABLED=0 go build -o "$T/contid" ./cmd/contid
printf -- '-a always,exit -F arch=b64 -S execve -F key=storm\n-a always,exit -F arch=b64 -S exit_group -F key=storm\n' > "$T/rules"
ncpu=$(nproc)
ticks=$(getconf CLK_TCK)

# cpu PID...: user+system clock ticks of the processes (all their threads).
cpu() { for p in "$@"; do awk '{print $14 + $15}' "/proc/$p/stat"; done | awk '{s += $1} END {print s}'; }
lost() { auditctl -s | awk '$1 == "lost" {print $2}'; }

# storm: one loop per CPU for S seconds; with CONTAINED, half of them
# in contid containers.
storm() {
	i=0
	jobs=""
	while [ $i -lt "$ncpu" ]; do
		if [ -n "${CONTAINED:-}" ] && [ $((i % 2)) = 0 ]; then
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

report() { # name cpu-ticks events
	awk -v n="$1" -v c="$2" -v e="$3" -v t="$ticks" 'BEGIN {
		printf "%-14s %8d events  %7.2f s CPU  %6.1f ms CPU per 1,000 events\n", n, e, c / t, 1e6 * c / t / e }'
}

echo "== contid (primary), $S s"
# The same log settings as auditd's below: no size limit, auditd's flush.
printf '[log]\nmax_log_file_action = "ignore"\nflush = "incremental_async"\nfreq = 50\n[containers]\nmax_log_file_action = "ignore"\n' > "$T/contid.toml"
"$T/contid" daemon --config "$T/contid.toml" --log-dir "$T/contid-logs" --socket "$T/s.sock" --pin-dir /sys/fs/bpf/contid-storm \
	--audit primary --audit-rules "$T/rules" --log-level warn ${CONTID_CPU_PROFILE:+--cpu-profile "$CONTID_CPU_PROFILE"} 2>"$T/contid.err" &
until CONTID_SOCKET=$T/s.sock "$T/contid" status >/dev/null 2>&1; do sleep 0.1; done
pid=$(pgrep -f "$T/contid daemon")
l0=$(lost); c0=$(cpu "$pid")
CONTAINED=1 storm
c1=$(cpu "$pid"); l1=$(lost)
CONTID_SOCKET=$T/s.sock "$T/contid" status > "$T/status" || { echo "contid status failed:" >&2; cat "$T/contid.err" >&2; exit 1; }
kill -TERM "$pid"; wait "$pid" || true
ev=$(awk '$1 == "audit_events:" {print $2}' "$T/status")
gaps=$(awk '$1 == "audit_gaps:" {print $2}' "$T/status")
unknown=$(awk '$1 == "audit_unknown_subject:" {print $2}' "$T/status")
contid_cpu=$((c1 - c0)); contid_ev=$ev
report contid $contid_cpu "$ev"
echo "contid: kernel lost delta $((l1 - l0)), serial gaps $gaps, subjects not placed $unknown"

# auditd_run NAME PLUGIN_DIR: auditd -n with the rules, its CPU (and its
# plugins') over the storm.
auditd_run() {
	mkdir -p "$T/$1"
	printf 'log_file = %s/%s/audit.log\nlog_format = RAW\nflush = INCREMENTAL_ASYNC\nfreq = 50\nmax_log_file_action = ignore\nspace_left = 2\nadmin_space_left = 1\nplugin_dir = %s\n' "$T" "$1" "$2" > "$T/$1/auditd.conf"
	chmod 600 "$T/$1/auditd.conf"
	auditd -n -c "$T/$1" & echo $! > "$T/auditd.pid"
	until [ "$(auditctl -s | awk '$1 == "pid" {print $2}')" = "$(cat "$T/auditd.pid")" ]; do sleep 0.1; done
	auditctl -R "$T/rules" >/dev/null
	sleep 1
	pids="$(cat "$T/auditd.pid") $(pgrep -P "$(cat "$T/auditd.pid")" || true)"
	c0=$(cpu $pids)
	storm
	c1=$(cpu $pids)
	auditctl -D >/dev/null
	kill -TERM "$(cat "$T/auditd.pid")"; wait "$(cat "$T/auditd.pid")" || true
	rm -f "$T/auditd.pid"
	run_cpu=$((c1 - c0))
	run_ev=$(grep -c '^type=SYSCALL' "$T/$1/audit.log")
	report "$1" $run_cpu "$run_ev"
}

echo "== auditd alone, $S s"
mkdir -p "$T/none.d"
auditd_run auditd "$T/none.d"
auditd_cpu=$run_cpu; auditd_ev=$run_ev

echo "== auditd + laurel, $S s"
mkdir -p "$T/laurel.d" "$T/laurel-logs"
chown _laurel "$T/laurel-logs"
sed "s|^directory = .*|directory = \"$T/laurel-logs\"|" /etc/laurel/config.toml > "$T/laurel.toml"
printf 'active = yes\ndirection = out\ntype = always\nformat = string\npath = /usr/sbin/laurel\nargs = --config %s/laurel.toml\n' "$T" > "$T/laurel.d/laurel.conf"
chmod 600 "$T/laurel.d/laurel.conf"
auditd_run auditd+laurel "$T/laurel.d"
laurel_cpu=$run_cpu; laurel_ev=$run_ev

awk -v c="$contid_cpu" -v ce="$contid_ev" -v a="$auditd_cpu" -v ae="$auditd_ev" -v l="$laurel_cpu" -v le="$laurel_ev" 'BEGIN {
	printf "\ncontid / auditd alone     %5.2fx CPU per event\n", (c / ce) / (a / ae)
	printf "contid / auditd + laurel  %5.2fx CPU per event\n", (c / ce) / (l / le)
}'
