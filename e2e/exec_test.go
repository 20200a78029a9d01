package e2e

import (
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/contid/contid/internal/records"
)

// TestExecTree: everything contid exec starts carries the contid, in the
// kernel's task storage and in the engine: threads of a multi-threaded
// process, a pid-namespace subtree, and 2,000 short-lived children started
// right after registration, each reading back its own contid.
func TestExecTree(t *testing.T) {
	d := startDaemon(t, "")
	script := `
set -e
# A multi-threaded process: query every thread.
CONTID_E2E_ROLE=threads "$E2E" > "$TMP/threads" & T=$!
while ! grep -q ready "$TMP/threads"; do grep -q error "$TMP/threads" && exit 1; sleep 0.02; done
for tid in $(ls /proc/$T/task); do "$C" get --json $tid; done
kill $T
# A pid-namespace subtree (unshare --fork --pid): the namespace's init and its child.
unshare --fork --pid sh -c 'sleep 600 & wait' & U=$!
while [ -z "$(pgrep -P $U)" ]; do sleep 0.02; done
I=$(pgrep -P $U)
while [ -z "$(pgrep -P $I)" ]; do sleep 0.02; done
for p in $U $I $(pgrep -P $I); do "$C" get --json $p; done
kill $(pgrep -P $I) 2>/dev/null || true
# 2,000 short-lived children, each asking for its own contid, 25 at a time.
i=0
while [ $i -lt 2000 ]; do
	sh -c 'exec "$0" get --json $$' "$C" &
	i=$((i+1))
	[ $((i % 25)) -ne 0 ] || wait
done
wait
`
	out, errOut, code := d.sh(`exec "$C" exec --contid 4242 --name tree -- sh -c '`+strings.ReplaceAll(script, "'", `'"'"'`)+`'`, "TMP="+t.TempDir())
	if code != 0 {
		t.Fatalf("exit %d\nstderr:\n%s", code, errOut)
	}
	ts := tasks(t, out)
	want := 5 + 3 + 2000 // ≥5 threads, 3 in the pid ns subtree, 2,000 children
	if len(ts) < want {
		t.Fatalf("%d tasks read back, want at least %d\nstderr:\n%s", len(ts), want, errOut)
	}
	for _, x := range ts {
		if len(x.Chain) != 1 || x.Chain[0] != 4242 {
			t.Fatalf("task %d: engine chain %v, want [4242]", x.PID, x.Chain)
		}
		if x.KernelContid == nil || *x.KernelContid != 4242 {
			t.Fatalf("task %d: kernel task storage holds %v, want 4242", x.PID, x.KernelContid)
		}
	}
	// The registration is logged; after the last process, the drop.
	d.waitRecord(records.ContainerOp, "op=set", "contid=4242", "name=tree", "res=success")
	d.waitRecord(records.ContainerOp, "op=drop", "contid=4242")
	// The engine saw every fork with the kernel's contid and agreed.
	st, _, _ := d.sh(`"$C" status --json`)
	if !strings.Contains(st, `"inherit_mismatch": 0`) || !strings.Contains(st, `"ring_lost": 0`) {
		t.Fatalf("status:\n%s", st)
	}
}

// TestExecExitStatus: contid exec waits for CMD and passes its status on.
func TestExecExitStatus(t *testing.T) {
	d := startDaemon(t, "")
	for _, tt := range []struct {
		cmd  string
		code int
	}{
		{`"$C" exec --contid 1 -- sh -c 'exit 3'`, 3},
		{`"$C" exec --contid 2 -- /nonexistent/cmd`, 127},
		{`"$C" exec --contid 4 -- /etc/passwd`, 126},
		{`"$C" exec --contid 3 -- sh -c 'kill -TERM $$'`, 128 + 15},
		{`"$C" exec --contid 18446744073709551615 -- true`, 125},
	} {
		if _, errOut, code := d.sh(tt.cmd); code != tt.code {
			t.Errorf("%s: exit %d, want %d; stderr %s", tt.cmd, code, tt.code, errOut)
		}
	}
	d.waitRecord(records.ContainerOp, "op=set", "contid=18446744073709551615", "res=failed", "errno=EINVAL")
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestExecHandsOverCleanly: CMD gets the caller's arguments, environment
// and descriptors as they were, and nothing of contid's: the held child's
// pipe is closed before CMD runs.
func TestExecHandsOverCleanly(t *testing.T) {
	d := startDaemon(t, "")
	dir := t.TempDir()
	out, errOut, code := d.sh(`ls /proc/$$/fd > "$T/caller"
CONTID_E2E_VAR='a b' "$C" exec --contid 5 -- sh -c 'echo "$CONTID_E2E_VAR|$0|$1"; ls /proc/$$/fd > "$T/cmd"' 'x y' '-n'`, "T="+dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if want := "a b|x y|-n\n"; out != want {
		t.Errorf("CMD printed %q, want %q", out, want)
	}
	caller, cmd := string(mustRead(t, filepath.Join(dir, "caller"))), string(mustRead(t, filepath.Join(dir, "cmd")))
	for _, fd := range strings.Fields(cmd) {
		if !slices.Contains(strings.Fields(caller), fd) {
			t.Errorf("CMD has fd %s, which its caller had not (caller: %q, CMD: %q)", fd, caller, cmd)
		}
	}
}
