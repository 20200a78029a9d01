package reassembly

import (
	"strings"
	"testing"
	"time"

	"github.com/contid/contid/internal/records"
)

// rec makes a record of type t stamped sec.msec:serial (ms is unix ms).
func rec(t records.Type, ms int64, serial uint64) records.Record {
	return records.Record{Type: t, Stamp: records.Stamp{Sec: ms / 1000, Msec: uint32(ms % 1000), Serial: serial}}
}

func nodeRec(node string, t records.Type, ms int64, serial uint64) records.Record {
	r := rec(t, ms, serial)
	r.Node = node
	return r
}

// step is one action of a table test: a record to push, an Advance
// (advance ≥ 0), an EndRead or a Flush.
type step struct {
	r       records.Record
	advance int64
	flush   bool
	endRead bool
}

func push(rs ...records.Record) []step {
	s := make([]step, len(rs))
	for i, r := range rs {
		s[i] = step{r: r, advance: -1}
	}
	return s
}

func advance(ms int64) step { return step{advance: ms} }
func flush() step           { return step{flush: true, advance: -1} }
func endRead() step         { return step{endRead: true, advance: -1} }

func seq(parts ...[]step) []step {
	var out []step
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

const (
	syscallT = records.Syscall
	pathT    = records.Type(1302)
	eoeT     = records.EOE
	userT    = records.Type(1112) // USER_LOGIN
	avcT     = records.Type(1400)
	daemonT  = records.Type(1200) // DAEMON_START
	cidT     = records.ContainerID
	pktT     = records.NetfilterPkt
)

// full returns the records of a complete syscall event.
func full(ms int64, serial uint64) []records.Record {
	return []records.Record{rec(syscallT, ms, serial), rec(pathT, ms, serial), rec(eoeT, ms, serial)}
}

func run(cfg Config, steps []step) (string, *Reassembler) {
	r := &recorder{}
	ra := New(cfg, r)
	for i, s := range steps {
		r.where = "s" + itoa(i)
		switch {
		case s.flush:
			ra.Flush()
		case s.endRead:
			ra.EndRead()
		case s.advance >= 0:
			ra.Advance(s.advance)
		default:
			ra.Push(s.r)
		}
	}
	return r.b.String(), ra
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}

func TestReassemble(t *testing.T) {
	const t0 = 1700000000000
	tests := []struct {
		name  string
		cfg   Config
		steps []step
		want  []string
	}{
		{
			name:  "complete at EOE",
			steps: push(full(t0, 10)...),
			want:  []string{"s2 event 1700000000.000:10 SYSCALL,PATH,EOE"},
		},
		{
			name: "standalone ends at the next other stamp, same stamp joins",
			steps: seq(push(rec(userT, t0, 10), rec(cidT, t0, 10), rec(userT, t0+1, 11)),
				[]step{flush()}),
			want: []string{
				"s2 event 1700000000.000:10 USER_LOGIN,CONTAINER_ID",
				"s3 event 1700000000.001:11 USER_LOGIN",
			},
		},
		{
			name:  "advance ends the open standalone event",
			steps: seq(push(rec(userT, t0, 10)), []step{advance(0)}),
			want:  []string{"s1 event 1700000000.000:10 USER_LOGIN"},
		},
		{
			name:  "a lone NETFILTER_PKT ends at the end of its read, not at the timeout",
			steps: seq(push(rec(pktT, t0, 10)), []step{endRead()}, push(rec(avcT, t0+1, 11)), []step{flush()}),
			want: []string{
				"s1 event 1700000000.000:10 NETFILTER_PKT",
				"s3 event 1700000000.001:11 AVC",
			},
		},
		{
			name: "packet records end at the next other stamp, in arrival order",
			steps: seq(push(rec(syscallT, t0, 9), rec(pktT, t0+1, 10), rec(pktT, t0+1, 11), rec(eoeT, t0, 9)),
				[]step{endRead()}),
			want: []string{
				"s2 event 1700000000.001:10 NETFILTER_PKT",
				"s3 event 1700000000.001:11 NETFILTER_PKT",
				"s3 event 1700000000.000:9 SYSCALL,EOE",
			},
		},
		{
			name:  "a CONTAINER_ID of the same stamp in the same read joins the packet record",
			steps: seq(push(rec(pktT, t0, 10), rec(cidT, t0, 10)), []step{endRead()}),
			want:  []string{"s2 event 1700000000.000:10 NETFILTER_PKT,CONTAINER_ID"},
		},
		{
			name:  "end of read leaves syscall and maybe-alone events waiting",
			steps: seq(push(rec(syscallT, t0, 10), rec(avcT, t0, 11)), []step{endRead()}, push(rec(eoeT, t0, 10))),
			want:  []string{"s3 event 1700000000.000:10 SYSCALL,EOE"},
		},
		{
			name: "a syscall record makes a standalone-opened event wait for EOE",
			steps: seq(push(rec(userT, t0, 10), rec(syscallT, t0, 10), rec(avcT, t0+5, 11), rec(eoeT, t0, 10)),
				[]step{flush()}),
			want: []string{
				"s3 event 1700000000.000:10 USER_LOGIN,SYSCALL,EOE",
				"s4 event 1700000000.005:11 AVC",
			},
		},
		{
			name: "timeout is reached at exactly Timeout, not before",
			steps: seq(push(rec(syscallT, t0, 10), rec(userT, t0+1999, 11)),
				[]step{advance(t0 + 1999), advance(t0 + 2000)}),
			want: []string{
				"s2 event 1700000001.999:11 USER_LOGIN", // closed by Advance
				"s3 event 1700000000.000:10 SYSCALL incomplete",
				"s3 lost incomplete 1",
			},
		},
		{
			name:  "maybe-alone events time out complete",
			steps: seq(push(rec(avcT, t0, 10)), []step{advance(t0 + 2000)}),
			want:  []string{"s1 event 1700000000.000:10 AVC"},
		},
		{
			name: "time counts from arrival, not from the event's old stamp",
			// A syscall that blocked for an hour is stamped with its entry
			// time; its records arrive now and must not time out at once.
			steps: seq(push(rec(userT, t0+3600_000, 20), rec(syscallT, t0, 21), rec(pathT, t0, 21)),
				[]step{advance(t0 + 3600_000 + 1999)}, push(rec(eoeT, t0, 21))),
			want: []string{
				"s1 event 1700003600.000:20 USER_LOGIN",
				"s4 event 1700000000.000:21 SYSCALL,PATH,EOE",
			},
		},
		{
			name: "a clock stepping back does not move event time back",
			steps: seq(push(rec(syscallT, t0, 10), rec(avcT, t0-60_000, 11)),
				[]step{advance(t0 + 1999)}, push(rec(avcT, t0+2000, 12)), []step{flush()}),
			want: []string{
				"s3 event 1700000000.000:10 SYSCALL incomplete",
				"s3 lost incomplete 1",
				"s3 event 1699999940.000:11 AVC",
				"s4 event 1700000002.000:12 AVC",
			},
		},
		{
			name:  "MaxInFlight evicts the event waiting longest",
			cfg:   Config{MaxInFlight: 2},
			steps: seq(push(rec(syscallT, t0, 10), rec(avcT, t0+1, 11), rec(syscallT, t0, 10), rec(avcT, t0+2, 12)), []step{flush()}),
			want: []string{
				"s3 event 1700000000.001:11 AVC",
				"s4 event 1700000000.000:10 SYSCALL,SYSCALL incomplete",
				"s4 lost incomplete 1",
				"s4 event 1700000000.002:12 AVC",
			},
		},
		{
			name: "gap counted only after the window",
			steps: seq(push(full(t0, 10)...), push(full(t0+10, 13)...),
				[]step{advance(t0 + 2009), advance(t0 + 2010)}),
			want: []string{
				"s2 event 1700000000.000:10 SYSCALL,PATH,EOE",
				"s5 event 1700000000.010:13 SYSCALL,PATH,EOE",
				"s7 lost gap 2",
			},
		},
		{
			name: "out of order within the window is no loss",
			steps: seq(push(full(t0, 10)...), push(full(t0+10, 12)...), push(full(t0+5, 11)...),
				[]step{advance(t0 + 10_000)}),
			want: []string{
				"s2 event 1700000000.000:10 SYSCALL,PATH,EOE",
				"s5 event 1700000000.010:12 SYSCALL,PATH,EOE",
				"s8 event 1700000000.005:11 SYSCALL,PATH,EOE",
			},
		},
		{
			name: "serials below the first one seen are not counted",
			steps: seq(push(full(t0, 100)...), push(full(t0, 98)...), push(full(t0, 99)...),
				[]step{flush()}),
			want: []string{
				"s2 event 1700000000.000:100 SYSCALL,PATH,EOE",
				"s5 event 1700000000.000:98 SYSCALL,PATH,EOE",
				"s8 event 1700000000.000:99 SYSCALL,PATH,EOE",
			},
		},
		{
			name:  "rollover from 4294967295 to 0 is one step",
			steps: seq(push(full(t0, 4294967295)...), push(full(t0, 0)...), []step{flush()}),
			want: []string{
				"s2 event 1700000000.000:4294967295 SYSCALL,PATH,EOE",
				"s5 event 1700000000.000:0 SYSCALL,PATH,EOE",
			},
		},
		{
			name:  "rollover with a gap across it",
			steps: seq(push(full(t0, 4294967294)...), push(full(t0, 1)...), []step{flush()}),
			want: []string{
				"s2 event 1700000000.000:4294967294 SYSCALL,PATH,EOE",
				"s5 event 1700000000.000:1 SYSCALL,PATH,EOE",
				"s6 lost gap 2",
			},
		},
		{
			name: "a record after its event was delivered is late",
			steps: seq(push(full(t0, 10)...), push(rec(pathT, t0, 10), rec(eoeT, t0, 10)),
				push(rec(userT, t0, 11)), []step{flush()}),
			want: []string{
				"s2 event 1700000000.000:10 SYSCALL,PATH,EOE",
				"s4 event 1700000000.000:10 PATH,EOE late",
				"s4 lost late 2",
				"s6 event 1700000000.000:11 USER_LOGIN",
			},
		},
		{
			name: "forward jump beyond the window is a discontinuity",
			steps: seq(push(full(t0, 10)...), push(full(t0+1, 13)...), push(full(t0+2, 10+1<<24+100)...),
				[]step{flush()}),
			want: []string{
				"s2 event 1700000000.000:10 SYSCALL,PATH,EOE",
				"s5 event 1700000000.001:13 SYSCALL,PATH,EOE",
				"s6 lost gap 2",
				"s6 lost discontinuity 1",
				"s8 event 1700000000.002:16777326 SYSCALL,PATH,EOE",
			},
		},
		{
			name: "counter restarting (reboot in a replayed log) is a discontinuity, not late",
			steps: seq(push(full(t0, 5000)...), push(full(t0+1, 5001)...), push(full(t0+60_000, 1)...),
				push(full(t0+60_001, 2)...), []step{flush()}),
			want: []string{
				"s2 event 1700000000.000:5000 SYSCALL,PATH,EOE",
				"s5 event 1700000000.001:5001 SYSCALL,PATH,EOE",
				"s6 lost discontinuity 1",
				"s8 event 1700000060.000:1 SYSCALL,PATH,EOE",
				"s11 event 1700000060.001:2 SYSCALL,PATH,EOE",
			},
		},
		{
			name: "own serials and auditd's serials never count",
			steps: seq(push(full(t0, 10)...),
				push(rec(records.ContainerOp, t0+1, records.OwnSerialBase+5)),
				push(rec(daemonT, t0+2, 3)),
				push(full(t0+3, 11)...), []step{flush()}),
			want: []string{
				"s2 event 1700000000.000:10 SYSCALL,PATH,EOE",
				"s4 event 1700000000.001:4294967301 CONTAINER_OP",
				"s5 event 1700000000.002:3 DAEMON_START",
				"s7 event 1700000000.003:11 SYSCALL,PATH,EOE",
			},
		},
		{
			name: "other nodes are keyed apart and move no time",
			steps: seq(push(rec(syscallT, t0, 10), nodeRec("h2", syscallT, t0, 10), nodeRec("h2", avcT, t0+999_999, 500)),
				[]step{advance(t0 + 1999)}, push(rec(eoeT, t0, 10)), []step{flush()}),
			want: []string{
				"s4 event 1700000000.000:10 SYSCALL,EOE",
				"s5 event 1700000000.000:10 node=h2 SYSCALL incomplete",
				"s5 lost incomplete 1",
				"s5 event 1700000999.999:500 node=h2 AVC",
			},
		},
		{
			name:  "EOE alone is an event",
			steps: push(rec(eoeT, t0, 10)),
			want:  []string{"s0 event 1700000000.000:10 EOE"},
		},
		{
			name:  "flush reports serials still missing",
			steps: seq(push(full(t0, 10)...), push(full(t0, 12)...), []step{flush()}),
			want: []string{
				"s2 event 1700000000.000:10 SYSCALL,PATH,EOE",
				"s5 event 1700000000.000:12 SYSCALL,PATH,EOE",
				"s6 lost gap 1",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := run(tc.cfg, tc.steps)
			want := strings.Join(tc.want, "\n")
			if want != "" {
				want += "\n"
			}
			if got != want {
				t.Errorf("got:\n%swant:\n%s", got, want)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		t    records.Type
		want Class
	}{
		{1005, Standalone}, {1100, Standalone}, {1112, Standalone}, {1199, Standalone},
		{1200, Standalone}, {1299, Standalone}, {1326, Standalone}, {1701, Standalone},
		{2000, Standalone}, {2100, Standalone}, {2900, Standalone}, {2901, Standalone}, {2999, Standalone},
		{1300, InSyscall}, {1302, InSyscall}, {1309, InSyscall}, {1318, InSyscall}, {1320, InSyscall},
		{1327, InSyscall}, {1336, InSyscall}, {1337, InSyscall},
		{1324, Standalone},
		{1006, MaybeAlone}, {1305, MaybeAlone}, {1319, MaybeAlone}, {1325, MaybeAlone}, {1334, MaybeAlone},
		{1400, MaybeAlone}, {1500, MaybeAlone}, {1700, MaybeAlone}, {1702, MaybeAlone}, {1800, MaybeAlone},
		{1420, MaybeAlone}, {3000, MaybeAlone}, {0, MaybeAlone},
	}
	for _, tc := range tests {
		if got := Classify(tc.t); got != tc.want {
			t.Errorf("Classify(%d %s) = %s, want %s", tc.t, tc.t, got, tc.want)
		}
	}
}

func TestTimeoutConfig(t *testing.T) {
	const t0 = 1700000000000
	got, _ := run(Config{Timeout: 500 * time.Millisecond}, seq(push(rec(avcT, t0, 1)), []step{advance(t0 + 500)}))
	if want := "s1 event 1700000000.000:1 AVC\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestStats(t *testing.T) {
	const t0 = 1700000000000
	_, ra := run(Config{}, seq(push(full(t0, 10)...), push(rec(syscallT, t0, 12)), push(rec(pathT, t0, 10))))
	// The late PATH of serial 10 and SYSCALL 12 are in flight; loss is
	// counted when they are delivered.
	want := Stats{Records: 5, Events: 1, InFlight: 2}
	if got := ra.Stats(); got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
	ra.Flush()
	want = Stats{Records: 5, Events: 3, InFlight: 0, Late: 1, Incomplete: 2, Gap: 1}
	if got := ra.Stats(); got != want {
		t.Errorf("after Flush: Stats = %+v, want %+v", got, want)
	}
}

// TestSpanBound checks that a pathological pattern of missing serials keeps
// at most maxSpans runs and counts the overflow as lost at once.
func TestSpanBound(t *testing.T) {
	const t0 = 1700000000000
	r := &recorder{}
	ra := New(Config{}, r)
	for i := uint64(0); i < 3*maxSpans; i++ {
		ra.Push(rec(userT, t0, 10+2*i)) // every other serial missing
		if n := len(ra.serial.spans); n > maxSpans {
			t.Fatalf("%d runs kept", n)
		}
	}
	ra.Flush()
	if got, want := ra.Stats().Gap, uint64(3*maxSpans-1); got != want {
		t.Errorf("Gap = %d, want %d", got, want)
	}
}

// TestTrackerTake checks splitting and trimming of missing runs.
func TestTrackerTake(t *testing.T) {
	var k tracker
	k.see(100, 0, 0, 0, 10)
	k.see(110, 0, 0, 0, 10) // 101–109 missing
	for _, s := range []uint32{105, 101, 109, 103} {
		if ok, _ := k.take(s); !ok {
			t.Fatalf("take(%d) = false", s)
		}
	}
	if ok, _ := k.take(105); ok {
		t.Fatal("take(105) twice")
	}
	var got []string
	for _, sp := range k.spans {
		got = append(got, itoa(int(sp.lo))+"-"+itoa(int(sp.hi)))
	}
	if g, w := strings.Join(got, " "), "102-102 104-104 106-108"; g != w {
		t.Errorf("runs %s, want %s", g, w)
	}
}
