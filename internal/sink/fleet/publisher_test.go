package fleet

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/contid/contid/internal/pipeline"
	"github.com/contid/contid/internal/testing/testwait"
)

// recorder spools events through a Sink and keeps the message ids in the
// order they were spooled: the order the stream must hold them in.
type recorder struct {
	mu   sync.Mutex
	sink *Sink
	ids  []string
}

func (r *recorder) Write(ev *pipeline.Event) {
	r.sink.Write(ev)
	r.mu.Lock()
	for _, m := range r.sink.msgs {
		r.ids = append(r.ids, m.ID)
	}
	r.mu.Unlock()
}

func (r *recorder) IDs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ids)
}

// host is one contid host publishing to the cluster: spool, sink,
// publisher.
type host struct {
	name  string
	spool *Spool
	rec   *recorder
	pub   *Publisher
	done  chan error
	stop  context.CancelFunc
}

func startHost(t *testing.T, urls, name string, scfg SpoolConfig) *host {
	t.Helper()
	if scfg.Dir == "" {
		scfg.Dir = t.TempDir()
	}
	if scfg.MaxBytes == 0 {
		scfg.MaxBytes = 1 << 30
	}
	sp, err := OpenSpool(scfg)
	if err != nil {
		t.Fatal(err)
	}
	nc := connect(t, urls)
	pub, err := NewPublisher(PublisherConfig{Conn: nc, Stream: StreamName("CONTID", name), Host: name, Spool: sp, AckWait: 2 * time.Second, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &host{name: name, spool: sp, rec: &recorder{sink: NewSink("", name, "boot1", false, sp)}, pub: pub, done: make(chan error, 1), stop: cancel}
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

func checkStream(t *testing.T, urls string, h *host) {
	t.Helper()
	got := streamIDs(t, connect(t, urls), StreamName("CONTID", h.name))
	want := h.rec.IDs()
	if slices.Equal(got, want) {
		return
	}
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
	t.Fatalf("%s: stream holds %d messages, %d spooled: %d missing, %d duplicated, first difference at %d", h.name, len(got), len(want), missing, dups, first)
}

// A replayed host log, one server: every event once, in order.
func TestPublishReplayed(t *testing.T) {
	c := startCluster(t, 1, nil)
	createStream(t, connect(t, c.urls()), "b", 1)
	h := startHost(t, c.urls(), "b", SpoolConfig{})
	n := replay(genLog(rand.New(rand.NewPCG(1, 2)), 0, 5000, 1700000000), h.rec)
	if err := h.rec.sink.Commit(); err != nil {
		t.Fatal(err)
	}
	h.drained(t)
	if len(h.rec.IDs()) < n {
		t.Fatalf("%d events gave %d messages", n, len(h.rec.IDs()))
	}
	checkStream(t, c.urls(), h)
}

func testLog(t *testing.T) *slog.Logger {
	if os.Getenv("FLEET_DEBUG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// A spool made anew (lost, or a second contid on the host) holding events
// the stream has: they are taken as stored, none twice, and the spool
// drains; the events after them follow in order.
func TestPublishSpoolAnew(t *testing.T) {
	c := startCluster(t, 1, nil)
	createStream(t, connect(t, c.urls()), "b", 1)
	log := genLog(rand.New(rand.NewPCG(1, 2)), 0, 600, 1700000000)
	more := genLog(rand.New(rand.NewPCG(1, 3)), 600, 100, 1700000000)
	h1 := startHost(t, c.urls(), "b", SpoolConfig{})
	replay(log, h1.rec)
	h1.rec.sink.Commit()
	h1.drained(t)
	h1.stop()
	<-h1.done
	h1.done <- nil // for its cleanup

	h2 := startHost(t, c.urls(), "b", SpoolConfig{})
	// The first 300 events again, in a spool of its own: the stream's
	// last message is not among them.
	replay(strings.Join(strings.SplitAfter(log, "\n")[:countLines(log)/2], ""), h2.rec)
	replay(more, h2.rec)
	h2.rec.sink.Commit()
	h2.drained(t)
	want := append(h1.rec.IDs(), h2.rec.IDs()...)
	seen := map[string]bool{}
	var uniq []string
	for _, id := range want {
		if !seen[id] {
			seen[id] = true
			uniq = append(uniq, id)
		}
	}
	got := streamIDs(t, connect(t, c.urls()), StreamName("CONTID", "b"))
	if !slices.Equal(got, uniq) {
		t.Fatalf("stream holds %d, want %d (%+v)", len(got), len(uniq), h2.pub.Stats())
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
	replay(genLog(rand.New(rand.NewPCG(4, 4)), 0, 20000, 1700000000), h1.rec)
	h1.rec.sink.Commit()
	testwait.Until(t, "publishing under way", func() (bool, any) {
		p := h1.pub.Stats().Published
		return p > 5000, p
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

	h2 := startHost(t, c.urls(), "b", SpoolConfig{Dir: crash})
	h2.drained(t)
	got := streamIDs(t, connect(t, c.urls()), StreamName("CONTID", "b"))
	if !slices.Equal(got, h1.rec.IDs()) {
		t.Fatalf("stream holds %d messages, %d spooled", len(got), len(h1.rec.IDs()))
	}
	st := h2.pub.Stats()
	if st.Reordered != 0 || st.Skipped == 0 {
		t.Fatalf("after the crash: %+v", st)
	}
	t.Logf("%d published before the stop; the new publisher skipped %d, published %d (%d duplicates)", published, st.Skipped, st.Published, st.Duplicates)
}
