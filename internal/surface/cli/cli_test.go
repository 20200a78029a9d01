package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func run(args ...string) (code int, out, errOut string) {
	var o, e bytes.Buffer
	code = Run(args, Stdio{In: strings.NewReader(""), Out: &o, Err: &e})
	return code, o.String(), e.String()
}

func TestReplay(t *testing.T) {
	code, out, errOut := run("replay", "-i", "--utc", "../../../docs/example.trace")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"type=CONTAINER_OP msg=audit(11/26/2026 10:00:01.500:4294967296) : op=set opid=200 contid=4660 old-contid=-1 pid=100",
		"type=CONTAINER_OP msg=audit(11/26/2026 10:00:02.000:4294967298) : op=drop opid=200 contid=4660",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestReplayErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.trace")
	os.WriteFile(bad, []byte("{\"op\":\"task\",\"time\":\"2026-11-26T10:00:00Z\",\"pid\":1}\n{\"op\":\"fork\"}\n"), 0o644)
	tests := []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"replay", bad}, 1, "contid: replay: " + bad + ":2: missing \"time\" (1 inputs applied before it)"},
		{[]string{"replay", "/nonexistent/t"}, 1, "no such file or directory"},
		{[]string{"replay", "-i", "--json", bad}, 1, "-i and --json exclude each other"},
		{[]string{"replay"}, 2, "expected \"<trace>\""},
		{[]string{"frobnicate"}, 2, "unexpected argument frobnicate"},
	}
	for _, tt := range tests {
		code, _, errOut := run(tt.args...)
		if code != tt.code || !strings.Contains(errOut, tt.err) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tt.args, code, errOut, tt.code, tt.err)
		}
	}
}

// TestHookPrintConfig: the printed stanza names the hook's flags that a
// runtime must pass (it runs hooks without the caller's environment), and
// only those given; the default socket is left to the hook's default.
func TestHookPrintConfig(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"runc"}, `"args":["contid","oci-hook"]`},
		{[]string{"runc", "--socket", defaultSocket}, `"args":["contid","oci-hook"]`},
		{[]string{"runc", "--socket", "/srv/c.sock", "--allow-unregistered"}, `"args":["contid","oci-hook","--socket","/srv/c.sock","--allow-unregistered"]`},
		{[]string{"hooks.d", "--path", "/opt/contid"}, `"path":"/opt/contid"`},
	}
	for _, tt := range tests {
		code, out, errOut := run(append([]string{"oci-hook", "--print-config"}, tt.args...)...)
		flat := strings.Join(strings.Fields(out), "")
		if code != 0 || !strings.Contains(flat, tt.want) {
			t.Errorf("%v: exit %d (%s), output %s; want %s", tt.args, code, errOut, flat, tt.want)
		}
	}
	t.Setenv("CONTID_SOCKET", "/env/c.sock")
	if _, out, _ := run("oci-hook", "--print-config", "runc"); !strings.Contains(strings.Join(strings.Fields(out), ""), `"--socket","/env/c.sock"`) {
		t.Errorf("CONTID_SOCKET is not carried into the stanza:\n%s", out)
	}
}
