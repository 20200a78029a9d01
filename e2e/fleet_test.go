package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/contid/contid/internal/records"
	"github.com/contid/contid/internal/testing/testwait"
)

// TestFleetLive: a live daemon, the kernel's audit daemon, routes every
// event to the host log, the container logs and the fleet stream (an
// embedded JetStream server, port picked free); a container's 200 execs
// reach the stream, and `contid search --fleet` finds the same events as
// the local search of the host log.
func TestFleetLive(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	defer s.Shutdown()
	if !s.ReadyForConnections(testwait.Idle()) {
		t.Fatal("nats server not ready")
	}
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)

	dir := t.TempDir()
	filter := filepath.Join(dir, "filter.rules")
	if err := os.WriteFile(filter, []byte("-a keep,host,container,stream=fleet\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "contid.toml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "[audit]\nfilter = %q\n[fleet]\nroute = \"fleet\"\nurls = %q\nhost = \"e2e\"\ncreate_stream = true\nspool_dir = %q\n",
		filter, url, filepath.Join(dir, "spool")), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startAudit(t, "-a always,exit -F arch=b64 -S execve -F key=contid-fleet\n", "--config", cfg)
	tru := privateTrue(t)
	if _, errOut, code := d.sh(`"$C" exec --contid 78 -- sh -c 'for i in $(seq 200); do "$T"; done'`, "T="+tru); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	d.waitRecord(records.ContainerOp, "op=drop", "contid=78")
	local, errOut, code := d.sh(`"$C" search -if "$L" --contid 78 -k contid-fleet`, "L="+filepath.Join(d.logs(), "audit.log"))
	if code != 0 || strings.Count(local, "type=SYSCALL") < 200 {
		t.Fatalf("local search: exit %d, %d events: %s", code, strings.Count(local, "type=SYSCALL"), errOut)
	}
	var fleet string
	testwait.Until(t, "the fleet search finds the local search's events", func() (bool, any) {
		fleet, _, _ = d.sh(`"$C" search --fleet "$U" --contid 78 -k contid-fleet`, "U="+url)
		return fleet == local, len(fleet)
	})
	st, _, _ := d.sh(`"$C" status --json`)
	for _, c := range []string{`"fleet_connected": 1`, `"fleet_dropped": 0`, `"fleet_pending": 0`} {
		if !strings.Contains(st, c) {
			t.Errorf("status lacks %s:\n%s", c, st)
		}
	}
}
