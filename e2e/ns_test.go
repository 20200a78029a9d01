package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/contid/contid/internal/records"
	"github.com/contid/contid/internal/surface/api"
)

// TestNamespaceRecords: unshare and setns inside a container give NS_*
// records whose ids are those stat -L prints for /proc/PID/ns/*.
func TestNamespaceRecords(t *testing.T) {
	d := startDaemon(t, "")
	out, errOut, code := d.sh(`"$C" exec --contid 90 -- sh -c '
		unshare --net sh -c "echo unshared \$\$ \$(stat -L -c %d:%i /proc/self/ns/net)"
		sleep 600 & P=$!
		unshare --uts sleep 600 & Q=$!
		while [ "$(stat -L -c %i /proc/$Q/ns/uts)" = "$(stat -L -c %i /proc/self/ns/uts)" ]; do sleep 0.01; done
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

// TestIPNetns: `ip netns add`, then `ip netns exec` inside a container. The
// named namespace lives on in its bind mount with no task in it, so by
// spec §5.1 it is destroyed when `ip netns add` leaves it. The process `ip
// netns exec` starts in it gives the NS_* records of a task entering it,
// with the id stat -L prints and the container's chain, and the
// container's netns list names it while that process runs. With the
// syscall tracepoints the creation is `ip netns add`'s unshare; without
// them it is first seen, and reported, at the exec.
func TestIPNetns(t *testing.T) {
	for _, exact := range []bool{false, true} {
		t.Run(fmt.Sprintf("ns_syscalls=%v", exact), func(t *testing.T) {
			cfg := filepath.Join(t.TempDir(), "contid.toml")
			if err := os.WriteFile(cfg, []byte(fmt.Sprintf("ns_syscalls = %v\n", exact)), 0o644); err != nil {
				t.Fatal(err)
			}
			d := startDaemon(t, "", "--config", cfg)
			name := fmt.Sprintf("contid-e2e-%d", os.Getpid())
			t.Cleanup(func() { exec.Command("ip", "netns", "delete", name).Run() })
			list := filepath.Join(t.TempDir(), "containers.json")
			out, errOut, code := d.sh(`"$C" exec --contid 91 -- sh -c '
				ip netns add "$N" || exit 1
				ip netns exec "$N" sh -c "echo entered \$\$ \$(stat -L -c %d:%i /proc/self/ns/net); \"\$C\" containers --json > \"\$J\""
				ip netns delete "$N"'`, "N="+name, "J="+list)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			var pid, netNS string
			for _, l := range strings.Split(out, "\n") {
				if f := strings.Fields(l); len(f) == 3 && f[0] == "entered" {
					pid, netNS = f[1], f[2]
				}
			}
			if netNS == "" {
				t.Fatalf("script output: %q", out)
			}
			d.waitRecord(records.NSChange, "nstype=net", "ns="+netNS, "pid="+pid, "contid=91")
			create := d.waitRecord(records.NSCreate, "nstype=net", "ns="+netNS, "contid=91")
			if by, _ := create.Get("pid"); (by == pid) == exact {
				t.Errorf("NS_CREATE by pid %s; the exec'd process is %s, ns_syscalls %v", by, pid, exact)
			}
			d.waitRecord(records.NSDestroy, "nstype=net", "ns="+netNS)
			d.waitRecord(records.ContainerOp, "op=drop", "contid=91")

			raw, err := os.ReadFile(list)
			if err != nil {
				t.Fatal(err)
			}
			var conts []api.Container
			if err := json.Unmarshal(raw, &conts); err != nil {
				t.Fatalf("containers --json: %v: %s", err, raw)
			}
			if len(conts) != 1 || !slices.Contains(conts[0].Netns, netNS) {
				t.Errorf("containers while in %s: %s", netNS, raw)
			}
		})
	}
}
