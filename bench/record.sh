#!/usr/bin/env bash
# Records a real run for the pipeline benchmark (bench/pipeline.sh,
# BenchmarkRecorded): contid as the kernel's audit daemon with --record,
# under an execve and exit_group rule, while an exec load runs at RATE
# execs a second for SECONDS, half of it in a container (contid exec).
# The trace holds the kernel's records as they came and the task events
# (forks, execs, exits, the registration) in the order the daemon applied
# them.
#
# Usage (root; needs auditctl and go): bench/record.sh TRACE [SECONDS] [RATE]
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: bench/record.sh TRACE [SECONDS] [RATE]" >&2; exit 2; }
OUTPUT=$(realpath -m "$1") S=${2:-10} R=${3:-500}
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "record.sh: run as root" >&2; exit 1; }
command -v auditctl >/dev/null || { echo "record.sh: auditctl is not installed (apt-get install auditd)" >&2; exit 1; }

# Kernel audit is global: the tests' lock for the whole run, and the
# state found put back at the end.
. bench/auditstate.sh
audit_take record.sh
T=$(mktemp -d)
chmod 755 "$T"
PIN=/sys/fs/bpf/contid-record
daemon="" load=""
cleanup() {
	set +e
	[ -n "$load" ] && kill -TERM "$load" 2>/dev/null
	if [ -n "$daemon" ]; then kill -TERM "$daemon" 2>/dev/null; wait "$daemon" 2>/dev/null; fi
	audit_restore "$T"
	rm -rf "$PIN" "$T"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

CGO_ENABLED=0 go build -o "$T/contid" ./cmd/contid
go build -o "$T/execload" ./bench/execload
cp /bin/true "$T/true"
printf -- '-a always,exit -F arch=b64 -S execve -F exe=%s -F key=bench\n-a always,exit -F arch=b64 -S exit_group -F exe=%s -F key=bench\n' "$T/true" "$T/true" >"$T/rules"
"$T/contid" daemon --log-dir "$T/logs" --socket "$T/s.sock" --pin-dir "$PIN" --audit primary \
	--record "$T/trace" --log-level warn 2>"$T/err" &
daemon=$!
until CONTID_SOCKET=$T/s.sock "$T/contid" status >/dev/null 2>&1; do
	kill -0 "$daemon" 2>/dev/null || { echo "record.sh: the daemon exited at start:" >&2; cat "$T/err" >&2; exit 1; }
	sleep 0.1
done
auditctl -R "$T/rules" >/dev/null
half=$((R / 2))
CONTID_SOCKET=$T/s.sock "$T/contid" exec --contid 4242 -- "$T/execload" -exec "$T/true" -rate "$half" -seconds "$S" >/dev/null &
load=$!
"$T/execload" -exec "$T/true" -rate "$half" -seconds "$S" >/dev/null
wait "$load"
load=""
auditctl -D >/dev/null
kill -TERM "$daemon"
wait "$daemon" || { echo "record.sh: the daemon failed:" >&2; cat "$T/err" >&2; exit 1; }
daemon=""
mv "$T/trace" "$OUTPUT"
echo "record.sh: $(wc -l <"$OUTPUT") trace lines in $OUTPUT"
