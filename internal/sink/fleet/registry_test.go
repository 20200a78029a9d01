package fleet

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/pipeline"
	"github.com/contid/contid/internal/testing/testwait"
)

// TestRegistry: the events that register and drop containers become the
// host's entries in the registry bucket (chain, times, last event), also
// those noted while the server was down; other events leave it alone.
func TestRegistry(t *testing.T) {
	c := startCluster(t, 1, nil)
	admin := connect(t, c.urls())
	testwait.Until(t, "bucket created", func() (bool, any) {
		err := EnsureRegistry(admin, "CONTID", 1)
		return err == nil, err
	})
	sp, err := OpenSpool(SpoolConfig{Dir: t.TempDir(), MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	reg := NewRegistry("a", testLog(t))
	sink := NewSink("fleet", "a", "boot", false, sp) // no event is routed to it
	sink.Registry = reg
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- reg.Run(ctx, connect(t, c.urls()), RegistryBucket("CONTID")) }()
	defer func() { cancel(); <-done }()

	op := func(lines string, life pipeline.Life, id contid.ID) {
		ev := event(t, lines)
		ev.Life, ev.Container = life, id
		sink.Write(ev)
	}
	op("type=UNKNOWN[2900] msg=audit(1700000002.000:45): op=set opid=5 contid=12 old-contid=2 res=success\n", pipeline.Registered, 12)
	op("type=UNKNOWN[2900] msg=audit(1700000003.500:46): op=set opid=6 contid=7 old-contid=-1 res=success\n", pipeline.Registered, 7)
	op("type=SYSCALL msg=audit(1700000004.000:47): pid=1 uid=0\n", 0, 7)
	js, err := jetstream.New(admin)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(context.Background(), RegistryBucket("CONTID"))
	if err != nil {
		t.Fatal(err)
	}
	entry := func(key string) (Registration, uint64) {
		var r Registration
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		e, err := kv.Get(ctx, key)
		if err != nil {
			return r, 0
		}
		if err := json.Unmarshal(e.Value(), &r); err != nil {
			t.Fatalf("%s: %q: %v", key, e.Value(), err)
		}
		return r, e.Revision()
	}
	testwait.Until(t, "registrations put", func() (bool, any) {
		_, r12 := entry("a.12")
		_, r7 := entry("a.7")
		return r12 > 0 && r7 > 0, [2]uint64{r12, r7}
	})
	if r, _ := entry("a.12"); r.Host != "a" || r.Contid != 12 || !slices.Equal(r.Chain, []uint64{2, 12}) || r.Registered != 1700000002000 || r.Dropped != 0 || r.Event != "a:boot:1700000002.000:45" {
		t.Fatalf("a.12: %+v", r)
	}
	if r, _ := entry("a.7"); !slices.Equal(r.Chain, []uint64{7}) || r.Registered != 1700000003500 || r.Event != "a:boot:1700000003.500:46" {
		t.Fatalf("a.7 (a later event of it changes nothing): %+v", r)
	}

	// The server away: what is noted meanwhile is put when it is back,
	// after a put has failed for it (one failure must not stick).
	_, failed := reg.Stats()
	c.stop(0)
	op("type=UNKNOWN[2900] msg=audit(1700000010.250:50): op=drop opid=5 contid=12 res=success\n", pipeline.Dropped, 12)
	op("type=UNKNOWN[2900] msg=audit(1700000011.000:51): op=set opid=9 contid=9 old-contid=7 res=success\n", pipeline.Registered, 9)
	testwait.Until(t, "a registry put failing while the server is away", func() (bool, any) {
		_, e := reg.Stats()
		return e > failed, e
	})
	c.start(0)
	testwait.Until(t, "registrations put after the outage", func() (bool, any) {
		r12, _ := entry("a.12")
		_, r9 := entry("a.9")
		put, _ := reg.Stats() // progress is a put, not a failed one
		return r12.Dropped != 0 && r9 > 0, [3]int64{r12.Dropped, int64(r9), int64(put)}
	})
	if r, _ := entry("a.12"); !slices.Equal(r.Chain, []uint64{2, 12}) || r.Registered != 1700000002000 || r.Dropped != 1700000010250 || r.Event != "a:boot:1700000010.250:50" {
		t.Fatalf("a.12 dropped: %+v", r)
	}
	if r, _ := entry("a.9"); !slices.Equal(r.Chain, []uint64{7, 9}) || r.Registered != 1700000011000 {
		t.Fatalf("a.9: %+v", r)
	}
	put, errs := reg.Stats()
	t.Logf("%d puts, %d failed", put, errs)
}
