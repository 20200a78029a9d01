package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/contid/contid/internal/records"
	"github.com/contid/contid/internal/source/auditnl/audittest"
	"github.com/contid/contid/internal/surface/api"
	"github.com/contid/contid/internal/surface/oci"
)

// unshareLoops is how many times the unprivileged user runs each unshare.
const unshareLoops = 150

// TestAttackUnshareFlood: an unprivileged user's unshare loop writes no
// namespace record and so cannot rotate evidence out of the host log, while
// a container that shares every host namespace runs beside it (which makes
// those namespaces containers' too). It runs with kernel audit off and as
// the primary audit daemon, with and without the namespace syscall hooks.
// The end of the loop is known by progress, not time: a registration after
// it is answered only once the daemon has applied every task event before
// it, and its drop record follows every record those events wrote.
func TestAttackUnshareFlood(t *testing.T) {
	for _, audit := range []bool{false, true} {
		for _, exact := range []bool{false, true} {
			t.Run(fmt.Sprintf("audit=%v/ns_syscalls=%v", audit, exact), func(t *testing.T) {
				cfg := filepath.Join(t.TempDir(), "contid.toml")
				if err := os.WriteFile(cfg, []byte(fmt.Sprintf("ns_syscalls = %v\n", exact)), 0o644); err != nil {
					t.Fatal(err)
				}
				var d *daemon
				if audit {
					d = startAudit(t, "", "--config", cfg)
				} else {
					d = startDaemon(t, "", "--config", cfg)
				}
				unshareFlood(t, d)
			})
		}
	}
}

func unshareFlood(t *testing.T, d *daemon) {
	// Container 4401 shares every host namespace while the loop runs.
	out, errOut, code := d.sh(`"$C" exec --contid 4401 -- sleep 600 >/dev/null 2>&1 & echo $!`)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	sleeper, _ := strconv.Atoi(string(out[:len(out)-1]))
	t.Cleanup(func() { d.sh("kill " + strconv.Itoa(sleeper)) })
	d.waitRecord(records.NSInfo, "contid=4401")
	// A registered task of the container: its namespaces are the host's.
	waitFor(t, func() bool {
		o, _, c := d.sh(`"$C" ps --json`)
		var ts []api.Task
		if c != 0 || json.Unmarshal([]byte(o), &ts) != nil {
			return false
		}
		for _, x := range ts {
			if len(x.Chain) > 0 && x.Chain[0] == 4401 && x.Comm == "sleep" {
				return true
			}
		}
		return false
	}, "container 4401's sleep")

	before := countByType(d.logRecords())
	inputs := counter(t, d, "engine_inputs")
	_, errOut, code = d.sh(`setpriv --reuid 65534 --regid 65534 --clear-groups sh -c '
		i=0
		while [ $i -lt ` + strconv.Itoa(unshareLoops) + ` ]; do
			unshare -Urn true || exit 3
			unshare -Urnimu true || exit 4
			unshare -Urp --fork true || exit 5
			i=$((i+1))
		done'`)
	if code != 0 {
		t.Fatalf("unprivileged unshare loop: exit %d: %s", code, errOut)
	}
	// The barrier: a registration answered after the loop's events, and
	// its drop written after their records.
	if _, errOut, code := d.sh(`"$C" exec --contid 4402 -- true`); code != 0 {
		t.Fatalf("barrier registration: exit %d: %s", code, errOut)
	}
	d.waitRecord(records.ContainerOp, "op=drop", "contid=4402")
	// Three processes and two execs per unshare at least: the daemon saw them.
	if got := counter(t, d, "engine_inputs") - inputs; got < 3*3*unshareLoops {
		t.Fatalf("the daemon applied %d inputs during the loop, want at least %d: it did not see the loop", got, 3*3*unshareLoops)
	}
	after := countByType(d.logRecords())
	for _, typ := range []records.Type{records.NSCreate, records.NSChange, records.NSDestroy, records.ContidForged} {
		if n := after[typ] - before[typ]; n != 0 {
			t.Errorf("%d %s records written during the unprivileged unshare loop, want 0", n, typ)
		}
	}
	// contid wrote nothing else than the barrier's registration and drop.
	if n := after[records.ContainerOp] - before[records.ContainerOp]; n != 2 {
		t.Errorf("%d CONTAINER_OP records during the loop, want 2 (the barrier's set and drop)", n)
	}
	if n := after[records.NSInfo] - before[records.NSInfo]; n != 1 {
		t.Errorf("%d NS_INFO records during the loop, want 1 (the barrier's)", n)
	}
	for typ, n := range after {
		if n != before[typ] {
			t.Logf("during the loop: %d more %s", n-before[typ], typ)
		}
	}
}

func countByType(recs []records.Record) map[records.Type]int {
	m := map[records.Type]int{}
	for _, r := range recs {
		m[r.Type]++
	}
	return m
}

// counter reads one of `contid status` counters.
func counter(t *testing.T, d *daemon, name string) uint64 {
	t.Helper()
	c := d.status().Counters
	v, ok := c[name]
	if !ok {
		t.Fatalf("status has no counter %s: %v", name, c)
	}
	return v
}

// TestAttackCapcontidAnnotation: a container's creator asks for capcontid
// with the annotation, and the hook's owner did not list the container:
// the container is registered, but gets no capcontid and does not start;
// with --allow-unregistered it starts without capcontid.
func TestAttackCapcontidAnnotation(t *testing.T) {
	d := startDaemon(t, "")
	rt := runtimes[0]
	for i, tc := range []struct {
		allowUnregistered bool
	}{{false}, {true}} {
		id := "contid-e2e-capask-" + strconv.Itoa(os.Getpid()) + "-" + strconv.Itoa(i)
		want := strconv.Itoa(4500 + i)
		dir := bundle(t, d, "sleep 60", map[string]string{oci.Annotation: want, oci.CapAnnotation: "1"})
		args := []string{"contid", "oci-hook", "--socket", d.socket, "--capcontid-allow", "web-*,db-*"}
		if tc.allowUnregistered {
			args = append(args, "--allow-unregistered")
		}
		editJSON(t, filepath.Join(dir, "config.json"), func(cfg map[string]any) {
			cfg["hooks"] = map[string]any{"createRuntime": []any{map[string]any{"path": contidBin, "args": args}}}
		})

		// A file, not a pipe: a detached container keeps its stdio open.
		logf, err := os.Create(filepath.Join(dir, "runc.log"))
		if err != nil {
			t.Fatal(err)
		}
		run := rt.cmd("run", "-d", "--bundle", dir, id)
		run.Stdout, run.Stderr = logf, logf
		err = run.Run()
		logf.Close()
		out, _ := os.ReadFile(logf.Name())
		t.Cleanup(func() { rt.cmd("delete", "-f", id).Run() })
		if started := err == nil; started != tc.allowUnregistered {
			t.Errorf("allow-unregistered %v: container started %v: %s", tc.allowUnregistered, started, out)
		}
		if !tc.allowUnregistered && !strings.Contains(string(out), "asks for capcontid") {
			t.Errorf("the runtime's output does not say why: %s", out)
		}
		d.waitRecord(records.ContainerOp, "op=set", "contid="+want, "res=success")
	}
	// Neither container got capcontid: no attempt reached the daemon.
	for _, r := range d.logRecords() {
		if r.Type == records.SetCapcontid {
			t.Errorf("capcontid was asked of the daemon: %v", r.Fields)
		}
	}
}

// TestAttackRegistrationLoop: an unprivileged orchestrator granted
// capcontid registers short-lived containers in a loop, then as many live
// ones as it can. The live ones stop at max_containers_per_owner (EDQUOT,
// written and counted), and the logs of the dropped ones are bounded by
// keep_dropped: the loop cannot fill the disk or the inode table.
func TestAttackRegistrationLoop(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "contid.toml")
	if err := os.WriteFile(cfg, []byte("max_containers_per_owner = 2\n[containers]\nkeep_dropped = 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Listener mode: the per-container logs are written in every audit
	// mode, and a listener runs beside any audit daemon the machine has.
	requireRoot(t)
	audittest.Lock(t)
	audittest.Restore(t)
	if out, err := exec.Command("auditctl", "-e", "1").CombinedOutput(); err != nil {
		t.Fatalf("auditctl -e 1: %v: %s", err, out)
	}
	d := startDaemon(t, "", "--audit", "listener", "--config", cfg)
	const loops = 20
	// A directory the unprivileged user can write: the fifo that holds it
	// until it has capcontid, and the refusal it reads back.
	// (t.TempDir's parent is private to root.)
	tmp, err := os.MkdirTemp("", "contid-e2e-quota-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	os.Chmod(tmp, 0o777)
	fifo := filepath.Join(tmp, "go")
	_, errOut, code := d.sh(`mkfifo -m 0666 "$F" || exit 8
		setpriv --reuid 65534 --regid 65534 --clear-groups sh -c '
			read x < "$F"
			i=0
			while [ $i -lt `+strconv.Itoa(loops)+` ]; do
				sleep 60 & S=$!
				"$C" set $S $((6000+i)) >/dev/null || exit 3
				kill $S; wait $S
				i=$((i+1))
			done
			sleep 60 & A=$!; "$C" set $A 6100 >/dev/null || exit 4
			sleep 60 & B=$!; "$C" set $B 6101 >/dev/null || exit 5
			sleep 60 & X=$!; "$C" set $X 6102 2>"$F.err" && exit 6
			grep -q EDQUOT "$F.err" || exit 7
			kill $A $B $X; wait
		' & P=$!
		"$C" capcontid $P 1 || { kill $P; exit 9; }
		echo go > "$F"
		wait $P`, "F="+fifo)
	if code != 0 {
		b, _ := os.ReadFile(fifo + ".err")
		t.Fatalf("exit %d: %s %s", code, errOut, b)
	}
	d.waitRecord(records.ContainerOp, "op=set", "contid=6102", "res=failed", "errno=EDQUOT")
	d.waitRecord(records.ContainerOp, "op=drop", "contid=6100")
	d.waitRecord(records.ContainerOp, "op=drop", "contid=6101")
	if n := counter(t, d, "quota_refused"); n != 1 {
		t.Errorf("quota_refused %d, want 1", n)
	}
	// Every container is dropped: no live log directory is left, and of
	// the 22 dropped ones the 3 latest are kept.
	ents, err := os.ReadDir(filepath.Join(d.dir, "containers"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() != "dropped" {
			t.Errorf("containers/%s left after its drop", e.Name())
		}
	}
	kept, err := os.ReadDir(filepath.Join(d.dir, "containers", "dropped"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range kept {
		names = append(names, e.Name())
	}
	if len(names) != 3 || !strings.HasPrefix(names[0], "6019-") || !strings.HasPrefix(names[1], "6100-") || !strings.HasPrefix(names[2], "6101-") {
		t.Errorf("containers/dropped holds %v, want 6019-, 6100-, 6101-…", names)
	}
	if n := counter(t, d, "container_logs_removed"); n != loops+2-3 {
		t.Errorf("container_logs_removed %d, want %d", n, loops+2-3)
	}
}

// droppedLog returns the log of the dropped container id: the one
// directory containers/dropped/<id>-<drop time> holds.
func droppedLog(t *testing.T, d *daemon, id string) string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(d.dir, "containers", "dropped", id+"-*", "audit.log"))
	if err != nil || len(m) != 1 {
		t.Fatalf("logs of dropped container %s: %v, %v", id, m, err)
	}
	if _, err := os.Stat(filepath.Join(d.dir, "containers", id)); !os.IsNotExist(err) {
		t.Errorf("containers/%s still there after the drop: %v", id, err)
	}
	return m[0]
}
