package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/contid/contid/internal/config"
	"github.com/contid/contid/internal/records"
	"github.com/contid/contid/internal/surface/oci"
)

// runContid runs the built binary and returns stdout, stderr and the exit code.
func runContid(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(contidBin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	return runCmd(t, cmd)
}

// TestDaemonPrintConfig: `contid daemon --print-config` prints the
// configuration in force: the embedded defaults, a --config file's keys
// over them, and flags over both; the output is itself a configuration
// file that gives the same configuration; an unknown key is an error.
func TestDaemonPrintConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	printed := func(args ...string) (config.Config, string) {
		t.Helper()
		out, errOut, code := runContid(t, "", append([]string{"daemon", "--print-config"}, args...)...)
		if code != 0 {
			t.Fatalf("daemon --print-config %v: exit %d: %s", args, code, errOut)
		}
		var c config.Config
		md, err := toml.Decode(out, &c)
		if err != nil {
			t.Fatalf("daemon --print-config %v: output is not TOML: %v\n%s", args, err, out)
		}
		if u := md.Undecoded(); len(u) > 0 {
			t.Fatalf("daemon --print-config %v prints keys the configuration does not have: %v", args, u)
		}
		return c, out
	}
	def, defText := printed()
	if want := config.Default(); !reflect.DeepEqual(def, want) {
		t.Fatalf("defaults printed:\n%+v\nembedded:\n%+v", def, want)
	}
	// What it prints is a configuration file giving the same configuration.
	if c, text := printed("--config", write("printed.toml", defText)); !reflect.DeepEqual(c, def) || text != defText {
		t.Fatalf("the printed defaults read back as another configuration:\n%s", text)
	}

	file := write("contid.toml", "log_level = \"warn\"\n[log]\nnum_logs = 9\n[audit]\nmode = \"listener\"\ntimeout_ms = 500\n")
	want := config.Default()
	want.LogLevel, want.Log.NumLogs, want.Audit.Mode, want.Audit.TimeoutMS = "warn", 9, "listener", 500
	if c, text := printed("--config", file); !reflect.DeepEqual(c, want) {
		t.Fatalf("with --config: printed\n%s\nwant %+v", text, want)
	}
	rules := write("audit.rules", "-a always,exit -F arch=b64 -S execve\n")
	want.LogLevel, want.Audit.Mode, want.Audit.JSON, want.LogDir, want.Audit.Rules = "error", "off", true, "/srv/contid-logs", rules
	c, text := printed("--config", file, "--log-level", "error", "--audit", "off", "--json-log", "--log-dir", "/srv/contid-logs", "--audit-rules", rules)
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("with --config and flags: printed\n%s\nwant %+v", text, want)
	}

	for _, tt := range []struct{ name, text, want string }{
		{"unknown.toml", "[log]\nnum_log = 3\n", "num_log"},
		{"toplevel.toml", "logdir = \"/x\"\n", "logdir"},
		{"section.toml", "[logs]\nnum_logs = 3\n", "logs"},
		{"value.toml", "[audit]\nmode = \"sometimes\"\n", "sometimes"},
	} {
		out, errOut, code := runContid(t, "", "daemon", "--print-config", "--config", write(tt.name, tt.text))
		if code == 0 || out != "" || !strings.Contains(errOut, tt.want) {
			t.Errorf("%s (%q): exit %d, stdout %q, stderr %q; want a failure naming %q", tt.name, tt.text, code, out, errOut, tt.want)
		}
	}
	if _, errOut, code := runContid(t, "", "daemon", "--print-config", "--audit", "sometimes"); code == 0 || !strings.Contains(errOut, "sometimes") {
		t.Errorf("--audit sometimes: exit %d, %q; want a failure naming the value", code, errOut)
	}
}

// TestHookPrintConfig: the stanza `contid oci-hook --print-config runc`
// prints, put into a bundle's config.json as it is, makes runc register
// the container; the hooks.d form is the file contrib/hooks.d ships.
func TestHookPrintConfig(t *testing.T) {
	d := startDaemon(t, "")
	out, errOut, code := runContid(t, "", "oci-hook", "--print-config", "runc", "--path", contidBin, "--socket", d.socket)
	if code != 0 {
		t.Fatalf("oci-hook --print-config runc: exit %d: %s", code, errOut)
	}
	var stanza map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &stanza); err != nil || len(stanza) != 1 || stanza["hooks"] == nil {
		t.Fatalf("oci-hook --print-config runc: want {\"hooks\": …}, got %v:\n%s", err, out)
	}
	id := "contid-e2e-printcfg-" + strconv.Itoa(os.Getpid())
	dir := bundle(t, d, "echo inside", map[string]string{oci.Annotation: "4321"})
	runcBundleHooks(t, dir, stanza["hooks"])
	if o, err := runcCmd(t, id, "run", "--bundle", dir, id); err != nil || !strings.Contains(o, "inside") {
		t.Fatalf("runc run with the printed stanza: %v\n%s", err, o)
	}
	d.awaitRecord(records.ContainerOp, "op=set", "contid=4321", "comm=runc", "res=success")

	shipped, err := os.ReadFile("../contrib/hooks.d/contid.json")
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, code = runContid(t, "", "oci-hook", "--print-config", "hooks.d")
	var got, want any
	json.Unmarshal([]byte(out), &got)
	json.Unmarshal(shipped, &want)
	if code != 0 || got == nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("oci-hook --print-config hooks.d (exit %d, %s):\n%s\ncontrib/hooks.d/contid.json:\n%s", code, errOut, out, shipped)
	}
}

// TestHookAllowUnregistered: when the daemon refuses (the contid is taken:
// ENOTUNIQ) or does not answer, runc does not start the container; with
// --allow-unregistered it starts, unregistered, and the hook says why on
// its stderr.
func TestHookAllowUnregistered(t *testing.T) {
	d := startDaemon(t, "")
	hookWith := func(socket string, allow bool) any {
		args := []string{"contid", "oci-hook", "--socket", socket}
		if allow {
			args = append(args, "--allow-unregistered")
		}
		return map[string]any{"createRuntime": []any{map[string]any{"path": contidBin, "args": args}}}
	}
	pre := "contid-e2e-allow-" + strconv.Itoa(os.Getpid()) + "-"
	// Container a holds contid 4711.
	a := bundle(t, d, "exec sleep 60", map[string]string{oci.Annotation: "4711"})
	if out, err := runcCmd(t, pre+"a", "run", "-d", "--bundle", a, pre+"a"); err != nil {
		t.Fatalf("runc run a: %v\n%s", err, out)
	}
	d.awaitRecord(records.ContainerOp, "op=set", "contid=4711", "res=success")
	down := filepath.Join(t.TempDir(), "no-daemon.sock")

	for _, tt := range []struct {
		name, socket string
		why          string // in runc's output when refused
		failed       int    // res=failed records of 4711 by then
	}{
		{"taken", d.socket, "ENOTUNIQ", 1},
		{"daemon-down", down, down, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			id := pre + tt.name
			dir := bundle(t, d, "exec sleep 60", map[string]string{oci.Annotation: "4711"})
			runcBundleHooks(t, dir, hookWith(tt.socket, false))
			out, err := runcCmd(t, id, "run", "-d", "--bundle", dir, id)
			if err == nil || !strings.Contains(out, tt.why) || !strings.Contains(out, "must not start unregistered") {
				t.Fatalf("without --allow-unregistered: runc run: %v\n%s", err, out)
			}
			if st, err := exec.Command("runc", "state", id).CombinedOutput(); err == nil && strings.Contains(string(st), `"running"`) {
				t.Fatalf("the refused container runs:\n%s", st)
			}

			exec.Command("runc", "delete", "-f", id).Run()
			runcBundleHooks(t, dir, hookWith(tt.socket, true))
			if out, err := runcCmd(t, id, "run", "-d", "--bundle", dir, id); err != nil {
				t.Fatalf("with --allow-unregistered: runc run: %v\n%s", err, out)
			}
			x := apiTask(t, d.socket, runcPid(t, id))
			if len(x.Chain) != 0 || x.KernelContid != nil {
				t.Fatalf("the container started with --allow-unregistered has chain %v, kernel %v; want none", x.Chain, x.KernelContid)
			}
		})
	}
	// Every refusal is on record: the taken case's two attempts.
	awaitProgress(t, "both refusals of contid 4711 on record", func() (string, bool) {
		n := len(d.hostRecords(records.ContainerOp, "op=set", "contid=4711", "res=failed", "errno=ENOTUNIQ"))
		return strconv.Itoa(n), n == 2
	})

	// The hook's own word: what runc discards from a hook that succeeds.
	state := `{"ociVersion":"1.0.2","id":"x","status":"creating","pid":` + strconv.Itoa(os.Getpid()) + `,"bundle":"/nonexistent","annotations":{"org.contid.contid":"4711"}}`
	out, errOut, code := runContid(t, state, "oci-hook", "--socket", down, "--allow-unregistered")
	if code != 0 || out != "" || !strings.Contains(errOut, "starting unregistered") || !strings.Contains(errOut, down) {
		t.Fatalf("oci-hook --allow-unregistered, daemon down: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	out, errOut, code = runContid(t, state, "oci-hook", "--socket", d.socket, "--allow-unregistered")
	if code != 0 || !strings.Contains(errOut, "starting unregistered") {
		t.Fatalf("oci-hook --allow-unregistered, refused: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}
