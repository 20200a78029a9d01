package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/contid/contid/internal/records"
	"github.com/contid/contid/internal/surface/api"
	"github.com/contid/contid/internal/surface/oci"
	"github.com/contid/contid/internal/testing/testwait"
)

// bundle makes an OCI bundle of a static busybox running script, with
// contid's hook (pointing at the daemon's socket) and annotations.
func bundle(t testing.TB, d *daemon, script string, annotations map[string]string) string {
	t.Helper()
	for _, tool := range []string{"runc", "/bin/busybox"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is required (scripts/test installs runc and busybox-static): %v", tool, err)
		}
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "rootfs", "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(bin, "busybox"), b, 0o755)
	for _, a := range []string{"sh", "sleep", "true", "cat"} {
		os.Symlink("busybox", filepath.Join(bin, a))
	}
	spec := exec.Command("runc", "spec")
	spec.Dir = dir
	if out, err := spec.CombinedOutput(); err != nil {
		t.Fatalf("runc spec: %v: %s", err, out)
	}
	editJSON(t, filepath.Join(dir, "config.json"), func(cfg map[string]any) {
		proc := cfg["process"].(map[string]any)
		proc["terminal"] = false
		proc["args"] = []string{"sh", "-c", script}
		cfg["hooks"] = map[string]any{"createRuntime": []any{map[string]any{
			"path": contidBin, "args": []string{"contid", "oci-hook", "--socket", d.socket},
		}}}
		cfg["annotations"] = annotations
	})
	return dir
}

// podmanEnv runs podman as these tests do: runc, cgroupfs, rlimits within
// this host's hard limits (see TestPodmanHooksDir), and the hooks
// directory holding only hookFile, which the test writes.
type podmanEnv struct{ hooks, hookFile, conf string }

func newPodman(t *testing.T) podmanEnv {
	t.Helper()
	if _, err := exec.LookPath("podman"); err != nil {
		t.Fatalf("podman is required (scripts/test installs it): %v", err)
	}
	dir := t.TempDir()
	p := podmanEnv{hooks: filepath.Join(dir, "hooks.d"), conf: filepath.Join(dir, "containers.conf")}
	p.hookFile = filepath.Join(p.hooks, "contid.json")
	if err := os.Mkdir(p.hooks, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.conf, []byte("[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// cmd is podman with args.
func (p podmanEnv) cmd(args ...string) *exec.Cmd {
	cmd := exec.Command("podman", append([]string{"--cgroup-manager", "cgroupfs", "--runtime", "runc", "--hooks-dir", p.hooks}, args...)...)
	cmd.Env = append(os.Environ(), "CONTAINERS_CONF="+p.conf)
	return cmd
}

// editJSON rewrites the JSON object in the file at path as edit changes it.
func editJSON(t testing.TB, path string, edit func(map[string]any)) {
	t.Helper()
	copyJSON(t, path, path, edit)
}

// copyJSON writes the JSON object in the file at src, as edit changes it,
// to the file at dst.
func copyJSON(t testing.TB, src, dst string, edit func(map[string]any)) {
	t.Helper()
	raw, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s: %v", src, err)
	}
	edit(m)
	if raw, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

// ociRuntime is an OCI runtime as the tests run it.
type ociRuntime struct {
	name   string
	prefix []string // the command line before the runtime's own arguments
}

var runtimes = []ociRuntime{
	{"runc", []string{"runc"}},
	// crun 1.8 refuses this machine's hybrid cgroup layout; in a private
	// mount namespace without /sys/fs/cgroup/unified it runs (docs/kernel.md).
	{"crun", []string{"unshare", "-m", "sh", "-c", `umount /sys/fs/cgroup/unified 2>/dev/null; exec crun "$@"`, "crun"}},
}

func (r ociRuntime) cmd(args ...string) *exec.Cmd {
	all := append(append([]string{}, r.prefix...), args...)
	return exec.Command(all[0], all[1:]...)
}

func (r ociRuntime) run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := r.cmd(args...).Output()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", r.name, args, err, out)
	}
	return string(out)
}

// TestRuntimeHook: runc and crun run contid's hook, which registers the
// container's init for the runtime; the init and its children carry the
// contid in the kernel and the engine; the name is recorded; deleting the
// container ends it with op=drop.
func TestRuntimeHook(t *testing.T) {
	d := startDaemon(t, "")
	for _, rt := range runtimes {
		t.Run(rt.name, func(t *testing.T) { runtimeHook(t, d, rt) })
	}
}

func runtimeHook(t *testing.T, d *daemon, rt ociRuntime) {
	if _, err := exec.LookPath(rt.name); err != nil {
		t.Fatalf("%s is required (scripts/test installs it): %v", rt.name, err)
	}
	id := "contid-e2e-" + rt.name + "-" + strconv.Itoa(os.Getpid())
	dir := bundle(t, d, "sleep 600 & sleep 600 & wait", map[string]string{"org.contid.name": "busy"})
	// The container inherits runc's stdio: give it a file, not a pipe this
	// test would wait on.
	logf, err := os.Create(filepath.Join(dir, "runc.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	run := rt.cmd("run", "-d", "--bundle", dir, id)
	run.Stdout, run.Stderr = logf, logf
	if err := run.Run(); err != nil {
		b, _ := os.ReadFile(logf.Name())
		t.Fatalf("%s run: %v\n%s", rt.name, err, b)
	}
	t.Cleanup(func() { rt.cmd("delete", "-f", id).Run() })
	var st struct{ Pid int }
	json.Unmarshal([]byte(rt.run(t, "state", id)), &st)
	want := oci.Hash(id)
	// The init and both sleeps.
	var kids []string
	children := "/proc/" + strconv.Itoa(st.Pid) + "/task/" + strconv.Itoa(st.Pid) + "/children"
	testwait.Until(t, "the container's two sleeps", func() (bool, any) {
		b, _ := os.ReadFile(children)
		kids = strings.Fields(string(b))
		return len(kids) >= 2, len(kids)
	})
	out, errOut, code := d.sh(`for p in ` + strconv.Itoa(st.Pid) + " " + strings.Join(kids, " ") + `; do "$C" get --json $p; done`)
	if code != 0 {
		t.Fatalf("get: %s", errOut)
	}
	ts := tasks(t, out)
	if len(ts) != 3 {
		t.Fatalf("%d tasks read back, want 3:\n%s", len(ts), out)
	}
	for _, x := range ts {
		if len(x.Chain) != 1 || x.Chain[0] != uint64(want) || x.KernelContid == nil || *x.KernelContid != uint64(want) {
			t.Fatalf("task %d: chain %v kernel %s, want %d", x.PID, x.Chain, kernelOf(x), want)
		}
	}
	cs, _, _ := d.sh(`"$C" containers`)
	if !strings.Contains(cs, id+"/busy") {
		t.Fatalf("containers lacks the runtime's id and name:\n%s", cs)
	}
	d.waitRecord(records.ContainerOp, "op=set", "contid="+want.String(), "name="+id+"/busy", "comm="+rt.name, "res=success")

	// Exec into the running container: the runtime moves the new process
	// into the container's cgroups, and it joins (op=join); its child,
	// left to the container's init, has the contid too.
	rt.run(t, "exec", id, "sh", "-c", "sleep 600 </dev/null >/dev/null 2>&1 & true")
	var joined []string
	testwait.For(t, "the exec'd sleep, left to the container's init", func() bool {
		b, _ := os.ReadFile(children)
		joined = nil
		for _, k := range strings.Fields(string(b)) {
			// The runtime's own helper ("exe", runc init) may pass
			// through the init's children too: only the sleep counts.
			comm, _ := os.ReadFile("/proc/" + k + "/comm")
			if !slices.Contains(kids, k) && strings.TrimSpace(string(comm)) == "sleep" {
				joined = append(joined, k)
			}
		}
		return len(joined) > 0
	})
	if len(joined) != 1 {
		t.Fatalf("after %s exec: new children of the init %v, want one sleep", rt.name, joined)
	}
	out, errOut, code = d.sh(`"$C" get --json ` + joined[0])
	if code != 0 {
		t.Fatalf("get: %s", errOut)
	}
	if x := tasks(t, out)[0]; len(x.Chain) != 1 || x.Chain[0] != uint64(want) || x.KernelContid == nil || *x.KernelContid != uint64(want) {
		t.Fatalf("exec'd process's child %d (%s, ppid %d): chain %v kernel %s, want %d\n%s", x.PID, x.Comm, x.PPID, x.Chain, kernelOf(x), want, out)
	}
	j := d.waitRecord(records.ContainerOp, "op=join", "contid="+want.String(), "old-contid=-1", "res=success")
	t.Logf("%s", records.AppendRaw(nil, &j))
	rt.run(t, "kill", id, "KILL")
	testwait.For(t, rt.name+" delete after kill", func() bool { return rt.cmd("delete", id).Run() == nil })
	d.waitRecord(records.ContainerOp, "op=drop", "contid="+want.String())
}

// kernelOf shows a task's kernel contid ("none" when unset).
func kernelOf(x api.Task) string {
	if x.KernelContid == nil {
		return "none"
	}
	return strconv.FormatUint(*x.KernelContid, 10)
}

// TestRuncHookRefusal: when the daemon refuses, the container does not
// start, and runc says why.
func TestRuncHookRefusal(t *testing.T) {
	d := startDaemon(t, "")
	id := "contid-e2e-bad-" + strconv.Itoa(os.Getpid())
	dir := bundle(t, d, "true", map[string]string{oci.Annotation: "18446744073709551615"})
	out, err := exec.Command("runc", "run", "--bundle", dir, id).CombinedOutput()
	exec.Command("runc", "delete", "-f", id).Run()
	if err == nil || !strings.Contains(string(out), "EINVAL") || !strings.Contains(string(out), "must not start unregistered") {
		t.Fatalf("runc run: %v\n%s", err, out)
	}
	d.waitRecord(records.ContainerOp, "op=set", "contid=18446744073709551615", "res=failed", "errno=EINVAL")
}

// TestPodmanHooksDir: podman runs contid's hooks.d hook (the file
// contrib/hooks.d/contid.json, pointed at this daemon) for a --rootfs
// container. This host's root lacks CAP_SYS_RESOURCE, so podman's default
// rlimits (nofile, nproc 1048576) cannot be set: containers.conf keeps them
// within the hard limits. A host with CAP_SYS_RESOURCE needs no such file.
func TestPodmanHooksDir(t *testing.T) {
	pm := newPodman(t)
	d := startDaemon(t, "")
	copyJSON(t, "../contrib/hooks.d/contid.json", pm.hookFile, func(hook map[string]any) {
		h := hook["hook"].(map[string]any)
		h["path"] = contidBin
		h["args"] = []string{"contid", "oci-hook", "--socket", d.socket}
	})
	rootfs := filepath.Join(bundle(t, d, "true", nil), "rootfs")
	out, err := pm.cmd("run", "--rm", "--annotation", "org.contid.name=webby", "--rootfs", rootfs, "sh", "-c", "echo inside").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "inside") {
		t.Fatalf("podman run: %v\n%s", err, out)
	}
	r := d.waitRecord(records.ContainerOp, "op=set", "comm=runc", "res=success")
	if name, _ := r.Get("name"); !strings.HasSuffix(name, "/webby") {
		t.Fatalf("name %q, want ID/webby", name)
	}
	c, _ := r.Get("contid")
	d.waitRecord(records.ContainerOp, "op=drop", "contid="+c)
}

// TestNestedThroughRuntime: a container runs its own orchestrator. The
// hook registers it (500) and, as its annotation asks, grants capcontid;
// inside, without CAP_AUDIT_CONTROL and in its own pid namespace, contid
// exec registers its child as 501 through the bind-mounted socket: the
// child's chain is 501,^500.
func TestNestedThroughRuntime(t *testing.T) {
	d := startDaemon(t, "")
	rt := runtimes[0]
	id := "contid-e2e-nest-" + strconv.Itoa(os.Getpid())
	dir := bundle(t, d, "", map[string]string{oci.Annotation: "500", oci.CapAnnotation: "1"})
	contidInside(t, d, dir, "contid", "exec", "--contid", "501", "--", "sh", "-c", "sleep 600")

	logf, _ := os.Create(filepath.Join(dir, "runc.log"))
	defer logf.Close()
	run := rt.cmd("run", "-d", "--bundle", dir, id)
	run.Stdout, run.Stderr = logf, logf
	if err := run.Run(); err != nil {
		b, _ := os.ReadFile(logf.Name())
		t.Fatalf("run: %v\n%s", err, b)
	}
	t.Cleanup(func() { rt.cmd("delete", "-f", id).Run() })
	r := d.waitRecord(records.ContainerOp, "op=set", "contid=501", "old-contid=500")
	if res, _ := r.Get("res"); res != "success" {
		b, _ := os.ReadFile(logf.Name())
		t.Fatalf("nested registration refused: %v\ncontainer output:\n%s", r.Fields, b)
	}
	d.waitRecord(records.SetCapcontid, "capcontid=1", "res=success")
	opid, _ := r.Get("opid")
	got, errOut, code := d.sh(`"$C" get --chain ` + opid)
	if code != 0 || strings.TrimSpace(got) != "501,^500" {
		t.Fatalf("nested child chain %q (%s)", got, errOut)
	}
}

// TestContainerCannotChange: a process in a container, root inside but
// without CAP_AUDIT_CONTROL or capcontid, reaching the daemon's socket,
// can change neither its own contid nor anyone's; the pinned maps are not
// in its mount namespace.
func TestContainerCannotChange(t *testing.T) {
	d := startDaemon(t, "")
	rt := runtimes[0]
	id := "contid-e2e-hostile-" + strconv.Itoa(os.Getpid())
	script := `sleep 600 & contid set $! 5; echo rc-set=$?
contid set 1 6; echo rc-init=$?
contid exec --contid 7 -- true; echo rc-exec=$?
ls /sys/fs/bpf/ 2>&1 | head -1; echo done`
	dir := bundle(t, d, script, map[string]string{oci.Annotation: "600"})
	os.Symlink("busybox", filepath.Join(dir, "rootfs", "bin", "ls"))
	os.Symlink("busybox", filepath.Join(dir, "rootfs", "bin", "head"))
	contidInside(t, d, dir)
	out, err := rt.cmd("run", "--bundle", dir, id).CombinedOutput()
	rt.cmd("delete", "-f", id).Run()
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	for _, want := range []string{"rc-set=1", "rc-init=1", "rc-exec=125", "EPERM", "done"} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("container output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "contid_task") {
		t.Fatalf("the container sees the pinned maps:\n%s", out)
	}
	for _, c := range []string{"5", "6", "7"} {
		r := d.waitRecord(records.ContainerOp, "op=set", "contid="+c)
		if res, _ := r.Get("res"); res != "failed" {
			t.Fatalf("contid %s: %v", c, r.Fields)
		}
	}
}

// contidInside puts this build's contid into bundle dir's rootfs and d's
// socket directory at /run/contid, with CONTID_SOCKET naming the socket
// there, and sets the hook, which grants capcontid only to the containers
// its owner names (contid-e2e-nest-*). args, when given, replace the
// process's.
func contidInside(t *testing.T, d *daemon, dir string, args ...string) {
	t.Helper()
	b, err := os.ReadFile(contidBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rootfs", "bin", "contid"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	editJSON(t, filepath.Join(dir, "config.json"), func(cfg map[string]any) {
		proc := cfg["process"].(map[string]any)
		if len(args) > 0 {
			proc["args"] = args
		}
		proc["env"] = append(proc["env"].([]any), "CONTID_SOCKET=/run/contid/contid.sock")
		cfg["hooks"] = map[string]any{"createRuntime": []any{map[string]any{
			"path": contidBin, "args": []string{"contid", "oci-hook", "--socket", d.socket, "--capcontid-allow", "contid-e2e-nest-*"},
		}}}
		cfg["mounts"] = append(cfg["mounts"].([]any), map[string]any{
			"destination": "/run/contid", "type": "bind", "source": d.dir, "options": []string{"bind"},
		})
	})
}
