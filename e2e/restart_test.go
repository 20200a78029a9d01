package e2e

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/contid/contid/internal/records"
)

// TestRestartAfterKill: the daemon is killed with SIGKILL while contained
// processes run; a new daemon on the same pins knows them, their chains and
// their owner, and the log has no torn line.
func TestRestartAfterKill(t *testing.T) {
	d := startDaemon(t, "")
	// The background job must not hold this shell's pipes open.
	pids := filepath.Join(t.TempDir(), "pids")
	out, errOut, code := d.sh(`"$C" exec --contid 31 -- sh -c '
		sleep 600 & P=$!
		"$C" set $P 32 >/dev/null
		echo $P $$ > "$F.tmp"; mv "$F.tmp" "$F"' >/dev/null 2>&1 </dev/null &
		J=$!; while ! [ -e "$F" ] && kill -0 $J 2>/dev/null; do sleep 0.05; done; cat "$F"`, "F="+pids)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	f := strings.Fields(out)
	if len(f) != 2 {
		t.Fatalf("script output %q", out)
	}
	inner := f[0]
	t.Cleanup(func() { d.sh("kill " + inner) })
	d.waitRecord(records.ContainerOp, "op=set", "contid=32", "old-contid=31", "res=success")
	d.kill()
	// A task created while no daemon runs still inherits in the kernel.
	d.start()
	got, errOut, code := d.sh(`"$C" get --chain ` + inner)
	if code != 0 || strings.TrimSpace(got) != "32,^31" {
		t.Fatalf("after restart: %q (exit %d, %s)", got, code, errOut)
	}
	cs, _, _ := d.sh(`"$C" containers --json`)
	if !strings.Contains(cs, `"contid": 32`) || !strings.Contains(cs, `"contid": 31`) {
		t.Fatalf("containers after restart:\n%s", cs)
	}
	d.logRecords() // every line parses: nothing torn
	d.sh("kill " + inner)
	d.waitRecord(records.ContainerOp, "op=drop", "contid=32")
}
