package config

import (
	"strings"
	"testing"

	"github.com/contid/contid/internal/auditlog"
)

func TestDefaults(t *testing.T) {
	c := Default()
	if c.LogDir != "/var/log/contid" || c.Socket != "/run/contid/contid.sock" || c.Log.NumLogs != 5 || c.Log.Flush != auditlog.FlushIncrementalAsync {
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
	c, err := Parse([]byte("log_dir = \"/srv/log\"\n[log]\nflush = \"SYNC\"\nnum_logs = 2\n"), "f")
	if err != nil || c.LogDir != "/srv/log" || c.Log.Flush != auditlog.FlushSync || c.Log.NumLogs != 2 || c.Socket != "/run/contid/contid.sock" {
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
		{"log_dir = ", "f:"},
		{"\x00\xff", "f:"},
	}
	for _, tt := range tests {
		if _, err := Parse([]byte(tt.in), "f"); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: %v, want %q", tt.in, err, tt.want)
		}
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
