#!/bin/sh
# contid search on generated logs: one container (and its nested ones) over
# one hour, through the index, by scanning, and with ausearch -if over each
# file with the hour as its filter; index size against log size; the cost
# of keeping the index while writing; the sizes other index designs take.
#
#   bench/search.sh [BYTES] [DIR]   default 1 GiB in a fresh temporary DIR
#
# DIR is kept when given, and reused by later runs.
set -eu
bytes=${1:-1073741824}
dir=${2:-}
cleanup=
if [ -z "$dir" ]; then
	dir=$(mktemp -d)
	cleanup=$dir
fi
mkdir -p "$dir"
cd "$(dirname "$0")/.."
go test ./internal/search -run '^$' -bench 'OneContainerHour' -benchtime 3x -timeout 60m \
	-args -search.dir "$dir" -search.bytes "$bytes"
go test ./internal/search -run '^$' -bench 'IndexDesigns' -benchtime 1x -args -search.dir "$dir"
go test ./internal/search -run '^$' -bench 'IndexWriter' -benchtime 3x
[ -n "$cleanup" ] && rm -rf "$cleanup"
true
