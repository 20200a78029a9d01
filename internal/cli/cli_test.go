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
	code, out, errOut := run("replay", "-i", "--utc", "../../docs/example.trace")
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
