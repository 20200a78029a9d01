package config

import (
	"strings"
	"testing"

	"github.com/contid/contid/internal/sink/auditlog"
)

func TestDefaults(t *testing.T) {
	c := Default()
	if c.LogDir != "/var/log/contid" || c.Socket != "/run/contid/contid.sock" || c.Log.NumLogs != 5 || c.Log.Flush != auditlog.FlushIncrementalAsync || c.Audit.BatchMS != 200 {
		t.Fatalf("defaults %+v", c)
	}
	if hl := c.HostLog(); hl.Path != "/var/log/contid/audit.log" || hl.MaxBytes != 8<<20 {
		t.Fatalf("host log %+v", hl)
	}
	// What Text prints parses back to the same configuration.
	back, err := Parse(c.Text(), "text")
	if err != nil || back != c {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
}

func TestParse(t *testing.T) {
	c, err := Parse([]byte("log_dir = \"/srv/log\"\n[log]\nflush = \"SYNC\"\nnum_logs = 2\n[audit]\nbatch_ms = 0\n"), "f")
	if err != nil || c.LogDir != "/srv/log" || c.Log.Flush != auditlog.FlushSync || c.Log.NumLogs != 2 || c.Socket != "/run/contid/contid.sock" || c.Audit.BatchMS != 0 {
		t.Fatalf("got %+v, %v", c, err)
	}
	tests := []struct{ in, want string }{
		{"log_dri = \"/x\"", "unknown keys: log_dri"},
		{"[log]\nfrequency = 3", "unknown keys: log.frequency"},
		{"log_dir = \"relative\"", "must be an absolute path"},
		{"[log]\nflush = \"sometimes\"", "flush"},
		{"[log]\nnum_logs = 0", "num_logs 0"},
		{"[log]\nmax_log_file = -1", "max_log_file -1"},
		{"[containers]\ndisk_full_queue = -1", "containers.disk_full_queue -1"},
		{"log_level = \"loud\"", "log_level"},
		{"max_containers_per_owner = -1", "max_containers_per_owner -1"},
		{"[containers]\nkeep_dropped = -1", "containers.keep_dropped -1"},
		{"[containers]\nkeep_dropped_days = -2", "containers.keep_dropped_days -2"},
		{"[containers]\nkeep = 3", "unknown keys: containers.keep"},
		{"[audit]\nbatch_ms = -1", "audit.batch_ms -1 must be 0–1000"},
		{"[audit]\nbatch_ms = 1001", "audit.batch_ms 1001 must be 0–1000"},
		{"log_dir = ", "f:"},
		{"\x00\xff", "f:"},
	}
	for _, tt := range tests {
		if _, err := Parse([]byte(tt.in), "f"); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: %v, want %q", tt.in, err, tt.want)
		}
	}
}

func TestMetricsEndpoint(t *testing.T) {
	tests := []struct {
		listen        string
		remote        bool
		network, addr string
		err           string
	}{
		{"", false, "", "", ""},
		{"127.0.0.1:9464", false, "tcp", "127.0.0.1:9464", ""},
		{"127.0.0.2:9464", false, "tcp", "127.0.0.2:9464", ""},
		{"localhost:9464", false, "tcp", "127.0.0.1:9464", ""},
		{"[::1]:9464", false, "tcp", "[::1]:9464", ""},
		{"127.0.0.1:0", false, "tcp", "127.0.0.1:0", ""},
		{"/run/contid/metrics.sock", false, "unix", "/run/contid/metrics.sock", ""},
		{"/run/contid/../contid/m.sock", false, "unix", "/run/contid/m.sock", ""},
		// Anything beyond this host is refused unless allowed.
		{":9464", false, "", "", "not a loopback address"},
		{"0.0.0.0:9464", false, "", "", "not a loopback address"},
		{"[::]:9464", false, "", "", "not a loopback address"},
		{"10.1.2.3:9464", false, "", "", "not a loopback address"},
		{"[::ffff:10.1.2.3]:9464", false, "", "", "not a loopback address"},
		{"0.0.0.0:9464", true, "tcp", "0.0.0.0:9464", ""},
		{":9464", true, "tcp", ":9464", ""},
		// A name would be resolved at start: refused even when allowed.
		{"metrics.example:9464", true, "", "", "must be an IP address or localhost"},
		{"localhost.:9464", false, "", "", "must be an IP address or localhost"},
		{"127.0.0.1", false, "", "", "must be host:port"},
		{"127.0.0.1:http", false, "", "", "port"},
		{"127.0.0.1:65536", false, "", "", "port"},
		{"127.0.0.1:-1", false, "", "", "port"},
		{"metrics.sock", false, "", "", "must be host:port"},
	}
	for _, tt := range tests {
		m := Metrics{Listen: tt.listen, AllowRemote: tt.remote}
		n, a, err := m.Endpoint()
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q remote=%v: %q %q %v, want error %q", tt.listen, tt.remote, n, a, err, tt.err)
			}
			continue
		}
		if err != nil || n != tt.network || a != tt.addr {
			t.Errorf("%q remote=%v: %q %q %v, want %q %q", tt.listen, tt.remote, n, a, err, tt.network, tt.addr)
		}
	}
	// The file's keys reach the check.
	if _, err := Parse([]byte("[metrics]\nlisten = \"0.0.0.0:9464\"\n"), "f"); err == nil || !strings.Contains(err.Error(), "not a loopback") {
		t.Errorf("non-loopback listen in a file: %v", err)
	}
	if c, err := Parse([]byte("[metrics]\nlisten = \"0.0.0.0:9464\"\nallow_remote = true\n"), "f"); err != nil || c.Metrics.Listen != "0.0.0.0:9464" {
		t.Errorf("allowed: %+v %v", c.Metrics, err)
	}
	if Default().Metrics.Listen != "" {
		t.Error("metrics must be off by default")
	}
}

// TestDiskFullQueue: disk_full_queue is KiB, and 0 means no queue, which
// the writer's configuration spells negative (its zero is its default).
func TestDiskFullQueue(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
	}{{"", 4096 << 10}, {"[log]\ndisk_full_queue = 0", -1}, {"[log]\ndisk_full_queue = 1", 1024}} {
		c, err := Parse([]byte(tt.in), "f")
		if err != nil {
			t.Fatal(err)
		}
		if got := c.HostLog().QueueBytes; got != tt.want {
			t.Errorf("%q: QueueBytes %d, want %d", tt.in, got, tt.want)
		}
	}
	if got := Default().ContainerLog(1).QueueBytes; got != 256<<10 {
		t.Errorf("container log QueueBytes %d, want 256 KiB", got)
	}
}

func TestFleet(t *testing.T) {
	for _, tc := range []struct{ in, err string }{
		{"", ""},
		{"[fleet]\nroute = \"fleet\"\nurls = \"nats://n1:4222\"\n", ""},
		{"[fleet]\nroute = \"fleet\"\n", "fleet.urls"},
		{"[fleet]\nroute = \"fleet\"\nurls = \"nats://n1:4222\"\nspool_action = \"wait\"\n", "fleet.spool_action"},
		{"[fleet]\nroute = \"fleet\"\nurls = \"nats://n1:4222\"\ncredentials = \"host.creds\"\n", "absolute"},
		{"[fleet]\nroute = \"fleet\"\nurls = \"nats://n1:4222\"\ntls_cert = \"/etc/c.pem\"\n", "together"},
		{"[fleet]\nroute = \"fleet\"\nurls = \"nats://n1:4222\"\nstream_prefix = \"A.B\"\n", "stream_prefix"},
		{"[fleet]\nroute = \"fleet\"\nurls = \"nats://n1:4222\"\nreplicas = 3\nregistry = true\n", ""},
		{"[fleet]\nroute = \"fleet\"\nurls = \"nats://n1:4222\"\nreplicas = 0\n", "fleet.replicas"},
		{"[fleet]\nroute = \"fleet\"\nurls = \"nats://n1:4222\"\nreplicas = 6\n", "fleet.replicas"},
	} {
		_, err := Parse([]byte(tc.in), "f")
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%q: %v, want %q", tc.in, err, tc.err)
		}
	}
}
