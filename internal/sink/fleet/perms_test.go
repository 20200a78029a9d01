package fleet

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/contid/contid/internal/sink/search"
	"github.com/contid/contid/internal/testing/testwait"
)

// nkeyUser makes a user nkey, writes its seed to a file (mode 0600) and
// returns the server's user with perms.
func nkeyUser(t *testing.T, pub, sub []string) (*server.NkeyUser, string) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	pk, _ := kp.PublicKey()
	path := filepath.Join(t.TempDir(), "user.nk")
	if err := os.WriteFile(path, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	u := &server.NkeyUser{Nkey: pk}
	if pub != nil {
		u.Permissions = &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: pub},
			Subscribe: &server.SubjectPermission{Allow: sub},
		}
	}
	return u, path
}

// TestHostPermissions: with HostPermissions, host a publishes its events,
// resynchronises and puts its registry entries, but cannot publish under
// b's name, put b's entries, read the registry, b's or its own stream,
// subscribe to events, or purge its stream — as a compromised host would
// try.
func TestHostPermissions(t *testing.T) {
	aPub, aSub := HostPermissions("CONTID", "a")
	userA, seedA := nkeyUser(t, aPub, aSub)
	admin, seedAdmin := nkeyUser(t, nil, nil)
	c := startCluster(t, 1, func(o *server.Options) { o.Nkeys = []*server.NkeyUser{userA, admin} })

	adminNC, err := Connect(ConnConfig{URLs: c.urls(), NKeySeed: seedAdmin})
	if err != nil {
		t.Fatal(err)
	}
	defer adminNC.Close()
	createStream(t, adminNC, "a", 1)
	createStream(t, adminNC, "b", 1)
	if err := EnsureRegistry(adminNC, "CONTID", 1); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var denied []string
	nc, err := Connect(ConnConfig{URLs: c.urls(), NKeySeed: seedA, Host: "a"},
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrPermissionViolation) {
				mu.Lock()
				denied = append(denied, err.Error())
				mu.Unlock()
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()

	// Allowed: the publisher's whole protocol.
	sp, err := OpenSpool(SpoolConfig{Dir: t.TempDir(), MaxBytes: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := NewPublisher(PublisherConfig{Conn: nc, Stream: StreamName("CONTID", "a"), Host: "a", Spool: sp, AckWait: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	sink := NewSink("", "a", "boot", false, sp)
	n := replay(genLog(rand.New(rand.NewPCG(9, 9)), 0, 200, 1700000000), sink)
	sink.Commit()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pub.Run(ctx) }()
	testwait.Until(t, "a published", func() (bool, any) {
		st := sp.Stats()
		return st.Pending == 0, st.Pending
	})
	cancel()
	<-done
	if pub.Stats().Events < uint64(n) { // an event of two chains counts twice
		t.Fatalf("published %+v of %d events", pub.Stats(), n)
	}

	// Allowed: a's own entries in the registry.
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	short := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), time.Second)
	}
	c0, x0 := short()
	kv, err := js.KeyValue(c0, RegistryBucket("CONTID"))
	if err == nil {
		_, err = kv.Put(c0, RegistryKey("a", 5), []byte(`{"host":"a","contid":5}`))
	}
	x0()
	if err != nil {
		t.Fatalf("a put its own entry: %v", err)
	}

	// Denied: what a compromised host a would try.
	c0, x0 = short()
	if _, err := kv.Put(c0, RegistryKey("b", 5), []byte(`{"host":"a","contid":5}`)); err == nil {
		t.Fatal("a put an entry of b")
	}
	x0()
	c0, x0 = short()
	if _, err := kv.Get(c0, RegistryKey("a", 5)); err == nil { // there, but a may not read
		t.Fatal("a read the registry")
	}
	x0()
	c1, x1 := short()
	if _, err := js.Publish(c1, "contid.b.h", []byte("type=SYSCALL msg=audit(1.000:1): forged\n")); err == nil {
		t.Fatal("a published under b's name")
	}
	x1()
	if _, err := nc.Subscribe("contid.>", func(*nats.Msg) {}); err == nil {
		nc.Flush()
	}
	for _, stream := range []string{"b", "a"} {
		c2, x2 := short()
		_, err := js.OrderedConsumer(c2, StreamName("CONTID", stream), jetstream.OrderedConsumerConfig{})
		x2()
		if err == nil {
			t.Fatalf("a made a consumer of %s's stream", stream)
		}
	}
	c3, x3 := short()
	if err := js.DeleteStream(c3, StreamName("CONTID", "a")); err == nil {
		t.Fatal("a deleted its stream")
	}
	x3()
	// Search reads nothing for a (it cannot list or read streams).
	c4, x4 := short()
	_, err = Search(c4, js, &search.Query{}, SearchOptions{Prefix: "CONTID", Hosts: []string{"b"}}, func(string, *search.Event) error {
		t.Fatal("a read b's events")
		return nil
	})
	x4()
	if err == nil {
		t.Fatal("a searched b's stream")
	}
	testwait.Until(t, "permission violations reported", func() (bool, any) {
		mu.Lock()
		defer mu.Unlock()
		return len(denied) >= 2, len(denied)
	})

	// b's stream holds nothing; a's holds a's events only.
	if ids := streamIDs(t, adminNC, StreamName("CONTID", "b")); len(ids) != 0 {
		t.Fatalf("b's stream holds %v", ids)
	}
	ids := streamIDs(t, adminNC, StreamName("CONTID", "a"))
	if len(ids) == 0 || slices.ContainsFunc(ids, func(id string) bool { return id[:2] != "a:" }) {
		t.Fatalf("a's stream holds %d messages: %v", len(ids), ids[:min(len(ids), 5)])
	}
}
