package auditnl

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/contid/contid/internal/source/auditnl/audittest"
	"golang.org/x/sys/unix"
)

// ruleCapturedDir holds datagrams of the kernel's answers to rule requests;
// TestDecodeRulesCaptured replays them and FuzzParseRule seeds from them.
var ruleCapturedDir = filepath.Join(capturedDir, "rules")

// captureRules are the rules TestCaptureRuleSeeds loads with auditctl (an
// independent encoder), by the name of their capture.
var captureRules = []struct{ name, rule string }{
	{"execve", "-a always,exit -F arch=b64 -S execve -F auid>=1000 -k contid-capture"},
	{"watch", "-w /etc/passwd -p wa -k contid-pw"},
	{"exclude", "-a never,exclude -F msgtype>=1100 -F msgtype<=1199"},
}

// TestCaptureRuleSeeds records, with -update as root, the kernel's answers
// to AUDIT_LIST_RULES and AUDIT_ADD_RULE into testdata/captured/rules.
func TestCaptureRuleSeeds(t *testing.T) {
	if !*update {
		return // an entry point, not a test: go test -run TestCaptureRuleSeeds -update
	}
	audittest.RequireRoot(t)
	audittest.Lock(t)
	audittest.Restore(t)
	audittest.Auditctl(t, "-D")
	for _, r := range captureRules {
		args := splitArgs(r.rule)
		audittest.Auditctl(t, args...)
	}
	kernel := "linux-" + kernelRelease(t)
	if err := os.MkdirAll(ruleCapturedDir, 0o755); err != nil {
		t.Fatal(err)
	}
	save := func(name string, b []byte) {
		t.Helper()
		p := filepath.Join(ruleCapturedDir, kernel+"-"+name+".bin")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d bytes", p, len(b))
	}
	req, _, _, err := dial(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer req.close()
	buf := make([]byte, recvBufLen)
	recv := func() []byte {
		t.Helper()
		req.f.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := req.recv(buf, true)
		if err != nil {
			t.Fatalf("recv: %v", err)
		}
		return append([]byte(nil), buf[:n]...)
	}
	if err := req.send(appendMessage(nil, Header{Type: unix.AUDIT_LIST_RULES, Flags: unix.NLM_F_REQUEST | unix.NLM_F_ACK, Seq: 7}, nil)); err != nil {
		t.Fatal(err)
	}
	// The list (in the kernel's list order: exit, then exclude), the done
	// and the ack, in whatever order they come.
	i := 0
	for seen := 0; seen < len(captureRules)+2; seen++ {
		b := recv()
		switch decodeHeader(b).Type {
		case unix.NLMSG_ERROR:
			save("list-ack", b)
		case unix.NLMSG_DONE:
			save("list-done", b)
		case unix.AUDIT_LIST_RULES:
			save("list-"+captureRules[i].name, b)
			i++
		default:
			t.Fatalf("unexpected type %d", decodeHeader(b).Type)
		}
	}
	// Adding a rule the kernel holds already: EEXIST.
	msgs, err := Decode(mustRead(t, filepath.Join(ruleCapturedDir, kernel+"-list-execve.bin")))
	if err != nil {
		t.Fatal(err)
	}
	if err := req.send(appendMessage(nil, Header{Type: unix.AUDIT_ADD_RULE, Flags: unix.NLM_F_REQUEST | unix.NLM_F_ACK, Seq: 8}, msgs[0].Data)); err != nil {
		t.Fatal(err)
	}
	save("add-eexist", recv())
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// splitArgs splits an auditctl command line (the capture rules have no
// quoting).
func splitArgs(s string) []string { return strings.Fields(s) }
