package procconn

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/source/taskevent"
)

var update = flag.Bool("update", false, "rewrite testdata (root: recapture messages from the running kernel)")

// capturedDir holds datagrams received from a real kernel, one per file,
// with the golden text of their decoding beside them.
const capturedDir = "testdata/captured"

// Builders of wire messages, independent of the code under test.

// procEv is a struct proc_event: what, cpu, timestamp_ns and the union
// words (zero-padded to the kernel's 40 bytes).
func procEv(what, cpu uint32, ts uint64, words ...uint32) []byte {
	b := ne.AppendUint32(nil, what)
	b = ne.AppendUint32(b, cpu)
	b = ne.AppendUint64(b, ts)
	for _, w := range words {
		b = ne.AppendUint32(b, w)
	}
	for len(b) < evLen {
		b = append(b, 0)
	}
	return b
}

// cnMsg is a struct cn_msg of the proc connector carrying data.
func cnMsg(seq, ack uint32, data []byte) []byte {
	return cnMsgID(cnIdxProc, cnValProc, seq, ack, len(data), data)
}

func cnMsgID(idx, val, seq, ack uint32, n int, data []byte) []byte {
	b := ne.AppendUint32(nil, idx)
	b = ne.AppendUint32(b, val)
	b = ne.AppendUint32(b, seq)
	b = ne.AppendUint32(b, ack)
	b = ne.AppendUint16(b, uint16(n))
	b = ne.AppendUint16(b, 0)
	return append(b, data...)
}

// nlMsg is a netlink message of type typ, padded to 4 bytes.
func nlMsg(typ uint16, payload []byte) []byte {
	b := ne.AppendUint32(nil, uint32(nlmsgHdrLen+len(payload)))
	b = ne.AppendUint16(b, typ)
	b = ne.AppendUint16(b, 0)
	b = ne.AppendUint32(b, 0)
	b = ne.AppendUint32(b, 0)
	b = append(b, payload...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// event is one netlink message holding one proc event.
func event(what, cpu, seq uint32, ts uint64, words ...uint32) []byte {
	return nlMsg(nlmsgDone, cnMsg(seq, 0, procEv(what, cpu, ts, words...)))
}

func cat(bs ...[]byte) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b...)
	}
	return out
}

// withLen rewrites the nlmsg_len of the first message.
func withLen(b []byte, n uint32) []byte {
	c := append([]byte(nil), b...)
	ne.PutUint32(c, n)
	return c
}

// eventOf is the decoded event the builders' pids should give.
func eventOf(kind taskevent.Kind, ts uint64, tid, tgid int32) taskevent.Event {
	return taskevent.Event{Kind: kind, Time: ts, TID: tid, TGID: tgid, Contid: contid.Unset, UID: unknownID, AUID: unknownID, Ses: unknownID}
}

func TestDecode(t *testing.T) {
	fork := eventOf(taskevent.KindFork, 100, 11, 11)
	fork.ParentTID, fork.ParentTGID = 10, 9
	thread := eventOf(taskevent.KindFork, 101, 21, 20)
	thread.ParentTID, thread.ParentTGID, thread.Thread = 20, 20, true
	exit := eventOf(taskevent.KindExit, 103, 11, 11)
	exit.ExitCode = 3 << 8
	for _, tc := range []struct {
		name string
		in   []byte
		want []message
	}{
		{"fork", event(whatFork, 1, 7, 100, 10, 9, 11, 11),
			[]message{{what: whatFork, cpu: 1, seq: 7, time: 100, kparent: [2]int32{10, 9}, ev: fork}}},
		// The kernel names the process's parent (1) for a thread.
		{"thread", event(whatFork, 0, 8, 101, 1, 1, 21, 20),
			[]message{{what: whatFork, seq: 8, time: 101, kparent: [2]int32{1, 1}, ev: thread}}},
		{"exec", event(whatExec, 1, 9, 102, 11, 11),
			[]message{{what: whatExec, cpu: 1, seq: 9, time: 102, ev: eventOf(taskevent.KindExec, 102, 11, 11)}}},
		{"exit", event(whatExit, 1, 10, 103, 11, 11, 3<<8, 17, 10, 10),
			[]message{{what: whatExit, cpu: 1, seq: 10, time: 103, ev: exit}}},
		{"ack", nlMsg(nlmsgDone, cnMsg(5, 43, procEv(whatNone, noCPU, 104, 0))),
			[]message{{what: whatNone, cpu: noCPU, seq: 5, ack: 43, time: 104}}},
		{"ack error", nlMsg(nlmsgDone, cnMsg(5, 43, procEv(whatNone, 0, 104, 22))),
			[]message{{what: whatNone, seq: 5, ack: 43, time: 104, ackErr: 22}}},
		{"uid", event(whatUID, 0, 1, 1, 11, 11, 0, 0), []message{{what: whatUID, seq: 1, time: 1}}},
		{"gid", event(whatGID, 0, 1, 1, 11, 11, 0, 0), []message{{what: whatGID, seq: 1, time: 1}}},
		{"sid", event(whatSID, 0, 1, 1, 11, 11), []message{{what: whatSID, seq: 1, time: 1}}},
		{"ptrace", event(whatPtrace, 0, 1, 1, 11, 11, 10, 10), []message{{what: whatPtrace, seq: 1, time: 1}}},
		{"comm", event(whatComm, 0, 1, 1, 11, 11, 0x6f6f66), []message{{what: whatComm, seq: 1, time: 1}}},
		{"coredump", event(whatCoredump, 0, 1, 1, 11, 11, 10, 10), []message{{what: whatCoredump, seq: 1, time: 1}}},
		{"nonzero exit", event(whatNonzeroExit, 0, 1, 1), []message{{what: whatNonzeroExit, seq: 1, time: 1}}},
		{"future type", event(0x400, 0, 1, 1), []message{{what: 0x400, seq: 1, time: 1}}},
		{"ignored type, header only", nlMsg(nlmsgDone, cnMsg(1, 0, procEv(whatComm, 0, 1)[:evHdrLen])),
			[]message{{what: whatComm, seq: 1, time: 1}}},
		{"two in one datagram", cat(event(whatFork, 1, 7, 100, 10, 9, 11, 11), event(whatExec, 1, 9, 102, 11, 11)),
			[]message{
				{what: whatFork, cpu: 1, seq: 7, time: 100, kparent: [2]int32{10, 9}, ev: fork},
				{what: whatExec, cpu: 1, seq: 9, time: 102, ev: eventOf(taskevent.KindExec, 102, 11, 11)},
			}},
		{"noop skipped", cat(nlMsg(nlmsgNoop, nil), event(whatExec, 1, 9, 102, 11, 11)),
			[]message{{what: whatExec, cpu: 1, seq: 9, time: 102, ev: eventOf(taskevent.KindExec, 102, 11, 11)}}},
		{"last message unpadded", nlMsg(nlmsgDone, cnMsg(1, 0, procEv(whatComm, 0, 1)[:evHdrLen+1]))[:nlmsgHdrLen+cnMsgLen+evHdrLen+1],
			[]message{{what: whatComm, seq: 1, time: 1}}},
		{"bytes beyond the event ignored", nlMsg(nlmsgDone, cat(cnMsg(9, 0, procEv(whatExec, 1, 102, 11, 11)), []byte{1, 2, 3, 4})),
			[]message{{what: whatExec, cpu: 1, seq: 9, time: 102, ev: eventOf(taskevent.KindExec, 102, 11, 11)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decode(tc.in, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got\n%s\nwant\n%s", formatMessages(got, nil), formatMessages(tc.want, nil))
			}
		})
	}
}

func TestDecodeMalformed(t *testing.T) {
	good := event(whatFork, 1, 7, 100, 10, 9, 11, 11)
	for _, tc := range []struct {
		name string
		in   []byte
		keep int // messages decoded before the error
	}{
		{"empty", nil, 0},
		{"short header", good[:nlmsgHdrLen-1], 0},
		{"length below header", withLen(good, nlmsgHdrLen-1), 0},
		{"length beyond datagram", withLen(good, uint32(len(good)+1)), 0},
		{"length huge", withLen(good, 1<<31), 0},
		{"netlink error type", nlMsg(2, make([]byte, 20)), 0},
		{"short cn_msg", nlMsg(nlmsgDone, make([]byte, cnMsgLen-1)), 0},
		{"other connector", nlMsg(nlmsgDone, cnMsgID(2, 1, 0, 0, evLen, procEv(whatFork, 0, 0, 1, 1, 2, 2))), 0},
		{"cn_msg length beyond", nlMsg(nlmsgDone, cnMsgID(cnIdxProc, cnValProc, 0, 0, evLen+1, procEv(whatFork, 0, 0, 1, 1, 2, 2))), 0},
		{"proc_event header cut", nlMsg(nlmsgDone, cnMsg(0, 0, procEv(whatFork, 0, 0)[:evHdrLen-1])), 0},
		{"fork cut", nlMsg(nlmsgDone, cnMsg(0, 0, procEv(whatFork, 0, 0, 1, 1, 2, 2)[:evHdrLen+15])), 0},
		{"exec cut", nlMsg(nlmsgDone, cnMsg(0, 0, procEv(whatExec, 0, 0, 2, 2)[:evHdrLen+7])), 0},
		{"exit cut", nlMsg(nlmsgDone, cnMsg(0, 0, procEv(whatExit, 0, 0, 2, 2, 0)[:evHdrLen+11])), 0},
		{"ack cut", nlMsg(nlmsgDone, cnMsg(0, 0, procEv(whatNone, 0, 0)[:evHdrLen+3])), 0},
		{"zero pid", event(whatExec, 0, 0, 0, 0, 0), 0},
		{"negative tgid", event(whatExit, 0, 0, 0, 5, 0xffffffff), 0},
		{"zero child", event(whatFork, 0, 0, 0, 1, 1, 0, 0), 0},
		{"garbage after a good message", cat(good, []byte{1, 2, 3}), 1},
		{"bad after a good message", cat(good, withLen(good, 8)), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decode(tc.in, nil)
			if !errors.Is(err, taskevent.ErrMalformed) {
				t.Fatalf("error %v, want taskevent.ErrMalformed", err)
			}
			if len(got) != tc.keep {
				t.Fatalf("%d messages before the error, want %d", len(got), tc.keep)
			}
			t.Log(err)
		})
	}
}

func TestSeqTracker(t *testing.T) {
	type obs struct {
		cpu, seq uint32
		skipped  uint32
	}
	for _, tc := range []struct {
		name string
		obs  []obs
	}{
		{"consecutive", []obs{{0, 5, 0}, {0, 6, 0}, {0, 7, 0}}},
		{"gap", []obs{{0, 5, 0}, {0, 9, 3}, {0, 10, 0}}},
		{"per cpu", []obs{{0, 5, 0}, {1, 100, 0}, {0, 6, 0}, {1, 101, 0}, {1, 105, 3}, {0, 7, 0}}},
		{"wraps", []obs{{3, 0xfffffffe, 0}, {3, 0xffffffff, 0}, {3, 0, 0}, {3, 2, 1}}},
		{"backwards", []obs{{0, 5, 0}, {0, 3, 1}, {0, 4, 0}}},
		{"acks of old kernels take no part", []obs{{0, 5, 0}, {noCPU, 77, 0}, {noCPU, 12, 0}, {0, 6, 0}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s seqTracker
			for i, o := range tc.obs {
				if got := s.observe(o.cpu, o.seq); got != o.skipped {
					t.Fatalf("observation %d (cpu %d seq %d): skipped %d, want %d", i, o.cpu, o.seq, got, o.skipped)
				}
			}
		})
	}
}

func TestPlausibleStart(t *testing.T) {
	for _, tc := range []struct {
		ticks, evTime, suspended uint64
		ns                       uint64
		ok                       bool
	}{
		{100, 1_000_000_000, 0, 1_000_000_000, true}, // started in the event's tick
		{99, 1_000_000_000, 0, 990_000_000, true},
		{101, 1_000_000_000, 0, 1_010_000_000, false},  // a later task took the pid
		{101, 1_000_000_000, 2e7, 1_010_000_000, true}, // boottime runs ahead after a suspend
		{100, 999_500_000, 0, 1_000_000_000, true},     // within the slack
	} {
		ns, ok := plausibleStart(tc.ticks, tc.evTime, tc.suspended)
		if ns != tc.ns || ok != tc.ok {
			t.Errorf("plausibleStart(%d, %d, %d) = %d, %v; want %d, %v", tc.ticks, tc.evTime, tc.suspended, ns, ok, tc.ns, tc.ok)
		}
	}
}

func TestAppendRequest(t *testing.T) {
	for _, tc := range []struct {
		op, filter, ack uint32
		want            []byte
	}{
		{mcastListen, 0, 7, nlMsg(nlmsgDone, cnMsg(0, 7, ne.AppendUint32(nil, mcastListen)))},
		{mcastIgnore, 0, 0, nlMsg(nlmsgDone, cnMsg(0, 0, ne.AppendUint32(nil, mcastIgnore)))},
		{mcastListen, whatWanted, 9, nlMsg(nlmsgDone, cnMsg(0, 9, ne.AppendUint32(ne.AppendUint32(nil, mcastListen), 0x80000003)))},
	} {
		if got := appendRequest(nil, tc.op, tc.filter, tc.ack); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("appendRequest(%d, %#x, %d):\n got %x\nwant %x", tc.op, tc.filter, tc.ack, got, tc.want)
		}
	}
	if whatAll != 0xe00003c7 {
		t.Errorf("PROC_EVENT_ALL %#x", whatAll)
	}
}

// encode is decode's inverse for the fuzz test's round trip.
func encode(msgs []message) []byte {
	var b []byte
	for _, m := range msgs {
		var words []uint32
		switch m.what {
		case whatNone:
			words = []uint32{m.ackErr}
		case whatFork:
			words = []uint32{uint32(m.kparent[0]), uint32(m.kparent[1]), uint32(m.ev.TID), uint32(m.ev.TGID)}
		case whatExec:
			words = []uint32{uint32(m.ev.TID), uint32(m.ev.TGID)}
		case whatExit:
			words = []uint32{uint32(m.ev.TID), uint32(m.ev.TGID), uint32(m.ev.ExitCode)}
		}
		b = append(b, nlMsg(nlmsgDone, cnMsg(m.seq, m.ack, procEv(m.what, m.cpu, m.time, words...)))...)
	}
	return b
}

func FuzzDecode(f *testing.F) {
	// testdata/fuzz/FuzzDecode holds the captured messages and more.
	f.Add(event(whatFork, 1, 7, 100, 10, 9, 11, 11))
	f.Add(cat(event(whatExec, 1, 9, 102, 11, 11), event(whatExit, 1, 10, 103, 11, 11, 0, 17, 10, 10)))
	f.Fuzz(func(t *testing.T, b []byte) {
		msgs, err := decode(b, nil)
		if err != nil && !errors.Is(err, taskevent.ErrMalformed) {
			t.Fatalf("error not taskevent.ErrMalformed: %v", err)
		}
		for _, m := range msgs {
			if m.what != whatFork && m.what != whatExec && m.what != whatExit {
				continue
			}
			e := m.ev
			fork := e.Kind == taskevent.KindFork
			if e.TID <= 0 || e.TGID <= 0 || e.HasContid || e.Thread && !fork ||
				fork && e.Thread != (e.TID != e.TGID) ||
				e.Thread && (e.ParentTID != e.TGID || e.ParentTGID != e.TGID) {
				t.Fatalf("bad event %+v", e)
			}
		}
		if err != nil || len(msgs) == 0 { // only NLMSG_NOOP
			return
		}
		again, err := decode(encode(msgs), nil)
		if err != nil || !reflect.DeepEqual(again, msgs) {
			t.Fatalf("round trip: %v\n%s\n%s", err, formatMessages(msgs, nil), formatMessages(again, nil))
		}
	})
}

// formatMessages is the golden text of a decoded datagram.
func formatMessages(msgs []message, err error) string {
	var sb strings.Builder
	for i, m := range msgs {
		fmt.Fprintf(&sb, "message %d: %s cpu=%d seq=%d ack=%d time=%d", i, whatName(m.what), int32(m.cpu), m.seq, m.ack, m.time)
		switch m.what {
		case whatNone:
			fmt.Fprintf(&sb, " err=%d", m.ackErr)
		case whatFork:
			fmt.Fprintf(&sb, " kernel-parent=%d/%d", m.kparent[0], m.kparent[1])
		}
		if e := m.ev; e.Kind != 0 {
			fmt.Fprintf(&sb, "\n  event: %s tid=%d tgid=%d", e.Kind, e.TID, e.TGID)
			switch e.Kind {
			case taskevent.KindFork:
				fmt.Fprintf(&sb, " parent=%d/%d thread=%v", e.ParentTID, e.ParentTGID, e.Thread)
			case taskevent.KindExit:
				fmt.Fprintf(&sb, " exit_code=%#x", e.ExitCode)
			}
		}
		sb.WriteByte('\n')
	}
	if err != nil {
		fmt.Fprintf(&sb, "error: %v\n", err)
	}
	return sb.String()
}

// TestDecodeCaptured replays the datagrams captured from a real kernel
// against their golden decoding (-update rewrites the golden files).
func TestDecodeCaptured(t *testing.T) {
	bins, err := filepath.Glob(filepath.Join(capturedDir, "*.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if len(bins) == 0 {
		t.Fatalf("no captured datagrams in %s (go test -run TestCapture -update as root)", capturedDir)
	}
	for _, bin := range bins {
		t.Run(filepath.Base(bin), func(t *testing.T) {
			b, err := os.ReadFile(bin)
			if err != nil {
				t.Fatal(err)
			}
			msgs, err := decode(b, nil)
			if err != nil {
				t.Errorf("decode: %v", err)
			}
			got := formatMessages(msgs, err)
			golden := strings.TrimSuffix(bin, ".bin") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("decoding differs from %s:\n got %s\nwant %s", golden, got, want)
			}
		})
	}
}
