package trace

import (
	"bytes"
	"encoding/json"
	"github.com/contid/contid/internal/testing/golden"
	"os"
	"strings"
	"testing"
)

// musts are facts each scenario's raw output must hold, so that a golden
// file refreshed with -update cannot silently bless a wrong behaviour.
var musts = map[string][]string{
	"join": {
		"op=join opid=300 contid=7 old-contid=-1 pid=100 uid=0 auid=0 ses=1 comm=\"runc\" exe=\"/usr/sbin/runc\" res=success",
		"op=join opid=400 contid=7 old-contid=9 pid=100 uid=0 auid=0 ses=1 comm=\"runc\" exe=\"/usr/sbin/runc\" res=failed errno=EEXIST",
	},
	"self-set": {"op=set opid=100 contid=4660 old-contid=-1 pid=100 uid=0 auid=0 ses=1 comm=\"bash\" exe=\"/usr/bin/bash\" res=failed errno=EXDEV"},
	"set": {
		"op=set opid=200 contid=4660 old-contid=-1 pid=100 ",
		"res=success",
		"type=UNKNOWN[2903] msg=audit(1795687201.004:4294967297): opid=200 contid=4660 cgroup=4:4026531835 ipc=4:4026531839 mnt=4:4026531841 net=4:4026531840 pid=4:4026531836 time=4:4026531834 user=4:4026531837 uts=4:4026531838",
	},
	"set-again": {
		"contid=4660 old-contid=4660 pid=100 uid=0 auid=0 ses=1 comm=\"bash\" exe=\"/usr/bin/bash\" res=failed errno=EEXIST",
		"contid=4661 old-contid=4660 pid=100 uid=0 auid=0 ses=1 comm=\"bash\" exe=\"/usr/bin/bash\" res=failed errno=EEXIST",
		"opid=300 contid=18446744073709551615 old-contid=-1 pid=100 uid=0 auid=0 ses=1 comm=\"bash\" exe=\"/usr/bin/bash\" res=failed errno=EINVAL",
		"opid=300 contid=18446744073709551616 old-contid=-1 pid=100 uid=0 auid=0 ses=1 comm=\"bash\" exe=\"/usr/bin/bash\" res=failed errno=ERANGE",
		"opid=300 contid=30783130207265733D73756363657373 old-contid=-1",
	},
	"inject": {
		"op=set opid=210 contid=4660 old-contid=-1 pid=100 uid=0 auid=0 ses=1 comm=\"bash\" exe=\"/usr/bin/bash\" res=success",
		"op=set opid=301 contid=4660 old-contid=-1 pid=300 uid=0 auid=0 ses=1 comm=\"runc\" exe=\"/usr/sbin/runc\" res=failed errno=ENOTUNIQ",
	},
	"busy": {
		"opid=200 contid=4660 old-contid=-1 pid=100 uid=0 auid=0 ses=1 comm=\"bash\" exe=\"/usr/bin/bash\" res=failed errno=EBUSY",
		"opid=301 contid=4662 old-contid=4661 pid=100 uid=0 auid=0 ses=1 comm=\"bash\" exe=\"/usr/bin/bash\" res=failed errno=EEXIST",
	},
	"nested": {
		"opid=210 contid=2,^1 cgroup=",
		"opid=220 contid=3,^1 cgroup=",
		"opid=212 contid=4,^2,^1 cgroup=",
		"op=set opid=212 contid=5 old-contid=4,^2,^1 pid=200 ",
		"op=set opid=220 contid=6 old-contid=3,^1 pid=100 uid=0 auid=0 ses=1 comm=\"bash\" exe=\"/usr/bin/bash\" res=failed errno=EEXIST",
		"op=drop opid=220 contid=3 old-contid=3,^1 ",
		"op=drop opid=212 contid=4 old-contid=4,^2,^1 ",
		"op=drop opid=212 contid=2 old-contid=2,^1 ",
		"op=drop opid=212 contid=1 old-contid=1 ",
	},
	"drop": {
		"op=set opid=200 contid=4660 old-contid=-1 pid=100 ",
		"op=drop opid=200 contid=4660 old-contid=4660 pid=200 ",
		"op=set opid=301 contid=4660 old-contid=-1 pid=300 uid=0 auid=0 ses=1 comm=\"bash\" exe=\"/usr/bin/bash\" res=success",
	},
	"netns-shared": {
		"nstype=net ns=4:4026532300 nsid=4097 old-ns=4:4026531840 pid=200 contid=10",
		"nstype=net ns=4:4026532300 nsid=4097 old-ns=4:4026531840 pid=300 contid=20",
		"type=UNKNOWN[2906] msg=audit(1795687204.200:4294967303): nstype=net ns=4:4026532300 nsid=4097 pid=300 contid=20",
	},
	"host-unshare": {
		"UNKNOWN[2904] msg=audit(1795687204.000:4294967298): nstype=net ns=4:4026532720 nsid=720 old-ns=4:4026531840 pid=200 contid=7",
		"UNKNOWN[2905] msg=audit(1795687204.000:4294967299): nstype=net ns=4:4026532720 nsid=720 old-ns=4:4026531840 pid=200 contid=7",
		"UNKNOWN[2906] msg=audit(1795687205.000:4294967300): nstype=net ns=4:4026532720 nsid=720 pid=200 contid=7",
	},
	"host-setns": {
		"UNKNOWN[2905] msg=audit(1795687202.300:4294967300): nstype=net ns=4:4026532800 nsid=800 old-ns=4:4026531840 pid=300 contid=-1",
		"UNKNOWN[2905] msg=audit(1795687202.700:4294967301): nstype=net ns=4:4026531840 old-ns=4:4026532800 old-nsid=800 pid=300 contid=-1",
		"UNKNOWN[2906] msg=audit(1795687204.100:",
	},
	"unshare": {
		"UNKNOWN[2904] msg=audit(1795687201.300:4294967298): nstype=mnt ns=4:4026532400 nsid=5000 old-ns=4:4026531841 pid=200 contid=7",
		"UNKNOWN[2905] msg=audit(1795687201.300:4294967299): nstype=mnt ns=4:4026532400 nsid=5000 old-ns=4:4026531841 pid=200 contid=7",
		"UNKNOWN[2904] msg=audit(1795687201.400:4294967300): nstype=pid ns=4:4026532401 nsid=5001 old-ns=4:4026531836 pid=200 contid=7",
		"nstype=mnt ns=4:4026531841 old-ns=4:4026532400 old-nsid=5000 pid=202 contid=7",
		"UNKNOWN[2906]",
		"op=drop opid=202 contid=7 old-contid=7 pid=202 ",
	},
	"observed": {
		// seen at exec: made by the task (NS_CREATE) and entered (NS_CHANGE)
		"UNKNOWN[2904] msg=audit(1795687201.200:4294967298): nstype=net ns=4:4026532500 nsid=600 old-ns=4:4026531840 pid=200 contid=90",
		"UNKNOWN[2905] msg=audit(1795687201.200:4294967299): nstype=net ns=4:4026532500 nsid=600 old-ns=4:4026531840 pid=200 contid=90",
		// seen at exit: the uts namespace of the child, gone with it
		"UNKNOWN[2905] msg=audit(1795687201.400:4294967301): nstype=uts ns=4:4026532600 nsid=601 old-ns=4:4026531838 pid=201 contid=90",
		"UNKNOWN[2906] msg=audit(1795687201.400:4294967302): nstype=uts ns=4:4026532600 nsid=601 pid=201 contid=90",
		// the scan: back to the host's netns (known: no NS_CREATE), the new one destroyed
		"UNKNOWN[2905] msg=audit(1795687202.000:4294967303): nstype=net ns=4:4026531840 old-ns=4:4026532500 old-nsid=600 pid=200 contid=90",
		"UNKNOWN[2906] msg=audit(1795687202.000:4294967304): nstype=net ns=4:4026532500 nsid=600 pid=200 contid=90",
	},
	"capcontid": {
		"opid=201 contid=3 old-contid=-1 pid=200 uid=1000 auid=1000 ses=2 comm=\"podman\" exe=\"/usr/bin/podman\" res=failed errno=ESRCH",
		"opid=201 contid=3 old-contid=-1 pid=200 uid=1000 auid=1000 ses=2 comm=\"podman\" exe=\"/usr/bin/podman\" res=failed errno=EPERM",
		"type=UNKNOWN[2902] msg=audit(1795687201.400:4294967298): opid=200 capcontid=1 old-capcontid=0 pid=100 ",
		"opid=201 contid=3 old-contid=-1 pid=200 uid=1000 auid=1000 ses=2 comm=\"podman\" exe=\"/usr/bin/podman\" res=success",
		"opid=203 contid=4 old-contid=-1 pid=202 uid=1000 auid=1000 ses=2 comm=\"podman\" exe=\"/usr/bin/podman\" res=failed errno=EPERM",
		"opid=202 capcontid=1 old-capcontid=0 pid=200 uid=1000 auid=1000 ses=2 comm=\"podman\" exe=\"/usr/bin/podman\" res=failed errno=EPERM",
		"opid=200 capcontid=0 old-capcontid=1 pid=100 ",
	},
}

// mustNots are facts each scenario's raw output must not hold.
var mustNots = map[string][]string{
	// ip netns add by an uncontained process: nothing until a container
	// enters the namespace.
	"netns-shared": {"pid=150"},
	// the unprivileged user's namespaces (uid 65534, pids 501-503)
	"host-unshare": {"pid=50", "nsid=70", "nsid=71"},
	// the host shell's own uts unshare before it entered the container
	"host-setns": {"nstype=uts", "4026532810"},
}

func TestScenarios(t *testing.T) {
	golden.Each(t, "testdata/*.trace", func(t *testing.T, name string, _ []byte) {
		path := "testdata/" + name + ".trace"
		must, ok := musts[name]
		if !ok {
			t.Fatalf("scenario %s has no expectations in musts", name)
		}
		for _, f := range []struct {
			ext string
			fmt Format
		}{{"raw", Raw}, {"i", Interpreted}, {"json", JSON}} {
			got := run(t, path, Options{Format: f.fmt})
			if f.fmt == Raw {
				for _, m := range must {
					if !strings.Contains(got, m) {
						t.Errorf("raw output lacks %q", m)
					}
				}
				for _, m := range mustNots[name] {
					if strings.Contains(got, m) {
						t.Errorf("raw output holds %q", m)
					}
				}
			}
			if f.fmt == JSON {
				for i, l := range strings.Split(strings.TrimSuffix(got, "\n"), "\n") {
					if !json.Valid([]byte(l)) {
						t.Errorf("json line %d invalid: %s", i+1, l)
					}
				}
			}
			golden.Check(t, "testdata/"+name+"."+f.ext+".golden", []byte(got))
		}
	})
}

func run(t *testing.T, path string, opt Options) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out bytes.Buffer
	if _, err := Run(f, path, &out, opt); err != nil {
		t.Fatal(err)
	}
	// Same trace, same bytes.
	f.Seek(0, 0)
	var again bytes.Buffer
	Run(f, path, &again, opt)
	if !bytes.Equal(out.Bytes(), again.Bytes()) {
		t.Fatal("replay is not deterministic")
	}
	return out.String()
}

// TestMalformed checks that a bad line is reported with file:line and a
// reason, and that nothing after it is applied.
func TestMalformed(t *testing.T) {
	head := `{"op":"task","time":"2026-11-26T10:00:00Z","pid":100,"ppid":1,"start":2000}
{"op":"fork","time":"2026-11-26T10:00:01Z","parent":100,"child":200}
`
	tail := `
{"op":"set","time":"2026-11-26T10:00:02Z","caller":100,"cap":true,"target":200,"contid":"5"}
`
	tests := []struct{ bad, want string }{
		{`{"op":"fork","time":"2026-11-26T10:00:01Z","parent":100}`, `t.trace:3: missing "child"`},
		{`{"op":"exit","time":"2026-11-26T10:00:01Z","pid":0}`, `t.trace:3: "pid" must be a pid between 1 and 2147483647`},
		{`{"op":"exit","time":"2026-11-26T10:00:01Z","pid":-3}`, `t.trace:3: "pid" must be an unsigned 32-bit integer, not -3`},
		{`{"op":"exit","time":"yesterday","pid":3}`, `t.trace:3: time "yesterday" is not RFC 3339`},
		{`{"op":"exit","pid":3}`, `t.trace:3: missing "time"`},
		{`{"op":"explode","time":"2026-11-26T10:00:01Z"}`, `t.trace:3: unknown op "explode"`},
		{`{"op":"exit","time":"2026-11-26T10:00:01Z","pid":3,"contid":5}`, `t.trace:3: op "exit" has no field "contid"`},
		{`{"op":"exit","time":"2026-11-26T10:00:01Z","pid":3} {}`, `t.trace:3: trailing data after the JSON object`},
		{`[1,2]`, `t.trace:3: not a JSON object`},
		{"\x00\xff", `t.trace:3: not a JSON object`},
		{`{"op":"unshare","time":"2026-11-26T10:00:01Z","pid":3,"ns":{"net":"4"}}`, `t.trace:3: ns: "4" is not dev:inode`},
		{`{"op":"unshare","time":"2026-11-26T10:00:01Z","pid":3,"ns":{"bogus":"4:5"}}`, `t.trace:3: ns: unknown namespace type "bogus"`},
		{`{"op":"unshare","time":"2026-11-26T10:00:01Z","pid":3}`, `t.trace:3: missing "ns"`},
		{`{"op":"container","time":"2026-11-26T10:00:01Z","id":5,"parent":6}`, `t.trace:3: engine: seed container 5: parent 6 not seeded`},
		{`{"op":"set","time":"2026-11-26T10:00:01Z","caller":100,"target":200,"contid":[1]}`, `t.trace:3: "contid" must be a string or a number`},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		res, err := Run(strings.NewReader(head+tt.bad+tail), "t.trace", &out, Options{})
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want prefix %q", tt.bad, err, tt.want)
			continue
		}
		if strings.Contains(out.String(), "op=set") || res.Inputs > 3 {
			t.Errorf("%s: input after the bad line was applied (%d inputs): %s", tt.bad, res.Inputs, out.String())
		}
	}
	// A line over MaxLine is refused too.
	long := head + `{"op":"exit","time":"2026-11-26T10:00:01Z","pid":3,"x":"` + strings.Repeat("a", 2<<20) + `"}` + tail
	if _, err := Run(strings.NewReader(long), "t.trace", &bytes.Buffer{}, Options{}); err == nil || !strings.Contains(err.Error(), "t.trace:3: line longer than") {
		t.Errorf("long line: %v", err)
	}
}
