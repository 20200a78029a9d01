package fleet

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/contid/contid/internal/pipeline"
	"github.com/contid/contid/internal/sink/auditlog"
	"github.com/contid/contid/internal/sink/output"
	"github.com/contid/contid/internal/testing/testwait"
)

// recorder spools events through a Sink and keeps, in the order they
// were spooled (the order the stream must hold them in), the events'
// identities and the message ids.
type recorder struct {
	mu   sync.Mutex
	sink *Sink
	// out writes the host log first, as the daemon does, so that the
	// spool refers to it for the events (the held form); nil: copied.
	out    *output.Output
	events []string
	ids    []string
}

func (r *recorder) Write(ev *pipeline.Event) {
	if r.out != nil {
		r.out.Write(ev)
		r.sink.WriteLines(ev, r.out.Lines(), r.out.Span())
	} else {
		r.sink.Write(ev)
	}
	r.mu.Lock()
	r.events = append(r.events, r.sink.enc.EventID(ev))
	r.mu.Unlock()
}

// Commit ends a batch.
func (r *recorder) Commit() error {
	if r.out != nil {
		r.out.Commit()
	}
	err := r.sink.Commit()
	r.mu.Lock()
	for _, m := range r.sink.msgs {
		r.ids = append(r.ids, m.ID)
	}
	r.mu.Unlock()
	return err
}

// batches writes events to a recorder, ending a batch every so many.
type batches struct {
	rec      *recorder
	every, n int
}

func (b *batches) Write(ev *pipeline.Event) {
	b.rec.Write(ev)
	if b.n++; b.n%b.every == 0 {
		b.rec.Commit()
	}
}

func (r *recorder) IDs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ids)
}

func (r *recorder) Events() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// host is one contid host publishing to the cluster: spool, sink,
// publisher.
type host struct {
	name   string
	logDir string
	spool  *Spool
	rec    *recorder
	pub    *Publisher
	done   chan error
	stop   context.CancelFunc
}

// startHost starts a host whose events go to its host log (in
// scfg.LogDir, a new directory when "") and, referring to it, to its
// spool (scfg.Dir, new when ""), as the daemon's do.
func startHost(t *testing.T, urls, name string, scfg SpoolConfig, tweak ...func(*PublisherConfig)) *host {
	t.Helper()
	if scfg.Dir == "" {
		scfg.Dir = t.TempDir()
	}
	if scfg.LogDir == "" {
		scfg.LogDir = t.TempDir()
	}
	scfg.LogBase = "audit.log"
	hostLog, err := auditlog.Open(auditlog.Config{Path: filepath.Join(scfg.LogDir, scfg.LogBase)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	places := &Places{}
	hostLog.Observe(places)
	t.Cleanup(func() { places.Close(); hostLog.Close() })
	if scfg.MaxBytes == 0 {
		scfg.MaxBytes = 1 << 30
	}
	sp, err := OpenSpool(scfg)
	if err != nil {
		t.Fatal(err)
	}
	nc := connect(t, urls)
	pc := PublisherConfig{Conn: nc, Stream: StreamName("CONTID", name), Host: name, Spool: sp, AckWait: 2 * time.Second, Log: testLog(t)}
	for _, f := range tweak {
		f(&pc)
	}
	pub, err := NewPublisher(pc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	sink := NewSink("", name, "boot1", false, sp)
	sink.Places = places
	rec := &recorder{sink: sink, out: output.New(output.Config{Host: hostLog, HostPlacer: places})}
	h := &host{name: name, logDir: scfg.LogDir, spool: sp, rec: rec, pub: pub, done: make(chan error, 1), stop: cancel}
	go func() { h.done <- pub.Run(ctx) }()
	t.Cleanup(func() { h.stop(); <-h.done; sp.Close() })
	return h
}

// drained waits until the spool holds nothing unacknowledged.
func (h *host) drained(t *testing.T) {
	t.Helper()
	testwait.Until(t, h.name+" spool drained", func() (bool, any) {
		st, ps := h.spool.Stats(), h.pub.Stats()
		return st.Pending == 0, [3]uint64{st.Pending, ps.Published, ps.Resyncs}
	})
}

// checkStream: the stream holds each message spooled once, in order,
// and each event once, in the host's order, counted by identity.
func checkStream(t *testing.T, urls string, h *host) {
	t.Helper()
	msgs := streamMsgs(t, connect(t, urls), StreamName("CONTID", h.name))
	var got []string
	for _, m := range msgs {
		got = append(got, m.id)
	}
	if want := h.rec.IDs(); !slices.Equal(got, want) {
		diff(t, h.name+" messages", got, want)
	}
	if got, want := streamEvents(t, msgs), h.rec.Events(); !slices.Equal(got, want) {
		diff(t, h.name+" events", got, want)
	}
}

// streamEvents returns the identities of the events of a stream's
// messages in the host's order: batch by batch (a batch's messages are
// stored together), each batch's events by their place in it, one copy
// of each. An event in two batches, or a place holding two events, fails.
func streamEvents(t *testing.T, msgs []storedMsg) []string {
	t.Helper()
	var out []string
	inBatch := map[string]string{} // identity → its batch
	var batch string
	var places map[uint64]string
	end := func() {
		for _, k := range slices.Sorted(maps.Keys(places)) {
			out = append(out, places[k])
		}
	}
	for _, m := range msgs {
		b, frames, ok := ParseBatch(m.data, nil)
		if !ok {
			t.Fatalf("message %s is not a batch", m.id)
		}
		if b != batch {
			end()
			batch, places = b, map[uint64]string{}
		}
		for _, f := range frames {
			if id, ok := places[f.Index]; ok && id != f.ID {
				t.Fatalf("batch %s: place %d holds %s and %s", b, f.Index, id, f.ID)
			}
			if in, ok := inBatch[f.ID]; ok && in != b {
				t.Fatalf("event %s in batches %s and %s", f.ID, in, b)
			}
			places[f.Index], inBatch[f.ID] = f.ID, b
		}
	}
	end()
	return out
}

func diff(t *testing.T, what string, got, want []string) {
	t.Helper()
	seen := map[string]int{}
	for _, id := range got {
		seen[id]++
	}
	dups, missing := 0, 0
	for _, id := range want {
		switch seen[id] {
		case 0:
			missing++
		case 1:
		default:
			dups++
		}
	}
	first := 0
	for first < min(len(got), len(want)) && got[first] == want[first] {
		first++
	}
	t.Fatalf("%s: stream holds %d, %d spooled: %d missing, %d duplicated, first difference at %d", what, len(got), len(want), missing, dups, first)
}

// A replayed host log, one server: every event once, in order.
func TestPublishReplayed(t *testing.T) {
	c := startCluster(t, 1, nil)
	createStream(t, connect(t, c.urls()), "b", 1)
	h := startHost(t, c.urls(), "b", SpoolConfig{})
	n := replay(genLog(rand.New(rand.NewPCG(1, 2)), 0, 5000, 1700000000), &batches{rec: h.rec, every: 100})
	if err := h.rec.Commit(); err != nil {
		t.Fatal(err)
	}
	h.drained(t)
	if len(h.rec.Events()) != n || len(h.rec.IDs()) < n/100 {
		t.Fatalf("%d events gave %d events in %d messages", n, len(h.rec.Events()), len(h.rec.IDs()))
	}
	checkStream(t, c.urls(), h)
}

// TestPublishCreatesStream: with Create, a publisher that finds no
// stream (a daemon started before the servers) makes it and publishes;
// without, it waits for the operator's.
func TestPublishCreatesStream(t *testing.T) {
	c := startCluster(t, 1, nil)
	h := startHost(t, c.urls(), "mk", SpoolConfig{}, func(pc *PublisherConfig) { pc.Create = true })
	replay(genLog(rand.New(rand.NewPCG(3, 2)), 0, 500, 1700000000), &batches{rec: h.rec, every: 50})
	if err := h.rec.Commit(); err != nil {
		t.Fatal(err)
	}
	h.drained(t)
	checkStream(t, c.urls(), h)

	w := startHost(t, c.urls(), "wait", SpoolConfig{})
	replay(genLog(rand.New(rand.NewPCG(3, 3)), 0, 50, 1700000000), &batches{rec: w.rec, every: 50})
	testwait.Until(t, "the publisher asking for the missing stream", func() (bool, any) {
		return w.pub.Stats().Resyncs > 0 && w.spool.Stats().Pending > 0, w.spool.Stats().Pending
	})
	js, err := jetstream.New(connect(t, c.urls()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Stream(context.Background(), StreamName("CONTID", "wait")); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("without Create the stream was made: %v", err)
	}
	createStream(t, connect(t, c.urls()), "wait", 1)
	w.drained(t)
	checkStream(t, c.urls(), w)
}

func testLog(t *testing.T) *slog.Logger {
	if os.Getenv("FLEET_DEBUG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// A spool made anew (lost, or a second contid on the host) holding a
// batch the stream has: it is taken as stored (its messages have the
// same ids), none twice, and the spool drains; the batches after it
// follow in order.
func TestPublishSpoolAnew(t *testing.T) {
	c := startCluster(t, 1, nil)
	createStream(t, connect(t, c.urls()), "b", 1)
	r := rand.New(rand.NewPCG(1, 2))
	first, second, more := genLog(r, 0, 300, 1700000000), genLog(r, 300, 300, 1700000000), genLog(r, 600, 100, 1700000000)
	h1 := startHost(t, c.urls(), "b", SpoolConfig{})
	replay(first, h1.rec)
	h1.rec.Commit()
	replay(second, h1.rec)
	h1.rec.Commit()
	h1.drained(t)
	h1.stop()
	<-h1.done
	h1.done <- nil // for its cleanup

	h2 := startHost(t, c.urls(), "b", SpoolConfig{})
	// The first batch again, in a spool of its own: the stream's last
	// message is not among its messages.
	replay(first, h2.rec)
	h2.rec.Commit()
	replay(more, h2.rec)
	h2.rec.Commit()
	h2.drained(t)
	uniq := func(all ...[]string) []string {
		seen := map[string]bool{}
		var out []string
		for _, id := range slices.Concat(all...) {
			if !seen[id] {
				seen[id] = true
				out = append(out, id)
			}
		}
		return out
	}
	msgs := streamMsgs(t, connect(t, c.urls()), StreamName("CONTID", "b"))
	var got []string
	for _, m := range msgs {
		got = append(got, m.id)
	}
	if want := uniq(h1.rec.IDs(), h2.rec.IDs()); !slices.Equal(got, want) {
		diff(t, "messages", got, want)
	}
	if got, want := streamEvents(t, msgs), uniq(h1.rec.Events(), h2.rec.Events()); !slices.Equal(got, want) {
		diff(t, "events", got, want)
	}
	if st := h2.pub.Stats(); st.Duplicates == 0 || st.Reordered != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func countLines(s string) int { return strings.Count(s, "\n") }

// A crash of contid mid-publish: the spool's files as they are at one
// moment while messages are in flight (the cursor on disk lags what the
// stream holds) are opened by a new publisher. It finds the stream's last
// message in the spool and goes on after it: every message once, in
// order, none sent twice.
func TestPublishAfterCrash(t *testing.T) {
	c := startCluster(t, 1, nil)
	createStream(t, connect(t, c.urls()), "b", 1)
	dir := t.TempDir()
	h1 := startHost(t, c.urls(), "b", SpoolConfig{Dir: dir, SegmentBytes: 256 << 10})
	replay(genLog(rand.New(rand.NewPCG(4, 4)), 0, 20000, 1700000000), &batches{rec: h1.rec, every: 20})
	h1.rec.Commit()
	testwait.Until(t, "publishing under way", func() (bool, any) {
		p := h1.pub.Stats().Published
		return p > 2000, p
	})
	// What a crash now leaves: the cursor first, then the segments (one
	// removed meanwhile was wholly acknowledged).
	crash := t.TempDir()
	copyFile := func(name string) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err == nil {
			err = os.WriteFile(filepath.Join(crash, name), b, 0o600)
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	copyFile("cursor")
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	for _, s := range segs {
		copyFile(filepath.Base(s))
	}
	h1.stop()
	<-h1.done
	h1.done <- nil
	published := h1.pub.Stats().Published

	h2 := startHost(t, c.urls(), "b", SpoolConfig{Dir: crash, LogDir: h1.logDir})
	h2.drained(t)
	checkStream(t, c.urls(), &host{name: "b", rec: h1.rec})
	st := h2.pub.Stats()
	if st.Reordered != 0 || st.Skipped == 0 {
		t.Fatalf("after the crash: %+v", st)
	}
	t.Logf("%d published before the stop; the new publisher skipped %d, published %d (%d duplicates)", published, st.Skipped, st.Published, st.Duplicates)
}
