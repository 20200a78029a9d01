package e2e

import (
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/contid/contid/internal/surface/api"
)

// waitScript defines registered JOB FILE: it waits until the process
// whose pid contid exec's child wrote to FILE has a contid, or until JOB
// (the contid exec) has ended (then it fails).
const waitScript = `registered() {
	while kill -0 $1 2>/dev/null; do
		[ -s "$2" ] && "$C" get $(cat "$2") 2>/dev/null | grep -qv unset && return 0
		sleep 0.02
	done
	return 1
}
`

// tmpShared is a temporary directory every user may enter.
func tmpShared(t *testing.T) string {
	dir, err := os.MkdirTemp("", "contid-e2e-view-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o777|os.ModeSticky)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// sections splits a script's output at lines "== NAME".
func sections(out string) map[string]string {
	m := map[string]string{}
	name := ""
	for _, l := range strings.SplitAfter(out, "\n") {
		if strings.HasPrefix(l, "== ") {
			name = strings.TrimSpace(l[3:])
			continue
		}
		m[name] += l
	}
	return m
}

func decodeJSON[T any](t *testing.T, what, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("%s: %v\n%s", what, err, s)
	}
	return v
}

// TestContainedCallerView: a process inside a registered container sees,
// through ps, containers and get (CLI and JSON), only its own container
// and those nested in it; a sibling container is not there, and asking
// for one of its processes is ESRCH.
func TestContainedCallerView(t *testing.T) {
	d := startDaemon(t, "")
	out, errOut, code := d.sh(`eval "$W"
"$C" exec --contid 700 -- sh -c 'echo $$ > "$T/s"; exec sleep 60' & S=$!
registered $S "$T/s" || exit 9
"$C" exec --contid 701 -- sh -c '
	eval "$W"
	"$C" exec --contid 702 -- sh -c "echo \$\$ > $T/n; exec sleep 60" & N=$!
	registered $N "$T/n" || exit 9
	echo "== ps"; "$C" ps -a --json
	echo "== containers"; "$C" containers --json
	echo "== containers-text"; "$C" containers
	echo "== get-sibling"; "$C" get $(cat "$T/s") 2>&1; echo "rc=$?"
	echo "== get-nested"; "$C" get --chain $(cat "$T/n")
	kill $N'
R=$?; kill $S; exit $R`, "T="+tmpShared(t), "W="+waitScript)
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errOut, out)
	}
	s := sections(out)
	for _, x := range decodeJSON[[]api.Task](t, "ps", s["ps"]) {
		if len(x.Chain) == 0 || !strings.Contains(","+strconv.FormatUint(x.Chain[len(x.Chain)-1], 10)+",", ",701,") {
			t.Errorf("the contained caller sees task %d (%s) with chain %v", x.PID, x.Comm, x.Chain)
		}
	}
	cs := decodeJSON[[]api.Container](t, "containers", s["containers"])
	var ids []uint64
	for _, c := range cs {
		ids = append(ids, c.Contid)
	}
	if len(ids) != 2 || ids[0] != 701 || ids[1] != 702 {
		t.Errorf("the contained caller sees containers %v, want [701 702]", ids)
	}
	if strings.Contains(s["containers-text"], "700") {
		t.Errorf("the sibling shows in `contid containers`:\n%s", s["containers-text"])
	}
	if !strings.Contains(s["get-sibling"], "ESRCH") || !strings.Contains(s["get-sibling"], "rc=1") {
		t.Errorf("get of the sibling's process: %s", s["get-sibling"])
	}
	if strings.TrimSpace(s["get-nested"]) != "702,^701" {
		t.Errorf("get of the nested process: %q", s["get-nested"])
	}
}

// TestNestedPidNSView: a caller in its own pid namespace without a contid
// (an unregistered container) sees only the tasks of its namespace, with
// the pids of that namespace, no host container, and its own registered
// container with the owner's pid as it sees it. An unprivileged host
// caller sees no exe of a process /proc would not show it.
func TestNestedPidNSView(t *testing.T) {
	d := startDaemon(t, "")
	out, errOut, code := d.sh(`eval "$W"
"$C" exec --contid 720 -- sh -c 'echo $$ > "$T/h"; exec sleep 60' & H=$!
registered $H "$T/h" || exit 9
unshare --fork --pid --mount-proc sh -c '
	eval "$W"
	sleep 60 & P=$!
	echo "== containers-before"; "$C" containers --json
	"$C" exec --contid 721 -- sh -c "echo \$\$ > $T/e; exec sleep 60" & E=$!
	registered $E "$T/e" || exit 9
	echo "== ps"; "$C" ps -a --json
	echo "== proc"; ls /proc | grep "^[0-9]*$" | tr "\n" " "; echo
	echo "== containers"; "$C" containers --json
	echo "== exec-pid"; echo $E
	echo "== get-host"; "$C" get $(cat "$T/h") 2>&1; echo "rc=$?"
	echo "== get-self"; "$C" get --json $$
	kill $P $E'
R=$?
echo "== unpriv"; setpriv --reuid=65534 --regid=65534 --clear-groups sh -c 'echo $$; "$C" ps -a --json'
kill $H; exit $R`, "T="+tmpShared(t), "W="+waitScript)
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errOut, out)
	}
	s := sections(out)
	if cs := decodeJSON[[]api.Container](t, "containers-before", s["containers-before"]); len(cs) != 0 {
		t.Errorf("an unregistered container sees host containers: %+v", cs)
	}
	procs := map[int32]bool{}
	for _, f := range strings.Fields(s["proc"]) {
		n, _ := strconv.Atoi(f)
		procs[int32(n)] = true
	}
	ps := decodeJSON[[]api.Task](t, "ps", s["ps"])
	if len(ps) == 0 {
		t.Fatal("ps in the namespace shows nothing")
	}
	sawInit := false
	for _, x := range ps {
		if !procs[x.PID] && x.Comm != "contid" { // the ps command has exited since
			t.Errorf("ps shows pid %d (%s), not a process of the namespace (its /proc: %s)", x.PID, x.Comm, s["proc"])
		}
		if x.PID == 1 {
			sawInit = true
			if x.PPID != 0 {
				t.Errorf("the namespace's init has ppid %d, want 0 (its parent is outside)", x.PPID)
			}
		} else if x.PPID != 0 && !procs[x.PPID] {
			t.Errorf("pid %d has ppid %d, outside the namespace", x.PID, x.PPID)
		}
		if len(x.Chain) > 0 && x.Chain[0] == 720 {
			t.Errorf("a host container's task shows: %+v", x)
		}
	}
	if !sawInit {
		t.Errorf("ps in the namespace lacks its init (pid 1): %s", s["ps"])
	}
	cs := decodeJSON[[]api.Container](t, "containers", s["containers"])
	execPID, _ := strconv.Atoi(strings.TrimSpace(s["exec-pid"]))
	if len(cs) != 1 || cs[0].Contid != 721 || cs[0].OwnerPID != int32(execPID) {
		t.Errorf("containers in the namespace: %+v; want only 721 owned by pid %d", cs, execPID)
	}
	if !strings.Contains(s["get-host"], "ESRCH") {
		t.Errorf("get of a host pid from the namespace: %s", s["get-host"])
	}
	if self := decodeJSON[api.Task](t, "get-self", s["get-self"]); self.PID != 1 {
		t.Errorf("get $$ of the namespace's init answers pid %d", self.PID)
	}

	lines := strings.SplitN(s["unpriv"], "\n", 2)
	me, _ := strconv.Atoi(strings.TrimSpace(lines[0]))
	sawOwn := false
	for _, x := range decodeJSON[[]api.Task](t, "unpriv", lines[1]) {
		switch {
		case x.PID == 1 && x.Exe != "":
			t.Errorf("uid 65534 sees init's exe %q, which /proc denies it", x.Exe)
		case x.PID == int32(me):
			sawOwn = x.Exe != ""
		case x.PID == int32(d.cmd.Process.Pid) && x.Exe != "":
			t.Errorf("uid 65534 sees the daemon's exe %q", x.Exe)
		}
	}
	if !sawOwn {
		t.Errorf("uid 65534 does not see its own shell's exe (pid %d)", me)
	}
}
