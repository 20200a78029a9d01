package records

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/contid/contid/internal/source/auditnl/audittest"
)

func TestMarkForged(t *testing.T) {
	tests := []struct{ in, want string }{
		{"type=UNKNOWN[2900] msg=audit(1700000000.123:4242): pid=4321 uid=0 auid=4294967295 ses=4294967295 subj=unconfined msg='op=set opid=5 contid=77 res=success'",
			"type=UNKNOWN[2908] msg=audit(1700000000.123:4242): forged-type=2900 pid=4321 uid=0 auid=4294967295 ses=4294967295 subj=unconfined msg='op=set opid=5 contid=77 res=success'"},
		{"node=h1 type=UNKNOWN[2907] msg=audit(1700000000.123:4243): pid=1 uid=0 auid=0 ses=1 msg='kind=gap n=3): type=UNKNOWN[2900] '",
			"node=h1 type=UNKNOWN[2908] msg=audit(1700000000.123:4243): forged-type=2907 pid=1 uid=0 auid=0 ses=1 msg='kind=gap n=3): type=UNKNOWN[2900] '"},
		// A forged CONTID_FORGED is marked again: every 2908 line starts
		// with contid's forged-type=.
		{"type=UNKNOWN[2908] msg=audit(1700000000.123:4244): pid=9 uid=0 auid=0 ses=1 msg='forged-type=2900'",
			"type=UNKNOWN[2908] msg=audit(1700000000.123:4244): forged-type=2908 pid=9 uid=0 auid=0 ses=1 msg='forged-type=2900'"},
	}
	for _, tt := range tests {
		r, err := ParseLine(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		m := MarkForged(r)
		if got := string(AppendRaw(nil, &m)); got != tt.want {
			t.Errorf("raw\n got %s\nwant %s", got, tt.want)
		}
		if m.Type != ContidForged || m.Fields[0].Key != ForgedKey {
			t.Errorf("fields %+v", m.Fields[:1])
		}
		// Written from its fields, it reads back as the same marked record.
		m.Raw = ""
		back, err := ParseLine(string(AppendRaw(nil, &m)))
		if err != nil || back.Type != ContidForged {
			t.Fatalf("from fields: %v %v", back.Type, err)
		}
		if v, _ := back.Get(ForgedKey); v != m.Fields[0].Value {
			t.Errorf("from fields: forged-type=%q", v)
		}
		if v, _ := back.Get("pid"); v != mustGet(t, &r, "pid") {
			t.Errorf("from fields: pid=%q", v)
		}
	}
	// An unexpected shape is written from the fields.
	if m := MarkForged(Record{Type: ContainerOp, Raw: "garbage", Fields: []Field{{Key: "pid", Value: "3"}}}); m.Raw != "" {
		t.Errorf("raw %q kept", m.Raw)
	}
}

func mustGet(t *testing.T, r *Record, k string) string {
	t.Helper()
	v, ok := r.Get(k)
	if !ok {
		t.Fatalf("no %s in %+v", k, r)
	}
	return v
}

// TestAusearchForged: stock ausearch finds a marked record by its new type
// and by its sender's pid, and not by the type it was forged as.
func TestAusearchForged(t *testing.T) {
	ausearch := audittest.Ausearch(t)
	r, err := ParseMessage(ContainerOp, []byte("audit(1700000000.123:4242): pid=4321 uid=0 auid=4294967295 ses=4294967295 subj=unconfined msg='op=set opid=5 contid=77 old-contid=-1 res=success'"))
	if err != nil {
		t.Fatal(err)
	}
	m := MarkForged(r)
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(path, append(AppendRaw(nil, &m), '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	search := func(args ...string) string {
		out, _ := exec.Command(ausearch, append([]string{"-if", path}, args...)...).Output()
		return string(out)
	}
	if out := search("-m", "2908"); !strings.Contains(out, "forged-type=2900 pid=4321") {
		t.Errorf("ausearch -m 2908: %q", out)
	}
	if out := search("-p", "4321"); !strings.Contains(out, "UNKNOWN[2908]") {
		t.Errorf("ausearch -p 4321: %q", out)
	}
	if out := search("-m", "2900"); strings.Contains(out, "contid=77") {
		t.Errorf("ausearch -m 2900 finds the forged record: %q", out)
	}
}

// FuzzMarkForged: whatever line a sender got through the parser, its marked
// form is one line that reads back as CONTID_FORGED with contid's
// forged-type= first, so no text of the sender's can undo the mark.
func FuzzMarkForged(f *testing.F) {
	f.Add("type=UNKNOWN[2900] msg=audit(1700000000.123:4242): pid=4321 uid=0 auid=4294967295 ses=4294967295 msg='op=set res=success'")
	f.Add("node=x type=UNKNOWN[2901] msg=audit(1.2:3): pid=1 msg='a): b'")
	f.Add("type=UNKNOWN[2905] msg=audit(1.2:3): pid=1 uid=0 auid=0 ses=1 msg='type=UNKNOWN[2900] msg=audit(1.2:3): x=y'\x1dUID=\"root\"")
	f.Fuzz(func(t *testing.T, line string) {
		r, err := ParseLine(line)
		if err != nil {
			return
		}
		orig := r.Type
		m := MarkForged(r)
		out := string(AppendRaw(nil, &m))
		if strings.ContainsAny(out, "\n") {
			t.Fatalf("marked line breaks: %q", out)
		}
		back, err := ParseLine(out)
		if err != nil {
			t.Fatalf("marked line %q does not parse: %v", out, err)
		}
		if back.Type != ContidForged || len(back.Fields) == 0 || back.Fields[0].Key != ForgedKey ||
			back.Fields[0].Value != strconv.Itoa(int(orig)) {
			t.Fatalf("marked line %q reads back as type %d fields %+v", out, back.Type, back.Fields)
		}
	})
}
