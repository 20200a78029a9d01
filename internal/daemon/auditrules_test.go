package daemon

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseAuditRules(t *testing.T) {
	rs, err := parseAuditRules(strings.NewReader("# rules\n\n-a always,exit -F arch=b64 -S execve -k x\n  -w /etc/passwd -p wa -k pw\n-A exit,always -S kill\n"), "r")
	if err != nil {
		t.Fatal(err)
	}
	want := []auditRule{
		{3, []string{"-a", "always,exit", "-F", "arch=b64", "-S", "execve", "-k", "x"}, []string{"-d", "always,exit", "-F", "arch=b64", "-S", "execve", "-k", "x"}},
		{4, []string{"-w", "/etc/passwd", "-p", "wa", "-k", "pw"}, []string{"-W", "/etc/passwd", "-p", "wa", "-k", "pw"}},
		{5, []string{"-A", "exit,always", "-S", "kill"}, []string{"-d", "exit,always", "-S", "kill"}},
	}
	if !reflect.DeepEqual(rs, want) {
		t.Fatalf("got %+v", rs)
	}
	for _, bad := range []string{
		"-D\n",                      // deletes every rule
		"-e 2\n",                    // locks audit until reboot
		"-b 8192\n",                 // global setting
		"-a\n",                      // no rule
		"-a always,exit -S x\x01\n", // control byte
		"-a always,exit -S execve\n--reset-lost\n",
	} {
		if rs, err := parseAuditRules(strings.NewReader(bad), "r"); err == nil || rs != nil {
			t.Errorf("%q: accepted (%v)", bad, rs)
		} else if !strings.HasPrefix(err.Error(), "r:") {
			t.Errorf("%q: error %q does not name the place", bad, err)
		}
	}
}
