package reassembly

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/contid/contid/internal/records"
)

// fuzzTypes are the types FuzzReassemble draws from: every class, EOE,
// auditd's own and contid's own.
var fuzzTypes = [...]records.Type{
	1300, 1302, 1320, 1327, 1318, // SYSCALL PATH EOE PROCTITLE OBJ_PID
	1112, 1105, 2000, 1326, 2900, 2901, // user, KERNEL, SECCOMP, contid
	1400, 1305, 1324, 3000, // AVC CONFIG_CHANGE NETFILTER_PKT unknown
	1200, // DAEMON_START
}

// fuzzSink checks the Sink contract as calls come.
type fuzzSink struct {
	t         *testing.T
	delivered map[int]int
	last      int
	out       strings.Builder
}

func (s *fuzzSink) Event(e Event) {
	if len(e.Records) == 0 {
		s.t.Fatal("empty event")
	}
	prev := -1
	hasSyscall, hasEOE := false, false
	for i, r := range e.Records {
		id, err := strconv.Atoi(r.Raw)
		if err != nil {
			s.t.Fatalf("record without id: %q", r.Raw)
		}
		s.delivered[id]++
		if id <= prev {
			s.t.Fatalf("records out of arrival order: %d after %d", id, prev)
		}
		prev = id
		if r.Stamp != e.Stamp || r.Node != e.Records[0].Node {
			s.t.Fatalf("record %d stamped %v/%q in event %v/%q", id, r.Stamp, r.Node, e.Stamp, e.Records[0].Node)
		}
		if r.Type == records.EOE {
			hasEOE = true
			if i != len(e.Records)-1 {
				s.t.Fatal("EOE not last")
			}
		}
		if Classify(r.Type) == InSyscall {
			hasSyscall = true
		}
	}
	if e.Incomplete != (hasSyscall && !hasEOE) {
		s.t.Fatalf("Incomplete=%v for an event with syscall records %v, EOE %v", e.Incomplete, hasSyscall, hasEOE)
	}
	fmt.Fprintf(&s.out, "E%v%d%v%v ", e.Stamp, len(e.Records), e.Incomplete, e.Late)
}

func (s *fuzzSink) Lost(n uint64, why Loss) {
	if n == 0 || why < Gap || why > Discontinuity {
		s.t.Fatalf("Lost(%d, %d)", n, why)
	}
	fmt.Fprintf(&s.out, "L%d%s ", n, why)
}

// replayFuzz decodes data into a configuration and a sequence of pushes,
// ends of reads, advances and flushes, runs it, checks the properties and returns the
// calls made.
func replayFuzz(t *testing.T, data []byte) string {
	if len(data) < 2 {
		return ""
	}
	cfg := Config{MaxInFlight: 1 + int(data[0]%8), Timeout: time.Duration(1+data[1]%50) * time.Millisecond}
	data = data[2:]
	sink := &fuzzSink{t: t, delivered: map[int]int{}}
	ra := New(cfg, sink)
	serial := uint64(4294967290) // near the wrap
	ms := int64(1700000000000)
	pushed := 0
	for len(data) >= 4 {
		op, a, b, c := data[0], data[1], data[2], data[3]
		data = data[4:]
		switch op % 16 {
		case 13:
			ra.EndRead()
		case 14:
			ra.Advance(ms + int64(a)*int64(b))
		case 15:
			ra.Flush()
		default:
			// Serial: a small step either way, sometimes a jump.
			switch {
			case a == 0xff:
				serial += 1 << 25
			case a == 0xfe:
				serial = uint64(b)
			default:
				serial = uint64(uint32(int64(serial) + int64(int8(a))/16))
			}
			s := serial
			if c&0x80 != 0 {
				s = records.OwnSerialBase + uint64(c&0x7f)
			}
			// Time: mostly forward by a few ms, sometimes back.
			ms += int64(int8(b)) / 4
			r := records.Record{
				Type:  fuzzTypes[int(op>>4)%len(fuzzTypes)],
				Stamp: records.Stamp{Sec: ms / 1000, Msec: uint32(ms % 1000), Serial: s},
				Raw:   strconv.Itoa(pushed),
			}
			if c&0x40 != 0 {
				r.Node = "other"
			}
			if c&0x20 != 0 { // an older stamp time, as a long syscall has
				r.Stamp.Sec -= int64(c & 0x1f)
			}
			pushed++
			ra.Push(r)
		}
		if n := ra.Stats().InFlight; n > cfg.MaxInFlight {
			t.Fatalf("%d events in flight, bound %d", n, cfg.MaxInFlight)
		}
	}
	ra.Flush()
	if n := ra.Stats().InFlight; n != 0 {
		t.Fatalf("%d events in flight after Flush", n)
	}
	for i := 0; i < pushed; i++ {
		if sink.delivered[i] != 1 {
			t.Fatalf("record %d delivered %d times", i, sink.delivered[i])
		}
	}
	if st := ra.Stats(); st.Records != uint64(pushed) {
		t.Fatalf("Stats.Records = %d, pushed %d", st.Records, pushed)
	}
	return sink.out.String()
}

// FuzzReassemble drives a Reassembler with random stamps, types, nodes,
// advances and flushes and checks: no panic, every record delivered exactly
// once by Flush, in arrival order within its event and with its event's
// stamp, the in-flight bound, Incomplete exactly for syscall events without
// EOE, and the same calls for the same input.
func FuzzReassemble(f *testing.F) {
	f.Add([]byte{4, 10})
	f.Add([]byte{0, 0, 0x00, 0x10, 0x04, 0, 0x10, 0x10, 0x04, 0, 0x20, 0x10, 0x04, 0})
	f.Add([]byte{7, 49,
		0x00, 0x10, 0x04, 0, 0x10, 0x00, 0x04, 0, 0x50, 0x10, 0x04, 0, // SYSCALL PATH USER
		0x20, 0xf0, 0x04, 0, 0xb0, 0x30, 0x7f, 0, 0x0e, 0xff, 0xff, 0, // EOE back, AVC, advance
		0x00, 0xff, 0x04, 0, 0x00, 0xfe, 0x01, 0, 0x90, 0x10, 0x04, 0x85, // jump, restart, contid own
		0x10, 0x10, 0x04, 0x40, 0x00, 0x10, 0x04, 0x2a, 0x0f, 0, 0, 0}) // other node, old stamp, flush
	f.Fuzz(func(t *testing.T, data []byte) {
		if replayFuzz(t, data) != replayFuzz(t, data) {
			t.Fatal("same input, different output")
		}
	})
}
