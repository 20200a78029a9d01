#!/usr/bin/env bash
# The fair benchmark: what each audit reader costs per event, side by side
# on this machine, on identical loads with identical settings. See
# bench/README.md for what it compares and how to read the table.
#
# Readers: contid (the kernel's audit daemon, primary mode), auditd alone
# (RAW log), auditd with laurel as its plugin; and contid-noindex, contid
# with search_index = false, for what keeping the search index costs
# (-R "contid contid-noindex"). Loads: paced exec loads
# (bench/execload: /bin/true at R execs/s on a fixed timetable; 0 = flat
# out) under an execve + exit_group rule, and an idle period with no rule.
#
# Usage (root; needs auditd, laurel, bpftool, jq, go):
#   bench/fair.sh [-q] [-s SECONDS] [-n ROUNDS] [-r "50 250 1000 0"] [-i IDLE_SECONDS]
#                 [-R "contid auditd laurel"] [-o OUT] [-p PROFILE_DIR]
#   -q        quick check: -s 5 -n 1 -i 5 -r "250 0"
#   -s, -i    seconds per load, seconds of idle (default 30, 60)
#   -n        rounds (default 3); the reader order rotates each round
#   -r        exec rates, 0 = flat out (default "50 250 1000 0")
#   -R        readers (default "contid auditd laurel")
#   -o        where the raw per-run lines go (default /tmp/fair-DATE.txt)
#   -p        write a Go CPU profile of each contid run into this directory
# CONTID=path runs that contid binary instead of building ./cmd/contid
# (to compare two builds with the same script).
set -euo pipefail
S=30 N=3 RATES="50 250 1000 0" IDLE=60 READERS="contid auditd laurel" OUT="" PROF=""
usage() { sed -n '14,25p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while getopts "s:n:r:i:R:o:p:qh" o; do
	case $o in
	s) S=$OPTARG ;; n) N=$OPTARG ;; r) RATES=$OPTARG ;; i) IDLE=$OPTARG ;;
	R) READERS=$OPTARG ;; o) OUT=$OPTARG ;; p) PROF=$OPTARG ;;
	q) S=5 N=1 IDLE=5 RATES="250 0" ;;
	*) usage ;;
	esac
done
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "fair.sh: run as root" >&2; exit 1; }
for c in auditd auditctl laurel bpftool jq go; do
	command -v $c >/dev/null || { echo "fair.sh: $c is not installed (apt-get install auditd laurel bpftool jq)" >&2; exit 1; }
done
OUT=${OUT:-/tmp/fair-$(date +%Y%m%d-%H%M%S).txt}
: >"$OUT"
[ -n "$PROF" ] && mkdir -p "$PROF" && PROF=$(realpath "$PROF")

# Kernel audit is global: the tests' lock for the whole run, and the
# state found put back at the end.
. bench/auditstate.sh
audit_take fair.sh

T=$(mktemp -d)
chmod 755 "$T"
PIN=/sys/fs/bpf/contid-fair
bpfstats=$(sysctl -n kernel.bpf_stats_enabled)
reader="" loads=""
# cleanup puts back the audit state found at start, whatever happened.
cleanup() {
	set +e
	for j in $loads; do kill -TERM "$j" 2>/dev/null; done
	if [ -n "$reader" ]; then kill -TERM "$reader" 2>/dev/null; wait "$reader" 2>/dev/null; fi
	audit_restore "$T"
	sysctl -qw kernel.bpf_stats_enabled="$bpfstats"
	rm -rf "$PIN" "$T"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -n "${CONTID:-}" ]; then cp "$CONTID" "$T/contid"; else CGO_ENABLED=0 go build -o "$T/contid" ./cmd/contid; fi
go build -o "$T/execload" ./bench/execload
# The load runs a copy of /bin/true and the rules select it (and the
# marker) by executable, so every reader counts the same events and not the
# execs of whatever else runs on the machine.
cp /bin/true "$T/true"
cp /bin/true "$T/marker"
for x in true marker; do
	printf -- '-a always,exit -F arch=b64 -S execve -F exe=%s -F key=fair\n-a always,exit -F arch=b64 -S exit_group -F exe=%s -F key=fair\n' "$T/$x" "$T/$x"
done >"$T/rules"
# The log settings auditd ships with, for every reader: incremental_async
# with freq 50, no size limit.
printf '[log]\nmax_log_file_action = "ignore"\nflush = "incremental_async"\nfreq = 50\n[containers]\nmax_log_file_action = "ignore"\nflush = "incremental_async"\nfreq = 50\n[audit]\nbacklog_limit = 0\nbacklog_wait_time = 0\n' >"$T/contid.toml"
{ echo 'search_index = false'; cat "$T/contid.toml"; } >"$T/contid-noindex.toml"
sysctl -qw kernel.bpf_stats_enabled=1
ticks=$(getconf CLK_TCK)

# The kernel settings, the same for every reader: set before it starts and
# again once it is registered (whatever it changed at start), then checked.
settings() {
	auditctl -b 8192 -r 0 >/dev/null
	auditctl --backlog_wait_time 60000 >/dev/null
}
check_settings() {
	auditctl -s | awk '
		$1 == "enabled" && $2 != 1 || $1 == "backlog_limit" && $2 != 8192 ||
		$1 == "rate_limit" && $2 != 0 || $1 == "backlog_wait_time" && $2 != 60000 { bad = bad " " $1 "=" $2 }
		END { if (bad != "") { print "fair.sh: kernel audit settings not as set:" bad > "/dev/stderr"; exit 1 } }'
}
# registered PID: waits until the reader is the kernel's audit daemon; fails
# (and so releases the audit lock) if it died instead.
registered() {
	until [ "$(auditctl -s | awk '$1 == "pid" {print $2}')" = "$1" ]; do
		kill -0 "$1" 2>/dev/null || { echo "fair.sh: the reader exited at start:" >&2; cat "$T/run/err" >&2; exit 1; }
		sleep 0.1
	done
}
lost() { auditctl -s | awk '$1 == "lost" {print $2}'; }

# cpuns PID...: nanoseconds on CPU of every thread of the processes
# (schedstat: exact, where /proc/PID/stat counts clock ticks).
cpuns() { for p in "$@"; do cat /proc/"$p"/task/*/schedstat 2>/dev/null; done | awk '{s += $1} END {printf "%.0f\n", s}'; }
# cputicks PID...: user + system clock ticks of the processes (/proc/PID/stat),
# which also count threads that ended: a cross-check of cpuns.
cputicks() { for p in "$@"; do awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null; done | awk '{s += $1} END {print s + 0}'; }
# cpumax NS TICKS: the CPU time of a run, exact from schedstat unless
# /proc/PID/stat saw more (threads that ended during the run).
cpumax() { awk -v c="$1" -v k="$2" -v t="$ticks" 'BEGIN { k = k * 1e9 / t; printf "%.0f\n", (k > c + 2e9 / t ? k : c) }'; }
# switches PID...: voluntary + involuntary context switches of every thread.
switches() { for p in "$@"; do cat /proc/"$p"/task/*/status 2>/dev/null; done | awk '/ctxt_switches/ {s += $2} END {print s + 0}'; }
# progids PID: the BPF programs the process holds (program and link fds).
progids() { cat /proc/"$1"/fdinfo/* 2>/dev/null | awk '$1 == "prog_id:" {print $2}' | sort -un | tr '\n' ' '; }
# bpfns IDS...: the summed run_time_ns of the programs (kernel.bpf_stats_enabled).
bpfns() {
	[ $# = 0 ] && { echo 0; return; }
	bpftool prog show -j | jq --arg ids "$*" '[.[] | select(.id as $i | $ids | split(" ") | map(tonumber) | index($i)) | .run_time_ns // 0] | add // 0'
}
# loggaps LOG: kernel serials missing from the log between its first and
# last (auditd's DAEMON_ records and contid's own serial space excluded).
loggaps() {
	grep -v '^type=DAEMON_' "$1" | grep -o 'msg=audit([0-9.]*:[0-9]*)' | sed 's/.*:\([0-9]*\))/\1/' | awk '$1 < 4294967296' | sort -un |
		awk 'NR > 1 && $1 > p + 1 {g += $1 - p - 1} {p = $1} END {print g + 0}'
}

# start_reader NAME: starts it with the settings; sets PIDS (the reader and
# its plugins), LOG, BPF_IDS.
start_reader() {
	local name=$1 d=$T/run prof=""
	rm -rf "$d" "$PIN"
	mkdir -p "$d"
	auditctl -D >/dev/null
	settings
	BPF_IDS=""
	case $name in
	contid | contid-noindex)
		[ -n "$PROF" ] && prof="--cpu-profile=$PROF/$name-$RATE-$ROUND.pprof"
		"$T/contid" daemon --config "$T/$name.toml" --log-dir "$d/logs" --socket "$d/s.sock" --pin-dir "$PIN" \
			--audit primary --log-level warn $prof 2>"$d/err" &
		reader=$!
		registered "$reader"
		until CONTID_SOCKET=$d/s.sock "$T/contid" status >/dev/null 2>&1; do
			kill -0 "$reader" 2>/dev/null || { echo "fair.sh: contid exited at start:" >&2; cat "$d/err" >&2; exit 1; }
			sleep 0.1
		done
		BPF_IDS=$(progids "$reader")
		[ -n "$BPF_IDS" ] || { echo "fair.sh: contid holds no BPF program" >&2; exit 1; }
		LOG=$d/logs/audit.log
		;;
	auditd | laurel)
		mkdir -p "$d/plugins"
		if [ "$name" = laurel ]; then
			mkdir -p "$d/laurel-logs"
			chown _laurel "$d/laurel-logs"
			# Its own log directory, and no rotation (like the others).
			sed -e "s|^directory = .*|directory = \"$d/laurel-logs\"|" -e 's|^size = .*|size = 100000000000|' \
				/etc/laurel/config.toml >"$d/laurel.toml"
			printf 'active = yes\ndirection = out\ntype = always\nformat = string\npath = /usr/sbin/laurel\nargs = --config %s/laurel.toml\n' "$d" >"$d/plugins/laurel.conf"
			chmod 600 "$d/plugins/laurel.conf"
		fi
		printf 'log_file = %s/audit.log\nlog_format = RAW\nflush = INCREMENTAL_ASYNC\nfreq = 50\nmax_log_file_action = ignore\nspace_left = 2\nadmin_space_left = 1\nplugin_dir = %s/plugins\n' "$d" "$d" >"$d/auditd.conf"
		chmod 600 "$d/auditd.conf"
		auditd -n -c "$d" 2>"$d/err" &
		reader=$!
		registered "$reader"
		LOG=$d/audit.log
		;;
	esac
	auditctl -e 1 >/dev/null
	settings
	check_settings
	# auditd starts its plugins after it registers.
	if [ "$name" = laurel ]; then until pgrep -x laurel -P "$reader" >/dev/null; do sleep 0.1; done; fi
	PIDS="$reader $(pgrep -P "$reader" | tr '\n' ' ' || true)"
}

stop_reader() {
	auditctl -D >/dev/null
	kill -TERM "$reader"
	wait "$reader" || true
	reader=""
}

# settle: wait until the reader has written everything the load caused:
# the events of a marker program run after the load, in the reader's log
# (and laurel's). Not "until the log stops growing": on a shared machine
# other execs keep it growing.
settle() {
	local n=0
	"$T/marker"
	until tail -c 4000000 "$LOG" | grep -q "exe=\"$T/marker\"" &&
		{ [ ! -d "$T/run/laurel-logs" ] || tail -c 4000000 "$T/run/laurel-logs/audit.log" 2>/dev/null | grep -q "\"exe\":\"$T/marker\""; }; do
		sleep 0.1
		# A marker lost with the load's records: try another.
		if (( ++n % 100 == 0 )); then "$T/marker"; fi
	done
}

# load NAME RATE: two execloads at half the rate each; with contid, one of
# them in a contid container (what contid is for; the others see the same
# execs without one). Flat out (0) is one loop per CPU in each.
load() {
	local half j
	half=$(awk -v r="$2" 'BEGIN {print r / 2}')
	if [[ $1 == contid* ]]; then
		CONTID_SOCKET=$T/run/s.sock "$T/contid" exec --contid 4242 -- "$T/execload" -exec "$T/true" -rate "$half" -seconds "$S" >"$T/load1" &
	else
		"$T/execload" -exec "$T/true" -rate "$half" -seconds "$S" >"$T/load1" &
	fi
	j=$!
	loads=$j
	"$T/execload" -exec "$T/true" -rate "$half" -seconds "$S" >"$T/load2"
	wait $j
	loads=""
}

# run NAME: one reader on one load (RATE, or idle), one line to $OUT.
run() {
	local name=$1 c0 c1 k0 k1 b0 b1 l0 l1 x0 x1 ev lev=- execs gaps=- unknown=- lgaps
	start_reader "$name"
	if [ "$RATE" = idle ]; then
		sleep 2
		c0=$(cpuns $PIDS) k0=$(cputicks $PIDS) x0=$(switches $PIDS) b0=$(bpfns $BPF_IDS)
		sleep "$IDLE"
		c1=$(cpuns $PIDS) k1=$(cputicks $PIDS) x1=$(switches $PIDS) b1=$(bpfns $BPF_IDS)
		stop_reader
		awk -v n="$name" -v r="$ROUND" -v c=$(cpumax $((c1 - c0)) $((k1 - k0))) -v b=$((b1 - b0)) -v x=$((x1 - x0)) -v s="$IDLE" 'BEGIN {
			printf "idle reader %s round %d cpu_pct %.4f wakeups_per_s %.2f\n", n, r, 100 * (c + b) / 1e9 / s, x / s }' | tee -a "$OUT"
		return
	fi
	auditctl -R "$T/rules" >/dev/null
	l0=$(lost) c0=$(cpuns $PIDS) k0=$(cputicks $PIDS) b0=$(bpfns $BPF_IDS)
	load "$name" "$RATE"
	execs=$(awk '{n += $2; l += $8} END {print n, l}' "$T/load1" "$T/load2")
	settle
	c1=$(cpuns $PIDS) k1=$(cputicks $PIDS) b1=$(bpfns $BPF_IDS) l1=$(lost)
	if [[ $name == contid* ]]; then
		CONTID_SOCKET=$T/run/s.sock "$T/contid" status >"$T/status"
		gaps=$(awk '$1 == "audit_gaps:" {print $2}' "$T/status")
		unknown=$(awk '$1 == "audit_unknown_subject:" {print $2}' "$T/status")
	fi
	stop_reader
	ev=$(grep -c '^type=SYSCALL.*key="fair"' "$LOG" || true)
	[ "$name" = laurel ] && lev=$(grep -c '"key":"fair"' "$T"/run/laurel-logs/audit.log || true)
	lgaps=$(loggaps "$LOG")
	awk -v n="$name" -v rate="$RATE" -v r="$ROUND" -v c=$(cpumax $((c1 - c0)) $((k1 - k0))) -v k=$((k1 - k0)) -v t="$ticks" -v b=$((b1 - b0)) \
		-v e="$ev" -v le="$lev" -v x="${execs% *}" -v late="${execs#* }" -v l=$((l1 - l0)) -v g="$gaps" -v lg="$lgaps" -v u="$unknown" 'BEGIN {
		printf "load reader %s rate %s round %d events %d laurel_events %s execs %d late %d ms_per_1k %.2f bpf_ms_per_1k %.2f stat_ms_per_1k %.2f lost %d gaps %s log_gaps %d unknown %s\n",
			n, rate, r, e, le, x, late, (c + b) / 1e3 / e, b / 1e3 / e, 1e6 * (k / t + b / 1e9) / e, l, g, lg, u }' | tee -a "$OUT"
}

read -r -a readers <<<"$READERS"
nr=${#readers[@]}
echo "fair.sh: $N round(s), $S s per load, rates: $RATES (0 = flat out), idle $IDLE s; readers: $READERS; raw lines in $OUT"
for ((ROUND = 1; ROUND <= N; ROUND++)); do
	for RATE in $RATES idle; do
		for ((k = 0; k < nr; k++)); do
			run "${readers[$(((k + ROUND - 1) % nr))]}"
		done
	done
done
echo
bench/fairtable.awk "$OUT"
echo "raw lines: $OUT"
