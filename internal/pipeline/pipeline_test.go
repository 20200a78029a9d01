package pipeline

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/pipeline/reassembly"
	"github.com/contid/contid/internal/pipeline/rules"
	"github.com/contid/contid/internal/records"
	"github.com/contid/contid/internal/testing/golden"
	"github.com/contid/contid/internal/testing/pipelinetest"
)

// world places pid 999 (pipelinetest.Unknown) nowhere.
var world = pipelinetest.Table{201: {4, 2, 1}, 300: {7}, 301: {4, 2, 1}}

// text records what reaches the Writer, in order.
type text struct{ strings.Builder }

func (w *text) Write(ev *Event) {
	c := "none"
	if ev.Container != contid.Unset {
		c = ev.Container.String()
	}
	fmt.Fprintf(&w.Builder, "event routes=%s container=%s chains=%v incomplete=%v late=%v",
		ev.Routes, c, ev.Chains, ev.Incomplete, ev.Late)
	switch ev.Life {
	case Registered:
		w.WriteString(" life=registered")
	case Dropped:
		w.WriteString(" life=dropped")
	}
	w.WriteByte('\n')
	for i := range ev.Records {
		w.Builder.Write(records.AppendRaw(nil, &ev.Records[i]))
		w.WriteByte('\n')
	}
}

func (w *text) Lost(n uint64, why Loss) { fmt.Fprintf(&w.Builder, "lost %d %s\n", n, why) }

func run(t *testing.T, rs *rules.Set) (string, Stats) {
	t.Helper()
	f, err := os.Open("testdata/stream.log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var w text
	p := New(Config{Attributor: world, Writer: &w, Rules: rs, Self: 42})
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		p.PushLine(sc.Text())
	}
	p.Flush()
	return w.String(), p.Stats()
}

// TestStream: a recorded stream (interleaved events, a serial gap, a line
// that is no record, contid records forged by contained processes, an
// event cut off by the end) through the pipeline, with and without rules.
func TestStream(t *testing.T) {
	out, st := run(t, nil)
	golden.Check(t, "testdata/stream.golden", []byte(out))
	f, err := os.Open("testdata/rules")
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rules.Parse(f, "testdata/rules")
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	outRules, stRules := run(t, rs)
	golden.Check(t, "testdata/stream-rules.golden", []byte(outRules))

	// The facts the goldens must hold, so -update cannot bless a wrong one.
	for _, must := range []string{
		// the contained exec: CONTAINER_ID right after SYSCALL
		"key=\"exec\"\ntype=UNKNOWN[2901] msg=audit(1795687201.100:101): pid=201 uid=0 auid=0 ses=1 record=1 contid=4,^2,^1\n",
		// each OBJ_PID target with its own chain
		"opid=201 oauid=0 ouid=0 oses=1 obj=unconfined ocomm=\"true\"\ntype=UNKNOWN[2901] msg=audit(1795687201.200:104): pid=150 uid=0 auid=0 ses=1 record=2 contid=4,^2,^1\n",
		"ocomm=\"sleep\"\ntype=UNKNOWN[2901] msg=audit(1795687201.200:104): pid=150 uid=0 auid=0 ses=1 record=4 contid=7\n",
		// contid's own registration routes to container 7's log, and marks its life
		"event routes=host,container container=7 chains=[7] incomplete=false late=false life=registered\ntype=UNKNOWN[2900] msg=audit(1795687201.300:105): pid=42 ",
		"event routes=host,container container=7 chains=[7] incomplete=false late=false life=dropped\ntype=UNKNOWN[2900] msg=audit(1795687209.100:112): pid=42 ",
		// a forged CONTAINER_OP is marked, described by its sender's real chain and routes only there
		"event routes=host,container container=7 chains=[7] incomplete=false late=false\ntype=UNKNOWN[2908] msg=audit(1795687201.400:106): forged-type=2900 pid=300 uid=0 auid=4294967295 ses=4294967295 msg='op=set opid=300 contid=4 old-contid=-1 res=success'\n",
		"res=success'\ntype=UNKNOWN[2901] msg=audit(1795687201.400:106): pid=300 uid=0 auid=4294967295 ses=4294967295 record=1 contid=7\n",
		"type=UNKNOWN[2908] msg=audit(1795687201.500:107): forged-type=2901 pid=301 ",
		// forged by an uncontained sender: marked, no CONTAINER_ID, host log only
		"event routes=host,container container=none chains=[] incomplete=false late=false\ntype=UNKNOWN[2908] msg=audit(1795687201.550:108): forged-type=2904 pid=150 uid=0 auid=0 ses=1 msg='nstype=net ns=4:1 old-ns=4:2 pid=150 contid=7'\n",
		"lost 1 gap\n", "lost 1 malformed\n", "lost 1 incomplete\n",
	} {
		if !strings.Contains(out, must) {
			t.Errorf("output lacks %q", must)
		}
	}
	if st.Provenance.Forged != 3 || st.Malformed != 1 || st.Reassembly.Gap != 1 || st.Dropped != 0 {
		t.Errorf("stats %+v", st)
	}
	if strings.Contains(out, "container=99") || strings.Contains(out, "container=4 chains=[4]") {
		t.Error("a forged record chose a container log")
	}
	// Every record of contid's types in the output is contid's (sent by pid 42).
	for _, l := range strings.Split(out, "\n") {
		for _, typ := range []string{"2900", "2902", "2903", "2904", "2905", "2906", "2907"} {
			if strings.HasPrefix(l, "type=UNKNOWN["+typ+"]") && !strings.Contains(l, "): pid=42 ") {
				t.Errorf("forged record written unmarked: %s", l)
			}
		}
	}
	// With rules: the nested curl is dropped, the host's goes to the host log only.
	if stRules.Dropped != 1 || strings.Contains(outRules, "pid=301 auid") {
		t.Errorf("rules: dropped %d, want the nested curl (pid 301)", stRules.Dropped)
	}
	if !strings.Contains(outRules, "event routes=host container=none chains=[] incomplete=false late=false\ntype=SYSCALL msg=audit(1795687201.101:102)") {
		t.Error("rules: the host's curl is not routed to the host log alone")
	}
}

// FuzzPipeline: whatever the lines, the pipeline neither panics nor loses
// count: every line is a record delivered or a malformed one.
func FuzzPipeline(f *testing.F) {
	b, _ := os.ReadFile("testdata/stream.log")
	f.Add(string(b))
	f.Add("type=SYSCALL msg=audit(1.1:1): pid=201\ntype=UNKNOWN[2900] msg=audit(1.2:2): pid=42 msg='contid=18446744073709551615'\n")
	f.Fuzz(func(t *testing.T, in string) {
		var w counter
		p := New(Config{Attributor: world, Writer: &w, Self: 42})
		lines := strings.Split(in, "\n")
		for _, l := range lines {
			p.PushLine(l)
		}
		p.Flush()
		st := p.Stats()
		if st.Received != uint64(len(lines)) || st.Reassembly.Records+st.Malformed != st.Received {
			t.Fatalf("received %d, records %d, malformed %d", st.Received, st.Reassembly.Records, st.Malformed)
		}
		if w.recs < int(st.Reassembly.Records) {
			t.Fatalf("%d records pushed, %d written", st.Reassembly.Records, w.recs)
		}
	})
}

type counter struct{ recs int }

func (c *counter) Write(ev *Event)         { c.recs += len(ev.Records) }
func (c *counter) Lost(n uint64, why Loss) {}

// pktWorld also places packet records: each in a namespace with these
// containers' chains.
type pktWorld struct {
	pipelinetest.Table
	chains []contid.Chain
}

func (w pktWorld) PacketChains(string, records.Stamp) ([]contid.Chain, bool) { return w.chains, true }

// TestPacketContainers: a packet record's event belongs to every container
// of its namespace (the innermost contid of each chain, once), and a
// subject's event still to its subject's alone.
func TestPacketContainers(t *testing.T) {
	var got []string
	w := writerFunc(func(ev *Event) { got = append(got, fmt.Sprint(ev.Container, ev.Also)) })
	p := New(Config{Attributor: pktWorld{world, []contid.Chain{{5, 2}, {4, 2}, {5, 9}, {6}}}, Writer: w})
	p.PushLine("type=NETFILTER_PKT msg=audit(1796356643.694:10): mark=0x2a saddr=127.0.0.1 daddr=127.0.0.1 proto=1")
	p.PushLine(`type=SYSCALL msg=audit(1796356643.700:11): arch=c000003e syscall=59 success=yes exit=0 pid=300 auid=0 uid=0 comm="true" exe="/usr/bin/true"`)
	p.PushLine("type=EOE msg=audit(1796356643.700:11): ")
	p.Flush()
	if want := []string{"5 [4 6]", "7 []"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("container, also: %q, want %q", got, want)
	}
}

type writerFunc func(*Event)

func (f writerFunc) Write(ev *Event) { f(ev) }
func (writerFunc) Lost(uint64, Loss) {}

// TestLossKinds: the reassembler's kinds keep their names through the
// pipeline (they become kind= of CONTID_LOSS records), and the pipeline's
// own kind has a name of its own.
func TestLossKinds(t *testing.T) {
	seen := map[string]bool{}
	for _, k := range []reassembly.Loss{reassembly.Gap, reassembly.Incomplete, reassembly.Late, reassembly.Discontinuity} {
		if got := Loss(k).String(); got != k.String() || got == "unknown" {
			t.Errorf("reassembly kind %v is %q in the pipeline", k, got)
		}
		seen[k.String()] = true
	}
	if m := Malformed.String(); m != "malformed" || seen[m] {
		t.Errorf("Malformed is %q", m)
	}
}
