package e2e

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/contid/contid/internal/records"
	"github.com/contid/contid/internal/surface/oci"
)

// A contained process creating a child with clone3(CLONE_INTO_CGROUP) is
// this test binary started with CONTID_E2E_CLONE3 naming the cgroup (a
// role taken before TestMain, so that it runs no test): it runs $SCRIPT
// with sh created in that cgroup and passes on its output.
func init() {
	cg := os.Getenv("CONTID_E2E_CLONE3")
	if cg == "" {
		return
	}
	fd, err := unix.Open(cg, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	cmd := exec.Command("sh", "-c", os.Getenv("SCRIPT"))
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "clone3 role:", err)
		os.Exit(3)
	}
	os.Exit(0)
}

// cgroup2Root returns where the unified cgroup hierarchy is mounted
// (/sys/fs/cgroup/unified on a hybrid layout, /sys/fs/cgroup on v2 only).
func cgroup2Root(t *testing.T) string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent dev root mountpoint opts … - fstype source superopts
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		x := strings.Fields(pre)
		if ok && strings.HasPrefix(post, "cgroup2 ") && len(x) >= 5 && x[3] == "/" {
			return x[4]
		}
	}
	t.Fatal("no cgroup2 hierarchy mounted: clone3(CLONE_INTO_CGROUP) needs one")
	return ""
}

// newCgroup makes an empty cgroup2 directory, removed (after its
// processes are killed) when the test ends.
func newCgroup(t *testing.T, name string) string {
	t.Helper()
	cg := filepath.Join(cgroup2Root(t), name+"-"+strconv.Itoa(os.Getpid()))
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		awaitProgress(t, "cgroup "+cg+" removed", func() (string, bool) {
			b, _ := os.ReadFile(filepath.Join(cg, "cgroup.procs"))
			for _, p := range strings.Fields(string(b)) {
				n, _ := strconv.Atoi(p)
				syscall.Kill(n, syscall.SIGKILL)
			}
			err := os.Remove(cg)
			return string(b), err == nil || os.IsNotExist(err)
		})
	})
	return cg
}

// cloneInto starts `sh -c script` created directly in cgroup cg by
// clone3(CLONE_INTO_CGROUP) (os/exec does that for UseCgroupFD) and
// returns its pid and output once it exits.
func cloneInto(t *testing.T, d *daemon, cg, script string) (int, string) {
	t.Helper()
	fd, err := unix.Open(cg, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	cmd := exec.Command("sh", "-c", script)
	cmd.Env = append(os.Environ(), "CONTID_SOCKET="+d.socket, "C="+contidBin)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("sh created in %s: %v\n%s", cg, err, errb.String())
	}
	return cmd.Process.Pid, out.String()
}

// TestJoinClone3: a process created directly into a registered
// container's cgroup with clone3(CLONE_INTO_CGROUP) has the container's
// contid from its first instruction (the kernel's and the engine's), and
// the join is on record (op=join). The same clone3 into a cgroup no
// container is bound to gives no contid, and a contained creator's child
// keeps its creator's container: a container's process cannot escape
// into another container this way.
func TestJoinClone3(t *testing.T) {
	d := startDaemon(t, "")
	bound := newCgroup(t, "contid-e2e-clone3")
	// The container: a process alone in the cgroup, then registered, which
	// binds the cgroup to its contid.
	out, errOut, code := d.sh(`sleep 300 </dev/null >/dev/null 2>&1 &
echo $! > "$CG/cgroup.procs" && "$C" set $! 4242 >/dev/null && echo $!`, "CG="+bound)
	if code != 0 {
		t.Fatalf("register the cgroup's process: exit %d: %s", code, errOut)
	}
	holder, _ := strconv.Atoi(strings.TrimSpace(out))
	t.Cleanup(func() { syscall.Kill(holder, syscall.SIGKILL) })
	d.awaitRecord(records.ContainerOp, "op=set", "contid=4242", "res=success")

	// The child reads its own contid as the first thing it runs.
	pid, out := cloneInto(t, d, bound, `exec "$C" get --json $$`)
	ts := tasks(t, out)
	if len(ts) != 1 || ts[0].PID != int32(pid) {
		t.Fatalf("get of the clone3 child %d: %s", pid, out)
	}
	if x := ts[0]; len(x.Chain) != 1 || x.Chain[0] != 4242 || x.KernelContid == nil || *x.KernelContid != 4242 {
		t.Fatalf("clone3 child %d in the bound cgroup: chain %v, kernel %v; want 4242 in both", pid, x.Chain, x.KernelContid)
	}
	j := d.awaitRecord(records.ContainerOp, "op=join", "opid="+strconv.Itoa(pid), "contid=4242", "old-contid=-1", "res=success")
	if p, _ := j.Get("pid"); p != strconv.Itoa(os.Getpid()) {
		t.Errorf("op=join names pid=%s as the mover, want this test's pid %d:\n%s", p, os.Getpid(), j.Raw)
	}

	out, errOut, code = d.sh(`"$C" exec --contid 5151 -- env CONTID_E2E_CLONE3="$CG" SCRIPT='exec "$C" get --json $$' "$E2E"`, "CG="+bound)
	if code != 0 {
		t.Fatalf("contained clone3 creator: exit %d: %s", code, errOut)
	}
	x := tasks(t, out)[0]
	if len(x.Chain) != 1 || x.Chain[0] != 5151 || x.KernelContid == nil || *x.KernelContid != 5151 {
		t.Fatalf("child of a process of 5151 created in 4242's cgroup: chain %v, kernel %v; want 5151 in both", x.Chain, x.KernelContid)
	}
	// No join of it is on record. (Unlike a move into the cgroup, which
	// is refused with op=join res=failed errno=EEXIST, the fork event does
	// not say which bound cgroup the child was created in: nothing is
	// recorded; docs/registration.md.)
	if rs := d.hostRecords(records.ContainerOp, "op=join", "opid="+strconv.Itoa(int(x.PID)), "res=success"); len(rs) > 0 {
		t.Fatalf("a contained creator's clone3 child joined another container:\n%s", rs[0].Raw)
	}

	free := newCgroup(t, "contid-e2e-clone3-free")
	pid, out = cloneInto(t, d, free, `exec "$C" get --json $$`)
	if x := tasks(t, out)[0]; len(x.Chain) != 0 || x.KernelContid != nil {
		t.Fatalf("clone3 child %d in a cgroup no container is bound to: chain %v, kernel %v; want none", pid, x.Chain, x.KernelContid)
	}
}

// TestPodmanExec: a process `podman exec` starts in a running container
// that contid's hooks.d hook registered joins the container (op=join),
// and so does its child. The hook file is what `contid oci-hook
// --print-config hooks.d` prints. Podman runs as TestPodmanHooksDir says:
// runc, cgroupfs, and rlimits within this host's hard limits.
func TestPodmanExec(t *testing.T) {
	pm := newPodman(t)
	d := startDaemon(t, "")
	hook, errOut, code := runContid(t, "", "oci-hook", "--print-config", "hooks.d", "--path", contidBin, "--socket", d.socket)
	if code != 0 {
		t.Fatalf("oci-hook --print-config hooks.d: %s", errOut)
	}
	if err := os.WriteFile(pm.hookFile, []byte(hook), 0o644); err != nil {
		t.Fatal(err)
	}
	podman := func(args ...string) (string, error) {
		out, err := pm.cmd(args...).Output()
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out) + string(ee.Stderr), err
		}
		return string(out), err
	}
	rootfs := filepath.Join(bundle(t, d, "true", nil), "rootfs")
	name := "contid-e2e-podexec-" + strconv.Itoa(os.Getpid())
	out, err := podman("run", "-d", "--name", name, "--rootfs", rootfs, "sh", "-c", "sleep 60 & sleep 60 & wait")
	t.Cleanup(func() { podman("rm", "-f", "-t", "0", name) })
	if err != nil {
		t.Fatalf("podman run: %v\n%s", err, out)
	}
	want := oci.Hash(strings.TrimSpace(out)).String()
	d.awaitRecord(records.ContainerOp, "op=set", "contid="+want, "comm=runc", "res=success")
	out, err = podman("inspect", "-f", "{{.State.Pid}}", name)
	init, _ := strconv.Atoi(strings.TrimSpace(out))
	if err != nil || init == 0 {
		t.Fatalf("podman inspect: %v\n%s", err, out)
	}
	children := func() []string {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(init) + "/task/" + strconv.Itoa(init) + "/children")
		return strings.Fields(string(b))
	}
	var kids []string
	awaitProgress(t, "both sleeps of the container's init", func() (string, bool) {
		kids = children()
		return strings.Join(kids, " "), len(kids) == 2
	})

	if out, err := podman("exec", name, "sh", "-c", "sleep 50 </dev/null >/dev/null 2>&1 & true"); err != nil {
		t.Fatalf("podman exec: %v\n%s", err, out)
	}
	var joined []string
	awaitProgress(t, "the exec'd process's child left to the container's init", func() (string, bool) {
		joined = slices.DeleteFunc(children(), func(k string) bool { return slices.Contains(kids, k) })
		return strings.Join(joined, " "), len(joined) == 1
	})
	pid, _ := strconv.Atoi(joined[0])
	x := apiTask(t, d.socket, pid)
	if len(x.Chain) != 1 || strconv.FormatUint(x.Chain[0], 10) != want || x.KernelContid == nil || strconv.FormatUint(*x.KernelContid, 10) != want {
		t.Fatalf("child %d of the podman exec'd process: chain %v, kernel %v; want %s", pid, x.Chain, x.KernelContid, want)
	}
	// The join is on record (the engine has applied it: the chain above).
	kv := []string{"op=join", "contid=" + want, "old-contid=-1", "res=success"}
	awaitProgress(t, fmt.Sprintf("a CONTAINER_OP with %v", kv), func() (string, bool) {
		c := apiStatus(t, d.socket).Counters
		return fmt.Sprintf("ring_lost %d records_written %d", c["ring_lost"], c["records_written"]),
			len(d.hostRecords(records.ContainerOp, kv...)) > 0
	})
}
