#!/bin/sh
# contid search on generated logs: one container (and its nested ones) over
# one hour, through the index, by scanning, and with ausearch -if over each
# file with the hour as its filter, side by side, 5 times with the page
# cache warm and 5 times cold (the logs and sidecars evicted before each
# search), medians; index size against log size; the cost of keeping the
# index while writing (per event, with the daemon's records noted and
# without); the sizes other index designs take. The index's share of the
# daemon's CPU under exec loads is bench/fair.sh -R "contid contid-noindex"'s
# (root).
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
go test ./internal/sink/search -run '^$' -bench 'OneContainerHour' -benchtime 5x -timeout 60m \
	-args -search.dir "$dir" -search.bytes "$bytes"
go test ./internal/sink/search -run '^$' -bench 'OneContainerHour' -benchtime 5x -timeout 60m \
	-args -search.dir "$dir" -search.cold
go test ./internal/sink/search -run '^$' -bench 'IndexDesigns' -benchtime 1x -args -search.dir "$dir"
go test ./internal/sink/search -run '^$' -bench 'LogIndex|IndexWriter' -benchtime 5x -count 5
[ -n "$cleanup" ] && rm -rf "$cleanup"
true
