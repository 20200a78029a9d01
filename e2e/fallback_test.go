package e2e

import (
	"strings"
	"testing"

	"github.com/contid/contid/internal/records"
)

// TestProcConnectorFallback: without eBPF (forced here), the daemon runs on
// the process-events connector, says so, and still registers and attributes
// children from the order of fork events; the kernel holds no contid.
func TestProcConnectorFallback(t *testing.T) {
	d := startDaemon(t, "", "--source", "proc-connector")
	if !strings.Contains(d.output(), "BEST EFFORT") {
		t.Fatalf("the daemon did not warn that inheritance is best effort:\n%s", d.output())
	}
	out, errOut, code := d.sh(`"$C" exec --contid 66 -- sh -c 'sleep 600 & "$C" get --json $!; R=$?; kill $!; sh -c "exec \"$C\" get --json \$\$" && exit $R'`)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	ts := tasks(t, out)
	if len(ts) != 2 {
		t.Fatalf("%d tasks:\n%s", len(ts), out)
	}
	for _, x := range ts {
		if len(x.Chain) != 1 || x.Chain[0] != 66 || x.KernelContid != nil {
			t.Fatalf("task %d: chain %v kernel %v; want [66] and nothing in the kernel", x.PID, x.Chain, x.KernelContid)
		}
	}
	st, _, _ := d.sh(`"$C" status`)
	if !strings.Contains(st, "source: proc-connector") || !strings.Contains(st, "connector_overflows: 0") {
		t.Fatalf("status:\n%s", st)
	}
	d.waitRecord(records.ContainerOp, "op=drop", "contid=66")
}
