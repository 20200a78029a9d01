#!/bin/sh
# Pipeline throughput against its baselines, side by side on this machine:
# contid's whole record path (parse → reassemble → attribute →
# format → write host and container logs) on one core over a recorded log
# of 1.2M records, against
#   - the kernel reader ceiling: how fast a netlink reader receives records
#     from producers faster than it (auditnl BenchmarkPrimaryCeiling; root);
#   - a plain copy of the same log, one write(2) per line as auditd writes.
# contid must not be the bottleneck: its rate must exceed the ceiling.
set -eu
cd "$(dirname "$0")/.."
out=$(mktemp)
trap 'rm -f "$out"' EXIT
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
