package e2e

import (
	"strings"
	"testing"

	"github.com/contid/contid/internal/records"
)

// TestNamespaceRecords: unshare and setns inside a container give NS_*
// records whose ids are those stat -L prints for /proc/PID/ns/*.
func TestNamespaceRecords(t *testing.T) {
	d := startDaemon(t, "")
	out, errOut, code := d.sh(`"$C" exec --contid 90 -- sh -c '
		unshare --net sh -c "echo unshared \$\$ \$(stat -L -c %d:%i /proc/self/ns/net); sleep 0.3"
		sleep 30 & P=$!
		unshare --uts sleep 30 & Q=$!
		sleep 0.2
		nsenter --target $Q --uts sh -c "echo entered \$\$ \$(stat -L -c %d:%i /proc/self/ns/uts)"
		kill $P $Q'`)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var netPID, netNS, entPID, utsNS string
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) == 3 && f[0] == "unshared":
			netPID, netNS = f[1], f[2]
		case len(f) == 3 && f[0] == "entered":
			entPID, utsNS = f[1], f[2]
		}
	}
	if netNS == "" || utsNS == "" {
		t.Fatalf("script output: %q", out)
	}
	d.waitRecord(records.NSCreate, "nstype=net", "ns="+netNS, "pid="+netPID, "contid=90")
	d.waitRecord(records.NSChange, "nstype=net", "ns="+netNS, "pid="+netPID, "contid=90")
	d.waitRecord(records.NSDestroy, "nstype=net", "ns="+netNS)
	// nsenter's setns into the uts namespace of Q: a change, no creation.
	d.waitRecord(records.NSChange, "nstype=uts", "ns="+utsNS, "pid="+entPID, "contid=90")
	d.waitRecord(records.NSInfo, "contid=90")
	d.waitRecord(records.ContainerOp, "op=drop", "contid=90")
}
