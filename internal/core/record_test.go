package core

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/contid/contid/internal/core/engine"
	"github.com/contid/contid/internal/records"
)

// recorder notes what the core records, in order.
type recorder struct{ got []string }

func (r *recorder) Record(in engine.Input, kernel []error, sent []bool) {
	r.got = append(r.got, fmt.Sprintf("input %T sent=%v", in, sent))
}
func (r *recorder) Audit(mode string, self int32, timeout time.Duration, filter string) {
	r.got = append(r.got, "audit "+mode)
}
func (r *recorder) Batch(b []records.Raw) { r.got = append(r.got, fmt.Sprintf("batch %d", len(b))) }
func (r *recorder) Tick(now time.Time, idle bool) {
	r.got = append(r.got, fmt.Sprintf("tick %v", idle))
}
func (r *recorder) Loss(at int64, kind string, n uint64, extra []records.Field, sent bool) {
	r.got = append(r.got, fmt.Sprintf("loss %s %d %v %v", kind, n, extra, sent))
}
func (r *recorder) Stop()        { r.got = append(r.got, "stop") }
func (r *recorder) Unsent(n int) { r.got = append(r.got, fmt.Sprintf("unsent %d", n)) }

// taker is a Sender that takes n records, then is full.
type taker struct{ n int }

func (s *taker) Send(records.Record) bool { s.n--; return s.n >= 0 }

// TestRecordsWhatItConsumes: the trace holds a batch after the task
// events its barrier applied, each loss record with where it went (the
// kernel's stream, or the host log when the sender is full), and the own
// records written at stop, in the order the core consumed them.
func TestRecordsWhatItConsumes(t *testing.T) {
	f := newFake()
	rec := &recorder{}
	hl := &lines{}
	c := New(Config{Source: waitSource{f}, HostLog: hl, Record: rec})
	snd := &taker{n: 1}
	c.Attach(Hooks{AuditMode: "primary", AuditBatch: func([]records.Raw) {}, Own: snd})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	f.Push(fork(2))
	err := c.Call(ctx, func() {
		c.AuditBatch([]records.Raw{{Type: 1300}, {Type: 1320}})
		c.Loss("kernel", 3)
		c.DiskFullLoss("audit.log", 2)
	})
	cancel()
	<-done
	if err != nil {
		t.Fatal(err)
	}
	c.Unsent(records.Record{Type: records.ContidLoss})
	c.EndUnsent()
	c.EndUnsent() // counted once
	want := []string{
		"input engine.Fork sent=[]",
		"batch 2",
		"loss kernel 3 [] true",
		"loss disk_full 2 [{log audit.log 0 false false}] false",
		"unsent 1",
	}
	if !reflect.DeepEqual(rec.got, want) {
		t.Fatalf("recorded\n%q\nwant\n%q", rec.got, want)
	}
	if len(hl.l) != 2 { // the disk_full loss and the unsent record
		t.Fatalf("host log %q", hl.l)
	}
}
