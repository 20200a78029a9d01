package tracker

import (
	"bytes"
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/contid/contid/internal/source/taskevent"
	"github.com/contid/contid/internal/testing/testwait"
)

var record = flag.Bool("record", false, "record kernel samples into testdata/events (needs root; then run -update)")

// TestRecord refreshes testdata/events/linux-RELEASE-ARCH.hex from the
// running kernel: the events of a tagged shell that forks, execs, unshares
// a net namespace, enters one with setns and exits with a code.
func TestRecord(t *testing.T) {
	if !*record {
		return // a tool, not a test: run with -record to record samples from this kernel
	}
	tr, _ := openTest(t, Config{OnlyTagged: true, NSSyscalls: true})
	h := startTagged(t, tr, 4242, `/bin/true; unshare -n true; nsenter --net=/proc/$$/ns/net true; sh -c 'exit 3'; exit 0`)
	h.release(t)

	w := testwait.NewWatch(context.Background(), "the tagged shell's events")
	defer w.Stop()
	var out bytes.Buffer
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		t.Fatal(err)
	}
	release := unix.ByteSliceToString(uts.Release[:])
	fmt.Fprintf(&out, "# recorded by go test -run TestRecord -record on Linux %s %s\n", release, runtime.GOARCH)
	fmt.Fprintf(&out, "# nsdev %d\n", tr.NSDev())
	for {
		tr.readMu.Lock()
		raw, err := tr.readRaw(w.Context())
		raw = bytes.Clone(raw)
		tr.readMu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		e, err := Decode(raw, tr.NSDev())
		if err != nil {
			t.Fatal(err)
		}
		w.Moved()
		fmt.Fprintln(&out, hex.EncodeToString(raw))
		if e.Kind == taskevent.KindExit && int(e.TID) == h.pid() {
			break
		}
	}
	ver, _, _ := strings.Cut(release, "-")
	name := filepath.Join("testdata", "events", fmt.Sprintf("linux-%s-%s.hex", ver, runtime.GOARCH))
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s; now run go test -run TestDecodeRecorded -update", name)
}
