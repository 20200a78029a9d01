package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/contid/contid/internal/records"
	"github.com/contid/contid/internal/source/auditnl/audittest"
)

// startPlugin runs `contid audisp` as the plugin of an auditd started for
// the test, from the shipped plugins.d file, and returns it as a daemon
// (stopped with auditd). The caller holds the audit lock.
func startPlugin(t *testing.T) (*daemon, *auditdProc) {
	t.Helper()
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	d := &daemon{t: t, dir: filepath.Join(dir, "logs"), socket: filepath.Join(dir, "contid.sock"),
		pinDir: filepath.Join("/sys/fs/bpf", "contid-e2e-own-"+strconv.Itoa(os.Getpid()))}
	t.Cleanup(func() { os.RemoveAll(d.pinDir) })
	cfg := filepath.Join(dir, "contid.toml")
	if err := os.WriteFile(cfg, []byte("log_dir = \""+d.dir+"\"\nsocket = \""+d.socket+"\"\npin_dir = \""+d.pinDir+"\"\nlog_level = \"debug\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := startAuditd(t, shippedPluginConf(t, cfg))
	d.awaitAudisp(a)
	return d, a
}

// auditModes start a daemon in each mode that reads kernel records. The
// caller holds the audit lock and calls audittest.Restore.
var auditModes = []struct {
	name  string
	start func(t *testing.T) *daemon
}{
	{"primary", func(t *testing.T) *daemon {
		return startDaemon(t, "", "--audit", "primary")
	}},
	{"listener", func(t *testing.T) *daemon {
		startAuditd(t, "")
		return startDaemon(t, "", "--audit", "listener")
	}},
	{"plugin", func(t *testing.T) *daemon {
		d, _ := startPlugin(t)
		return d
	}},
}

// TestOwnRecordFallback: in every mode that reads kernel records, contid's
// own records (here CONTAINER_OP) go into the kernel's stream while kernel
// audit is enabled: the kernel stamps them (a serial below 2^32) and they
// read msg='…'. Disabled with `auditctl -e 0` while the daemon runs, the
// next one is written to the host log directly, stamped from contid's own
// serial space, and counted as own_local; enabled again, they go back into
// the stream. Each registration is in the host log exactly once.
// (Contids are numbered from the test's pid: in listener and plugin mode
// the host log also holds other contid daemons' records.)
func TestOwnRecordFallback(t *testing.T) {
	requireRoot(t)
	audittest.Lock(t) // once for every mode: a lock per subtest would queue behind other packages' tests each time
	for _, m := range auditModes {
		t.Run(m.name, func(t *testing.T) {
			audittest.Restore(t)
			d := m.start(t)
			if st := audittest.Status(t); st.Enabled != 1 {
				t.Fatalf("%s mode: kernel audit enabled=%d, want 1", m.name, st.Enabled)
			}
			register := func(c string, kernel bool) {
				t.Helper()
				if _, errOut, code := d.sh(`"$C" exec --contid ` + c + ` -- true`); code != 0 {
					t.Fatalf("contid exec --contid %s: exit %d: %s", c, code, errOut)
				}
				r := d.awaitRecord(records.ContainerOp, "op=set", "contid="+c, "res=success")
				inStream := r.Stamp.Serial < records.OwnSerialBase && strings.Contains(r.Raw, " msg='op=set ")
				own := r.Stamp.Serial >= records.OwnSerialBase && !strings.Contains(r.Raw, "msg='")
				if kernel && !inStream || !kernel && !own {
					t.Fatalf("contid %s (kernel audit enabled: %v): record not stamped as it should be:\n%s", c, kernel, r.Raw)
				}
			}
			local := func() uint64 { return apiStatus(t, d.socket).Counters["own_local"] }
			// Contids no other test on the machine uses: a listener also
			// receives other contid daemons' records.
			c := func(i int) string { return strconv.Itoa(3_000_000_000 + os.Getpid()*10 + i) }

			register(c(1), true)
			if n := local(); n != 0 {
				t.Fatalf("own_local %d with kernel audit enabled, want 0", n)
			}
			audittest.Auditctl(t, "-e", "0")
			register(c(2), false)
			if n := local(); n == 0 {
				t.Fatal("own_local 0 after a record written directly")
			}
			audittest.Auditctl(t, "-e", "1")
			register(c(3), true)
			d.awaitRecord(records.ContainerOp, "op=drop", "contid="+c(3))
			for _, c := range []string{c(1), c(2), c(3)} {
				if n := len(d.hostRecords(records.ContainerOp, "op=set", "contid="+c)); n != 1 {
					t.Errorf("contid %s: %d op=set records in the host log, want 1", c, n)
				}
			}
		})
	}
}
