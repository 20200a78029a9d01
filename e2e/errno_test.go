package e2e

import (
	"strings"
	"testing"

	"github.com/contid/contid/internal/records"
)

// TestErrnosFromRealCallers: every check of spec §3 answered to a real
// caller through the CLI, each refusal logged with its errno.
func TestErrnosFromRealCallers(t *testing.T) {
	d := startDaemon(t, "")
	tests := []struct {
		name   string
		script string
		errno  string
		record []string // fields the CONTAINER_OP must hold
	}{
		{"ESRCH", `"$C" set 2147483000 5`, "ESRCH", []string{"opid=2147483000", "contid=5"}},
		{"EINVAL unset", `sleep 600 & P=$!; "$C" set $P 18446744073709551615; R=$?; kill $P; exit $R`, "EINVAL", []string{"contid=18446744073709551615"}},
		{"ERANGE", `sleep 600 & P=$!; "$C" set $P 18446744073709551616; R=$?; kill $P; exit $R`, "ERANGE", []string{"contid=18446744073709551616"}},
		{"EPERM unprivileged", `setpriv --reuid=65534 --regid=65534 --clear-groups sh -c 'sleep 600 & P=$!; "$C" set $P 5; R=$?; kill $P; exit $R'`, "EPERM", []string{"contid=5", "uid=65534"}},
		{"EBUSY", `sh -c 'sleep 600 & wait' & P=$!; while [ -z "$(pgrep -P $P)" ]; do sleep 0.02; done; "$C" set $P 6; R=$?; pkill -P $P; exit $R`, "EBUSY", []string{"contid=6"}},
		{"EXDEV not a descendant", `"$C" set 1 7 2>/dev/null; P=$(sh -c 'sleep 600 >/dev/null & echo $!'); "$C" set $P 7; R=$?; kill $P; exit $R`, "EXDEV", []string{"contid=7"}},
		{"EEXIST", `sleep 600 & P=$!; "$C" set $P 8 >/dev/null && "$C" set $P 9; R=$?; kill $P; exit $R`, "EEXIST", []string{"contid=9", "old-contid=8"}},
		{"ENOTUNIQ", `sleep 600 & P=$!; "$C" set $P 10 >/dev/null; sh -c 'sleep 600 & Q=$!; "$C" set $Q 10; R=$?; kill $Q; exit $R'; R=$?; kill $P; exit $R`, "ENOTUNIQ", []string{"contid=10"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errOut, code := d.sh(tt.script)
			if code == 0 || !strings.Contains(errOut, tt.errno+": ") {
				t.Fatalf("exit %d, stderr %q; want a failure naming %s", code, errOut, tt.errno)
			}
			d.waitRecord(records.ContainerOp, append([]string{"op=set", "res=failed", "errno=" + tt.errno}, tt.record...)...)
		})
	}
}

// TestCannotEscape: a contained process cannot change its own contid,
// its orchestrator's, or move a sibling, whatever it asks.
func TestCannotEscape(t *testing.T) {
	d := startDaemon(t, "")
	_, errOut, code := d.sh(`"$C" exec --contid 55 -- sh -c '
		"$C" set $$ 56 && exit 10                          # own shell, via its helper: refused
		sleep 600 & P=$!
		"$C" set $P 57 >/dev/null || exit 11               # nesting its own child: allowed, 57,^55
		[ "$("$C" get --chain $P)" = "57,^55" ] || exit 12
		"$C" set $P 58 && exit 13                          # re-set: refused
		kill $P
		exit 0'`)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	// The contained shell's attempt to re-set itself is refused and logged.
	d.waitRecord(records.ContainerOp, "op=set", "contid=56", "res=failed")
	d.waitRecord(records.ContainerOp, "op=set", "contid=57", "old-contid=55", "res=success")
	d.waitRecord(records.ContainerOp, "op=set", "contid=58", "res=failed", "errno=EEXIST")
}
