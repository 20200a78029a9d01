package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
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
// container, registered and dropped. The spool copies every event
// (spool_copy).
func TestFleetLive(t *testing.T) {
	port := freeTCPPort(t)
	natsAt(t, port, t.TempDir())
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	// The copy form of the spool here; TestFleetSpoolOperations runs the
	// default, which refers to the host log.
	cfg := fleetConfig(t, url, "e2e", "registry = true\nspool_copy = true\n")
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
	for _, c := range []string{`"fleet_connected": 1`, `"fleet_dropped": 0`, `"fleet_pending": 0`, `"fleet_held_files": 0`, `"fleet_held_bytes": 0`} {
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

// freeTCPPort returns a local TCP port free a moment ago.
func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// fleetConfig writes a daemon configuration that routes every event to
// the host log, the container logs and the fleet stream of host at url
// (creating the stream), with extra lines in [fleet]; it returns its
// path.
func fleetConfig(t *testing.T, url, host, extra string) string {
	t.Helper()
	dir := t.TempDir()
	filter := filepath.Join(dir, "filter.rules")
	if err := os.WriteFile(filter, []byte("-a keep,host,container,stream=fleet\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "contid.toml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "[audit]\nfilter = %q\n[fleet]\nroute = \"fleet\"\nurls = %q\nhost = %q\ncreate_stream = true\nspool_dir = %q\n%s",
		filter, url, host, filepath.Join(dir, "spool"), extra), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// natsAt runs a JetStream server on port with its store in dir until
// stop; a server started again on the same port and store is the same
// server back.
func natsAt(t *testing.T, port int, dir string) (stop func()) {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(testwait.Idle()) {
		t.Fatal("nats server not ready")
	}
	var once sync.Once
	stop = func() { once.Do(func() { s.Shutdown(); s.WaitForShutdown() }) }
	t.Cleanup(stop)
	return stop
}

// TestFleetSpoolOperations: the stream route's spool refers to the host
// log for the events it holds (fleet.spool_copy off, the default), and
// the operator's routine does not lose one, with kernel audit on and the
// servers down: logrotate's rename and SIGHUP, and the rotated log
// removed before the events are published (the daemon keeps it open);
// SIGKILL and restart (the spool finds its log again). What cannot be
// published because its log was removed while the daemon was down is not
// sent wrong: it is counted, as a CONTID_LOSS record of kind stream.
// Every other container's exec events reach the stream exactly once.
func TestFleetSpoolOperations(t *testing.T) {
	port := freeTCPPort(t) // the servers start later, on this port
	url, store := fmt.Sprintf("nats://127.0.0.1:%d", port), t.TempDir()
	cfg := fleetConfig(t, url, "ops", "")
	d := startAudit(t, "-a always,exit -F arch=b64 -S execve -F key=contid-ops\n", "--config", cfg)
	tru := privateTrue(t)
	host := filepath.Join(d.logs(), "audit.log")
	// execs runs a container's 60 execs and returns how many exec
	// events of it the host log holds (the loop's, its shell's, …).
	execs := func(id int) int {
		t.Helper()
		if _, errOut, code := d.sh(fmt.Sprintf(`"$C" exec --contid %d -- sh -c 'for i in $(seq 60); do "$T"; done'`, id), "T="+tru); code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		// The drop is written, and spooled, after the execs' events.
		d.waitRecord(records.ContainerOp, "op=drop", fmt.Sprintf("contid=%d", id))
		out, errOut, code := d.sh(fmt.Sprintf(`"$C" search -if "$L" --contid %d -k contid-ops`, id), "L="+host)
		n := strings.Count(out, "type=SYSCALL")
		if code != 0 || n < 60 {
			t.Fatalf("local search of container %d: exit %d, %d execs: %s", id, code, n, errOut)
		}
		return n
	}
	local := map[int]int{}
	inStream := func(id, want int) {
		t.Helper()
		testwait.Until(t, fmt.Sprintf("container %d's %d execs in the stream", id, want), func() (bool, any) {
			out, errOut, _ := d.sh(fmt.Sprintf(`"$C" search --fleet "$U" --contid %d -k contid-ops`, id), "U="+url)
			n := strings.Count(out, "type=SYSCALL")
			if n > want {
				t.Fatalf("container %d: %d execs in the stream, want %d", id, n, want)
			}
			return n == want, [2]int{n, len(errOut)}
		})
	}
	counters := func() map[string]uint64 { return d.status().Counters }

	// Servers down. logrotate: rename, SIGHUP; then the rotated log
	// removed while its events wait in the spool.
	local[81] = execs(81)
	if err := os.Rename(host, host+".1"); err != nil {
		t.Fatal(err)
	}
	before := len(d.output())
	d.cmd.Process.Signal(syscall.SIGHUP)
	waitSaid(t, d, before, "reloaded configuration")
	local[82] = execs(82)
	if c := counters(); c["fleet_held_files"] != 2 || c["fleet_published"] != 0 {
		t.Fatalf("held files %d, published %d: want both logs held, nothing published", c["fleet_held_files"], c["fleet_published"])
	}
	if err := os.Remove(host + ".1"); err != nil {
		t.Fatal(err)
	}
	stop := natsAt(t, port, store)
	inStream(81, local[81])
	inStream(82, local[82])

	// Servers down again; SIGKILL and restart: the spool finds its log.
	stop()
	local[83] = execs(83)
	d.kill()
	d.start()
	stop = natsAt(t, port, store)
	inStream(83, local[83])

	// Servers down; the daemon stopped and its log removed before its
	// events were published: counted lost, not sent.
	stop()
	local[84] = execs(84)
	d.stop()
	if err := os.Remove(host); err != nil {
		t.Fatal(err)
	}
	d.start()
	natsAt(t, port, store)
	var lost records.Record
	testwait.Until(t, "a CONTID_LOSS record of kind stream", func() (bool, any) {
		rs := d.hostRecords(records.ContidLoss, "kind=stream")
		if len(rs) > 0 {
			lost = rs[0]
		}
		return len(rs) > 0, counters()["fleet_unreadable"]
	})
	n, _ := lost.Get("count")
	c := counters()
	if got, err := strconv.ParseUint(n, 10, 64); err != nil || got != c["fleet_unreadable"] || got < uint64(local[84]) || c["fleet_dropped"] != got {
		t.Fatalf("CONTID_LOSS count %s; fleet_unreadable %d, fleet_dropped %d: want one count of at least container 84's %d execs", n, c["fleet_unreadable"], c["fleet_dropped"], local[84])
	}
	out, _, _ := d.sh(`"$C" search --fleet "$U" --contid 84 -k contid-ops`, "U="+url)
	if k := strings.Count(out, "type=SYSCALL"); k != 0 {
		t.Fatalf("%d of container 84's execs in the stream though their log was removed", k)
	}
	for _, id := range []int{81, 82, 83} {
		inStream(id, local[id])
	}
}
