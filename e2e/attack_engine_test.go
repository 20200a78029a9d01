package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/contid/contid/internal/api"
	"github.com/contid/contid/internal/oci"
	"github.com/contid/contid/internal/records"
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
	out, errOut, code := d.sh(`"$C" status --json`)
	if code != 0 {
		t.Fatalf("status: exit %d: %s", code, errOut)
	}
	var st api.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status: %v: %s", err, out)
	}
	v, ok := st.Counters[name]
	if !ok {
		t.Fatalf("status has no counter %s: %s", name, out)
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
		var cfg map[string]any
		raw, _ := os.ReadFile(filepath.Join(dir, "config.json"))
		json.Unmarshal(raw, &cfg)
		cfg["hooks"] = map[string]any{"createRuntime": []any{map[string]any{"path": contidBin, "args": args}}}
		raw, _ = json.Marshal(cfg)
		os.WriteFile(filepath.Join(dir, "config.json"), raw, 0o644)

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
