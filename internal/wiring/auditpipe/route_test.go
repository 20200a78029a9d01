package auditpipe

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/core/engine"
	"github.com/contid/contid/internal/pipeline"
	"github.com/contid/contid/internal/pipeline/rules"
	"github.com/contid/contid/internal/records"
	"github.com/contid/contid/internal/sink/auditlog"
	"github.com/contid/contid/internal/sink/output"
)

// fakeRoute records what the pipe does with its stream route.
type fakeRoute struct {
	events, commits int
	lines, badLines int // events given with their lines; … other than the event's
	badSpans        int // host spans that do not fit the lines (or an event kept from the host log)
	dropped         uint64
	closed          bool
}

func (r *fakeRoute) WriteLines(ev *pipeline.Event, lines []byte, at output.HostSpan) {
	if len(ev.Routes.Streams) > 0 {
		r.events++
	}
	// The lines given are the event's, as the logs got them.
	var want []byte
	for i := range ev.Records {
		want = append(records.AppendRaw(want, &ev.Records[i]), '\n')
	}
	if lines != nil && !bytes.Equal(lines, want) {
		r.badLines++
	}
	if lines != nil {
		r.lines++
	}
	if ev.Routes.Has(rules.Host) != (at.Len > 0) || at.Len > 0 && at.Len != len(lines) {
		r.badSpans++
	}
}
func (r *fakeRoute) Commit() error                { r.commits++; return nil }
func (r *fakeRoute) Dropped() uint64              { return r.dropped }
func (r *fakeRoute) Close()                       { r.closed = true }
func (r *fakeRoute) Counters(c map[string]uint64) { c["fake_route"] = uint64(r.events) }

func openPipe(t *testing.T, filter string, stream string, route Route, loss func(string, uint64)) (*Pipe, error) {
	t.Helper()
	dir := t.TempDir()
	f := filepath.Join(dir, "filter.rules")
	if err := os.WriteFile(f, []byte(filter), 0o600); err != nil {
		t.Fatal(err)
	}
	host, err := auditlog.Open(auditlog.Config{Path: filepath.Join(dir, "audit.log")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Close() })
	cfg := Config{
		Mode: "", Filter: f, // no packet pairing
		Timeout: time.Second,
		Output: output.Config{Host: host, MaxOpen: 1,
			Container: func(id contid.ID) auditlog.Config { return auditlog.Config{Path: filepath.Join(dir, "c", id.String())} }},
		Engine: engine.New(engine.Config{}), Loss: loss, Stream: stream,
	}
	if route != nil {
		cfg.Route = route
	}
	return Open(cfg)
}

// TestRoute: the stream route gets every event routed to it, a commit
// with each batch and tick, its drops as CONTID_LOSS kind=stream (once
// each), its counters in status, and its close with the pipe's; a filter
// naming a stream that is not the route's is refused.
func TestRoute(t *testing.T) {
	if _, err := openPipe(t, "-a keep,host,stream=fleet\n", "", nil, nil); err == nil || !strings.Contains(err.Error(), `stream "fleet" is not defined`) {
		t.Fatalf("a stream with no route: %v", err)
	}
	if _, err := openPipe(t, "-a keep,host,stream=other\n", "fleet", &fakeRoute{}, nil); err == nil {
		t.Fatal("a stream other than the route's was accepted")
	}
	r := &fakeRoute{}
	losses := map[string]uint64{}
	p, err := openPipe(t, "-a keep,host,stream=fleet\n", "fleet", r, func(kind string, n uint64) { losses[kind] += n })
	if err != nil {
		t.Fatal(err)
	}
	line := func(serial int) records.Raw {
		return records.Raw{Data: []byte("type=SYSCALL msg=audit(1700000000.000:" + strconv.Itoa(serial) + "): arch=c000003e syscall=59 success=yes exit=0 items=0 ppid=1 pid=1 auid=0 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=1 comm=\"sh\" exe=\"/bin/sh\" key=(null)")}
	}
	eoe := func(serial int) records.Raw {
		return records.Raw{Data: []byte("type=EOE msg=audit(1700000000.000:" + strconv.Itoa(serial) + "):")}
	}
	p.Batch([]records.Raw{line(1), eoe(1), line(2), eoe(2)})
	if r.events != 2 || r.commits != 1 {
		t.Fatalf("after a batch of two events: %d events, %d commits", r.events, r.commits)
	}
	if r.lines != 2 || r.badLines != 0 || r.badSpans != 0 {
		t.Fatalf("the route got the lines of %d events (%d not the event's, %d with a wrong host span), want 2", r.lines, r.badLines, r.badSpans)
	}
	r.dropped = 5
	p.Tick(time.Unix(1700000001, 0), true)
	r.dropped = 7
	p.Tick(time.Unix(1700000002, 0), true)
	p.Tick(time.Unix(1700000003, 0), true)
	if losses["stream"] != 7 {
		t.Fatalf("stream losses written: %d, want 7 (5, then 2 more, then none)", losses["stream"])
	}
	if r.commits != 4 {
		t.Fatalf("commits: %d, want one per batch and tick", r.commits)
	}
	p.Publish()
	c := map[string]uint64{}
	p.Counters(c)
	if c["fake_route"] != 2 {
		t.Fatalf("route counters missing from status: %v", c)
	}
	p.Close()
	if !r.closed {
		t.Fatal("the route was not closed with the pipe")
	}
}
