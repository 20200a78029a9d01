#!/bin/sh
# What keeping the search index costs the daemon, without kernel audit:
# the daemon as auditd's plugin (audit.mode = plugin) reads a recorded-form
# exec storm from its standard input (N iterations of an execve event of 7
# records and an exit_group event of 3, as the kernel writes them under
# bench/storm.sh's rules) and stops at its end; its CPU time for the whole
# feed, with search_index on and off, alternately, ROUNDS times (default
# 7). For when kernel audit is taken (bench/index-cost.sh needs it); the
# daemon's work per event is the same but for the netlink receive.
#
#   bench/index-cost-feed.sh [ITERATIONS] [ROUNDS]
set -eu
N=${1:-200000}
R=${2:-7}
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "index-cost-feed.sh: run as root (eBPF)" >&2; exit 1; }
T=$(mktemp -d)
chmod 755 "$T"
trap 'rm -rf "$T" /sys/fs/bpf/contid-index-feed' EXIT INT TERM
CGO_ENABLED=0 go build -o "$T/contid" ./cmd/contid
awk -v n="$N" 'BEGIN {
	t = 1795687200; ser = 1000
	for (i = 0; i < n; i++) {
		pid = 2000 + i % 28000
		for (k = 0; k < 2; k++) {
			ms = (2 * i + k) % 1000
			if (ms == 0) t++
			st = sprintf("%d.%03d:%d", t, ms, ser++)
			if (k == 0) {
				printf "type=SYSCALL msg=audit(%s): arch=c000003e syscall=59 success=yes exit=0 a0=55d0a1b2c3d0 a1=55d0a1b2c3e0 a2=55d0a1b2c3f0 a3=0 items=2 ppid=%d pid=%d auid=0 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm=\"true\" exe=\"/usr/bin/true\" subj=unconfined key=\"storm\"\n", st, pid - 1, pid
				printf "type=EXECVE msg=audit(%s): argc=1 a0=\"/bin/true\"\n", st
				printf "type=CWD msg=audit(%s): cwd=\"/root\"\n", st
				printf "type=PATH msg=audit(%s): item=0 name=\"/bin/true\" inode=1310829 dev=fe:00 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0\n", st
				printf "type=PATH msg=audit(%s): item=1 name=\"/lib64/ld-linux-x86-64.so.2\" inode=1317291 dev=fe:00 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0\n", st
			} else {
				printf "type=SYSCALL msg=audit(%s): arch=c000003e syscall=231 a0=0 a1=3c a2=0 a3=7f0 items=0 ppid=%d pid=%d auid=0 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm=\"true\" exe=\"/usr/bin/true\" subj=unconfined key=\"storm\"\n", st, pid - 1, pid
			}
			printf "type=PROCTITLE msg=audit(%s): proctitle=2F62696E2F74727565\n", st
			printf "type=EOE msg=audit(%s): \n", st
		}
	}
}' > "$T/feed"
ev=$((2 * N))

# run on|off: the daemon over the whole feed; appends its ms CPU per 1,000
# events to $T/on or $T/off.
run() {
	rm -rf "$T/logs" /sys/fs/bpf/contid-index-feed
	printf 'search_index = %s\n[log]\nflush = "incremental_async"\nfreq = 50\n' "$([ "$1" = on ] && echo true || echo false)" > "$T/contid.toml"
	secs=$(sh -c '"$@" < "$0" > /dev/null 2>&1; times' "$T/feed" "$T/contid" daemon --config "$T/contid.toml" --log-dir "$T/logs" \
		--socket "$T/s.sock" --pin-dir /sys/fs/bpf/contid-index-feed --audit plugin --log-level warn |
		awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/); print u[1] * 60 + u[2] + s[1] * 60 + s[2] }')
	lines=$(cat "$T/logs"/audit.log* | wc -l)
	sidecars=$(ls "$T/logs/.contid-index" 2>/dev/null | wc -l)
	awk -v n="$1" -v c="$secs" -v e="$ev" -v l="$lines" -v s="$sidecars" 'BEGIN {
		printf "index %-3s %8d events  %6.2f s CPU  %6.2f ms CPU per 1,000 events  (%d lines logged, %d sidecars)\n", n, e, c, 1e6 * c / e, l, s }'
	awk -v c="$secs" -v e="$ev" 'BEGIN { printf "%.4f\n", 1e6 * c / e }' >> "$T/$1"
}

median() { sort -n "$1" | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

echo "== contid (plugin feed of $ev events), index on and off alternately, $R rounds"
r=0
while [ $r -lt "$R" ]; do
	if [ $((r % 2)) = 0 ]; then run on; run off; else run off; run on; fi
	r=$((r + 1))
done
on=$(median "$T/on"); off=$(median "$T/off")
awk -v on="$on" -v off="$off" 'BEGIN {
	printf "\nmedian ms CPU per 1,000 events: index on %.2f, off %.2f; the index costs %.1f%% of the daemon'"'"'s CPU\n", on, off, 100 * (on - off) / on }'
