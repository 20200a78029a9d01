#!/bin/sh
# Pipeline throughput against its baselines, side by side on this machine:
# contid's whole record path (parse → reassemble → attribute →
# format → write host and container logs) on one core over a generated log
# of 1.2M records, against
#   - the kernel reader ceiling: how fast a netlink reader receives records
#     from producers faster than it (auditnl BenchmarkPrimaryCeiling; root);
#   - a plain copy of the same log, one write(2) per line as auditd writes.
# contid must not be the bottleneck: its rate must exceed the ceiling.
# Then a real recorded run (bench/record.sh: the daemon's trace of a
# container exec load, its records interleaved as they came, with the fork,
# exec and exit history) replayed through the same path, against a copy of
# the same records (BenchmarkRecorded): both decode the trace, whose cost
# is measured apart and taken off both. CONTID_TRACE=FILE uses that trace
# instead of recording one.
set -eu
cd "$(dirname "$0")/.."
out=$(mktemp)
rec=$(mktemp)
trap 'rm -f "$out" "$rec"' EXIT
go test -run x -bench 'BenchmarkPrimaryCeiling/backlog=8192' -benchtime 1x ./internal/source/auditnl | tee -a "$out"
go test -run x -bench BenchmarkPipeline -benchtime 1x -count 3 -cpu 1 ./bench | tee -a "$out"
awk '
/BenchmarkPrimaryCeiling/ { for (i = 1; i < NF; i++) if ($(i+1) == "records/s") ceil = $i }
/BenchmarkPipeline\/baseline-copy/ { for (i = 1; i < NF; i++) if ($(i+1) == "records/s") { copy += $i; nc++ } }
/BenchmarkPipeline\/contid/ { for (i = 1; i < NF; i++) if ($(i+1) == "records/s") { c += $i; n++ } }
END {
	c /= n; copy /= nc
	printf "\nkernel reader ceiling   %9.0f records/s\n", ceil
	printf "plain copy (baseline)   %9.0f records/s\n", copy
	printf "contid pipeline, 1 core %9.0f records/s\n", c
	printf "contid / ceiling        %9.2fx\n", c / ceil
	printf "contid / plain copy     %9.2fx\n", c / copy
}' "$out"

trace=${CONTID_TRACE:-$rec}
[ -n "${CONTID_TRACE:-}" ] || bench/record.sh "$trace" 10 500
CONTID_TRACE=$trace go test -run x -bench BenchmarkRecorded -benchtime 1x -count 5 -cpu 1 ./bench | tee "$out"
awk '
function median(a, n,   i, j, t) {
	for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
	return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
}
/BenchmarkRecorded\/decode/        { for (i = 1; i < NF; i++) if ($(i+1) == "ns/record") d[++nd] = $i }
/BenchmarkRecorded\/baseline-copy/ { for (i = 1; i < NF; i++) if ($(i+1) == "ns/record") b[++nb] = $i }
/BenchmarkRecorded\/contid/        { for (i = 1; i < NF; i++) if ($(i+1) == "ns/record") c[++nc] = $i }
END {
	md = median(d, nd); mb = median(b, nb) - md; mc = median(c, nc) - md
	printf "\nrecorded run, medians of %d, the trace'"'"'s decoding (%.0f ns a record) taken off:\n", nc, md
	printf "plain copy (baseline)   %9.0f ns a record  %9.0f records/s\n", mb, 1e9 / mb
	printf "contid whole path       %9.0f ns a record  %9.0f records/s\n", mc, 1e9 / mc
	printf "contid / plain copy     %9.2fx the time\n", mc / mb
}' "$out"
