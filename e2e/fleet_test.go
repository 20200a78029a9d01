package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/contid/contid/internal/records"
	"github.com/contid/contid/internal/sink/fleet"
	"github.com/contid/contid/internal/surface/metrics"
	"github.com/contid/contid/internal/testing/testwait"
)

// TestFleetLive: a live daemon, the kernel's audit daemon, routes every
// event to the host log, the container logs and the fleet stream (an
// embedded JetStream server, port picked free); a container's 200 execs
// reach the stream, `contid search --fleet` finds the same events as the
// local search of the host log, and the registry bucket holds the
// container, registered and dropped.
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
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "[audit]\nfilter = %q\n[fleet]\nroute = \"fleet\"\nurls = %q\nhost = \"e2e\"\ncreate_stream = true\nregistry = true\nspool_dir = %q\n",
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
	var found string
	testwait.Until(t, "the fleet search finds the local search's events", func() (bool, any) {
		found, _, _ = d.sh(`"$C" search --fleet "$U" --contid 78 -k contid-fleet`, "U="+url)
		return found == local, len(found)
	})
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var reg fleet.Registration
	testwait.Until(t, "the registry holds the container, dropped", func() (bool, any) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		kv, err := js.KeyValue(ctx, fleet.RegistryBucket("CONTID"))
		if err != nil {
			return false, err.Error()
		}
		e, err := kv.Get(ctx, fleet.RegistryKey("e2e", 78))
		if err != nil {
			return false, err.Error()
		}
		reg = fleet.Registration{}
		if err := json.Unmarshal(e.Value(), &reg); err != nil {
			t.Fatal(err)
		}
		return reg.Dropped != 0, e.Revision()
	})
	if reg.Host != "e2e" || reg.Contid != 78 || len(reg.Chain) != 1 || reg.Chain[0] != 78 || reg.Registered == 0 || reg.Dropped < reg.Registered {
		t.Fatalf("registry entry %+v", reg)
	}
	st, _, _ := d.sh(`"$C" status --json`)
	for _, c := range []string{`"fleet_connected": 1`, `"fleet_dropped": 0`, `"fleet_pending": 0`} {
		if !strings.Contains(st, c) {
			t.Errorf("status lacks %s:\n%s", c, st)
		}
	}
	// Every counter the fleet route adds has a metric of its own.
	for k := range d.status().Counters {
		if !metrics.Described(k) {
			t.Errorf("status counter %q has no metric name of its own", k)
		}
	}
}
