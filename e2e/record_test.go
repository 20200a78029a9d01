package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/contid/contid/internal/records"
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
sleep 2.5; "$T"
wait
`
	_, errOut, code := d.sh(`exec "$C" exec --contid 7 --name outer -- sh -c '` + strings.ReplaceAll(script, "'", `'"'"'`) + `'`)
	if code != 0 {
		t.Fatalf("scenario: exit %d\n%s", code, errOut)
	}
	d.stop()
	host := hostLogHas(t, d,
		"op=set opid=", "contid=7 old-contid=-1", "contid=8 old-contid=7", // the containers
		"res=failed errno=EBUSY",   // the refused registration of a process with children
		"op=drop", "type=UNKNOWN[", // drops, namespace records
	)
	golden.Equal(t, "the host log", replayTrace(t, trace), host)
}

// hostLogHas returns the daemon's host log, failing unless it holds each
// of want: the scenario ran as meant.
func hostLogHas(t *testing.T, d *daemon, want ...string) []byte {
	t.Helper()
	host := mustRead(t, filepath.Join(d.dir, "audit.log"))
	for _, w := range want {
		if !bytes.Contains(host, []byte(w)) {
			t.Fatalf("the host log lacks %q: the scenario did not run as meant\n%s", w, host)
		}
	}
	return host
}

// TestRecordReplayAudit: with kernel audit on, a recorded run replays to
// the daemon's host log byte for byte: the kernel's execve events of a
// contained exec loop with their CONTAINER_ID records, a nested
// container, the drops, contid's own records that went through the
// kernel's stream and came back, and event time advanced by the ticks.
// Without one of its batches, or one of its ticks, the replay differs:
// the trace is what reproduces the log, not the replay's own inventions.
//
// A tick shows in the log only when it ends an event that a later batch
// would not: a BPF record (the test loads a program) waits the
// reassembly timeout (2 s of event time) for records of its stamp, and a
// 3.5 s nanosleep's event, begun right after and stamped then, arrives
// after that timeout but does not advance event time past it. Live, a
// tick (once a second) during the last 1.5 s of the sleep delivers the
// BPF record first; without ticks, it follows the sleep. The rules audit
// only this test's own binaries, but records no rule selects (other
// processes' BPF loads) also advance event time: of naps rounds, one
// whose last 1.5 s has none of them is enough.
func TestRecordReplayAudit(t *testing.T) {
	const naps = 3
	trace := filepath.Join(t.TempDir(), "run.trace")
	tru := privateTrue(t)
	nap := filepath.Join(filepath.Dir(tru), "nap-"+t.Name())
	if err := os.WriteFile(nap, mustRead(t, "/bin/sleep"), 0o755); err != nil {
		t.Fatal(err)
	}
	d := startAudit(t, "-a always,exit -F arch=b64 -S execve -F exe="+tru+" -k exec\n"+
		"-a always,exit -F arch=b64 -S clock_nanosleep -F exe="+nap+" -k nap\n", "--record", trace)
	script := `
for i in $(seq 50); do "$T"; done
"$C" exec --contid 8 --name inner -- sh -c 'for i in 1 2 3 4 5; do "$T"; done'
sleep 0.2 & "$C" set $! 10
wait
`
	_, errOut, code := d.sh(`exec "$C" exec --contid 7 --name outer -- sh -c '`+strings.ReplaceAll(script, "'", `'"'"'`)+`'`, "T="+tru)
	if code != 0 {
		t.Fatalf("scenario: exit %d\n%s", code, errOut)
	}
	d.waitRecord(records.ContainerOp, "op=drop", "contid=7")
	for range naps {
		prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
			Type: ebpf.SocketFilter, License: "GPL",
			Instructions: asm.Instructions{asm.LoadImm(asm.R0, 0, asm.DWord), asm.Return()},
		})
		if err != nil {
			t.Fatalf("loading a BPF program: %v", err)
		}
		if out, err := exec.Command(nap, "3.5").CombinedOutput(); err != nil {
			t.Fatalf("%s 3.5: %v\n%s", nap, err, out)
		}
		prog.Close()
	}
	d.stop()
	host := hostLogHas(t, d,
		"contid=7 old-contid=-1", "contid=8 old-contid=7", "contid=10 old-contid=7", // the containers
		"op=drop", "key=\"exec\"", "key=\"nap\"", "type=BPF", // drops, the kernel's events
		"type=UNKNOWN[2901]", "contid=8,^7", // attributed, nested
	)
	if n := len(execs(readEvents(t, filepath.Join(d.dir, "audit.log")), tru)); n != 55 {
		t.Fatalf("%d execve events of %s in the host log, want 55", n, tru)
	}
	golden.Equal(t, "the host log", replayTrace(t, trace), host)

	// Leave lines out of the trace: the replay must notice.
	lines := strings.SplitAfter(string(mustRead(t, trace)), "\n")
	without := func(drop func(i int, l string) bool) string {
		var kept []string
		for i, l := range lines {
			if !drop(i, l) {
				kept = append(kept, l)
			}
		}
		p := filepath.Join(t.TempDir(), "cut.trace")
		if err := os.WriteFile(p, []byte(strings.Join(kept, "")), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	batch := slices.IndexFunc(lines, func(l string) bool {
		return strings.HasPrefix(l, `{"op":"batch"`) && strings.Contains(l, tru)
	})
	if batch < 0 {
		t.Fatalf("no batch with an execve of %s in the trace", tru)
	}
	if !replayDiffers(without(func(i int, _ string) bool { return i == batch }), host) {
		t.Fatalf("the replay without the batch of line %d gives the host log all the same", batch+1)
	}
	// One tick left out is made up for by the next; the nap spans several.
	if !replayDiffers(without(func(_ int, l string) bool { return strings.HasPrefix(l, `{"op":"tick"`) }), host) {
		t.Fatalf("the replay without its ticks gives the host log all the same: ticks are not replayed, "+
			"or in each of %d naps records of other processes advanced event time (see the host log before each nap's clock_nanosleep)", naps)
	}
}

// replayTrace is contid replay's output for the trace at path.
func replayTrace(t *testing.T, path string) []byte {
	t.Helper()
	out, err := runReplay(path)
	if err != nil {
		t.Fatalf("replay %s: %v", path, err)
	}
	return out
}

// replayDiffers: contid replay of the trace at path fails (it found the
// trace inconsistent) or gives other bytes than want.
func replayDiffers(path string, want []byte) bool {
	out, err := runReplay(path)
	return err != nil || !bytes.Equal(out, want)
}

func runReplay(path string) ([]byte, error) {
	cmd := exec.Command(contidBin, "replay", path)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%v\n%s", err, errb.String())
	}
	return out.Bytes(), nil
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
