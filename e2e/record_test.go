package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/contid/contid/internal/testing/golden"
)

// TestRecordReplay: a live run recorded with --record replays, with
// contid replay, to the daemon's host log byte for byte: seeds from
// /proc, task events, registrations (granted and refused), nested
// containers, namespace changes and drops.
func TestRecordReplay(t *testing.T) {
	trace := filepath.Join(t.TempDir(), "run.trace")
	d := startDaemon(t, "", "--record", trace)
	script := `
"$C" exec --contid 8 --name inner -- sh -c 'sleep 0.2 & wait'
unshare --net sh -c 'true'
"$C" set $$ 9 || true
sleep 0.2 & "$C" set $! 10
wait
`
	_, errOut, code := d.sh(`exec "$C" exec --contid 7 --name outer -- sh -c '` + strings.ReplaceAll(script, "'", `'"'"'`) + `'`)
	if code != 0 {
		t.Fatalf("scenario: exit %d\n%s", code, errOut)
	}
	d.stop()
	host, err := os.ReadFile(filepath.Join(d.dir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"op=set opid=", "contid=7 old-contid=-1", "contid=8 old-contid=7", // the containers
		"res=failed errno=EBUSY",   // the refused registration of a process with children
		"op=drop", "type=UNKNOWN[", // drops, namespace records
	} {
		if !bytes.Contains(host, []byte(want)) {
			t.Fatalf("the host log lacks %q: the scenario did not run as meant\n%s", want, host)
		}
	}
	cmd := exec.Command(contidBin, "replay", trace)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("replay: %v\n%s", err, errb.String())
	}
	golden.Equal(t, "the host log", out.Bytes(), host)
}
