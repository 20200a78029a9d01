package fleet

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/contid/contid/internal/testing/testwait"
)

// outage is how long every server stays down in TestFaults: the scenario,
// not a wait for something to happen.
const outage = 30 * time.Second

// TestFaults: a three-server cluster, an R3 stream per host; host a
// publishes events as they come (a live source: a chunk every 20 ms),
// host b a replayed log. The leader of a's stream is killed mid-run and
// restarted; then all servers are down for 30 s while a goes on. After
// they return, both spools drain and each stream holds every event
// exactly once, in the host's order, counted by identity.
func TestFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("a 30 s outage")
	}
	c := startCluster(t, 3, nil)
	admin := connect(t, c.urls())
	createStream(t, admin, "a", 3)
	createStream(t, admin, "b", 3)
	a := startHost(t, c.urls(), "a", SpoolConfig{SegmentBytes: 1 << 20})
	b := startHost(t, c.urls(), "b", SpoolConfig{SegmentBytes: 1 << 20})

	// The live source: 100 events every 20 ms until stopped.
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		r := rand.New(rand.NewPCG(3, 4))
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i += 100 {
			replay(genLog(r, i, 100, 1700000000), a.rec)
			if err := a.rec.Commit(); err != nil {
				t.Error(err)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	replay(genLog(rand.New(rand.NewPCG(5, 6)), 0, 20000, 1700001000), &batches{rec: b.rec, every: 500})
	b.rec.Commit()

	published := func(h *host, n uint64) {
		t.Helper()
		testwait.Until(t, h.name+" publishing", func() (bool, any) {
			p := h.pub.Stats().Events
			return p >= n, p
		})
	}
	published(a, 2000)

	leader := c.streamLeader(StreamName("CONTID", "a"))
	if leader < 0 {
		t.Fatal("stream a has no leader")
	}
	c.stop(leader)
	t.Logf("stream leader s%d killed at %d published", leader, a.pub.Stats().Events)
	published(a, a.pub.Stats().Events+2000) // a new leader took over
	c.start(leader)
	published(a, a.pub.Stats().Events+2000)

	for i := range c.srvs {
		c.stop(i)
	}
	before := a.spool.Stats().Pending
	time.Sleep(outage)
	if st := a.spool.Stats(); st.Pending <= before {
		t.Fatalf("the spool did not take events during the outage: %d then %d pending", before, st.Pending)
	}
	t.Logf("outage over: %d pending in a's spool", a.spool.Stats().Pending)
	for i := range c.srvs {
		c.start(i)
	}
	published(a, a.pub.Stats().Events+2000)
	close(stop)
	<-stopped

	a.drained(t)
	b.drained(t)
	for _, h := range []*host{a, b} {
		st, ps := h.spool.Stats(), h.pub.Stats()
		t.Logf("%s: %d events in %d messages, %+v, %+v", h.name, len(h.rec.Events()), len(h.rec.IDs()), st, ps)
		if st.Lost() != 0 || ps.InFlight != 0 || ps.Reordered != 0 {
			t.Fatalf("%s: dropped, in flight or reordered: %+v, %+v", h.name, st, ps)
		}
		checkStream(t, c.urls(), h)
	}
	// The spool referred to a's host log for the outage's events, and
	// the publisher read them back from it.
	if st := a.spool.Stats(); st.ReadBack == 0 {
		t.Fatalf("a: no message read back from the host log after the outage: %+v", st)
	}
}
