#!/bin/bash
# bench/stream.sh: BenchmarkStreamRoute of two builds, alternating in short
# rounds on the same machine, and the medians of each (docs/fleet.md, Cost).
#
#   bench/stream.sh [-r ROUNDS] [-n COUNT] [-e VAR=VALUE]... OLD [NEW]
#
# OLD and NEW are git revisions ("." is the working tree; NEW defaults to
# "."). Each round runs COUNT iterations of OLD, then of NEW, in turned
# order every other round, so that a VM's drift over minutes falls on both
# alike. Defaults: 6 rounds of 3. -e passes a setting to the benchmark
# (COMMIT_EVERY=64, ACK_EVERY=N, FLEET_SPOOL_COPY=1). Prints per build the
# medians of CPU per event (host log alone, stream route, lines shipped
# raw) and of the ratios, then in how many rounds NEW's stream run took
# less CPU per event than OLD's.
set -euo pipefail

rounds=6 count=3 envs=()
while getopts r:n:e: o; do
	case $o in
	r) rounds=$OPTARG ;;
	n) count=$OPTARG ;;
	e) envs+=("$OPTARG") ;;
	*) sed -n 2,14p "$0" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || { sed -n 2,14p "$0" >&2; exit 2; }
old=$1 new=${2:-.}

root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
work=$(mktemp -d)
trap 'for d in "$work"/tree-*; do [ -d "$d" ] && git -C "$root" worktree remove --force "$d"; done; rm -rf "$work"' EXIT

# build REV NAME: the bench package's test binary of REV at $work/NAME.test.
build() {
	local src=$root
	if [ "$1" != . ]; then
		src=$work/tree-$2
		git -C "$root" worktree add -q --detach "$src" "$1"
	fi
	(cd "$src" && go test -c -o "$work/$2.test" ./bench)
}
build "$old" old
build "$new" new

# run NAME: COUNT iterations; one line per iteration appended to $work/NAME.out:
# host stream raw (ns/event) ratio raw-ratio stream/raw.
run() {
	(cd "$root/bench" && env "${envs[@]+"${envs[@]}"}" "$work/$1.test" -test.run '^$' -test.bench BenchmarkStreamRoute \
		-test.benchtime 1x -test.count "$count") |
		awk '/^BenchmarkStreamRoute/ {
			delete v
			for (i = 2; i <= NF; i++) v[$i] = $(i-1)
			n = split("host-log-cpu-ns/event stream-cpu-ns/event raw-cpu-ns/event ratio raw-ratio stream/raw", k, " ")
			for (i = 1; i <= n; i++) printf "%s%s", (k[i] in v ? v[k[i]] : "-"), (i < n ? " " : "\n") # "-": a build without it
		}' | tee -a "$work/$1.out" >"$work/last.$1"
	[ -s "$work/last.$1" ] || { echo "stream.sh: $1: the benchmark printed nothing" >&2; exit 1; }
}
# median FILE COLUMN: the median of a column of run's lines, "-" if it has none.
median() {
	cut -d' ' -f"$2" "$1" | awk '$1 != "-"' | sort -g |
		awk '{a[NR]=$1} END {print NR == 0 ? "-" : NR % 2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'
}
lower=0
for r in $(seq "$rounds"); do
	if [ $((r % 2)) = 1 ]; then run old; run new; else run new; run old; fi
	# The round's stream CPU per event, median of its iterations, each build.
	o=$(median "$work/last.old" 2) n=$(median "$work/last.new" 2)
	if awk -v n="$n" -v o="$o" 'BEGIN { exit !(n < o) }'; then lower=$((lower + 1)); fi
	echo "round $r: stream ns/event old $o new $n"
done

printf '%-4s %4s %10s %10s %10s %7s %9s %10s\n' "" n host stream raw ratio raw-ratio stream/raw
for b in old new; do
	printf '%-4s %4d' "$b" "$(wc -l <"$work/$b.out")"
	for c in 1 2 3 4 5 6; do
		printf ' %10s' "$(median "$work/$b.out" $c)"
	done
	echo
done
echo "new's stream run took less CPU per event than old's in $lower of $rounds rounds"
