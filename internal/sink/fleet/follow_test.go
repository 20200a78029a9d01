package fleet

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/sink/search"
	"github.com/contid/contid/internal/testing/testwait"
)

// TestFollow: a follower started after a host published half its log
// prints what the local search finds in that half, then, as the host
// publishes the rest, the rest: in the end exactly the local search's
// answer over the whole log, byte for byte and in order. Stopped, it
// returns what it matched and no error.
func TestFollow(t *testing.T) {
	c := startCluster(t, 1, nil)
	admin := connect(t, c.urls())
	createStream(t, admin, "a", 1)
	h := startHost(t, c.urls(), "a", SpoolConfig{})
	r := rand.New(rand.NewPCG(11, 12))
	first, second := genLog(r, 0, 1500, 1700000000), genLog(r, 1500, 1500, 1700000000)
	replay(first, &batches{rec: h.rec, every: 41})
	h.rec.Commit()
	h.drained(t)
	js, err := jetstream.New(admin)
	if err != nil {
		t.Fatal(err)
	}
	local := func(q *search.Query, log string) []string {
		path := filepath.Join(t.TempDir(), "audit.log")
		if err := os.WriteFile(path, []byte(log), 0o600); err != nil {
			t.Fatal(err)
		}
		var out []string
		if _, err := search.Search([]string{path}, q, search.Options{NoIndex: true}, func(ev *search.Event) error {
			out = append(out, strings.Join(ev.Lines, ""))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	// One follower per query, all running while the rest comes.
	type follower struct {
		q    search.Query
		mu   sync.Mutex
		got  []string
		st   SearchStats
		done chan error
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var fs []*follower
	for _, q := range []search.Query{{}, {Contids: []contid.ID{5}}, {Contids: []contid.ID{6}, Exact: true}} {
		f := &follower{q: q, done: make(chan error, 1)}
		fs = append(fs, f)
		go func() {
			var err error
			f.st, err = Follow(ctx, js, &f.q, SearchOptions{Prefix: "CONTID", Hosts: []string{"a"}}, 200*time.Millisecond, func(_ string, ev *search.Event) error {
				f.mu.Lock()
				f.got = append(f.got, strings.Join(ev.Lines, ""))
				f.mu.Unlock()
				return nil
			}, func() error { return nil })
			f.done <- err
		}()
	}
	printed := func(f *follower, want []string) {
		t.Helper()
		testwait.Until(t, "the follower prints", func() (bool, any) {
			f.mu.Lock()
			defer f.mu.Unlock()
			return len(f.got) >= len(want), len(f.got)
		})
		f.mu.Lock()
		defer f.mu.Unlock()
		if !slices.Equal(f.got, want) {
			t.Fatalf("query %+v: followed %d events, local %d", f.q, len(f.got), len(want))
		}
	}
	for _, f := range fs {
		printed(f, local(&f.q, first))
	}
	// The rest, in batches, while the followers run.
	replay(second, &batches{rec: h.rec, every: 29})
	h.rec.Commit()
	h.drained(t)
	for _, f := range fs {
		want := local(&f.q, first+second)
		if len(want) == len(local(&f.q, first)) {
			t.Fatalf("query %+v: nothing new to follow", f.q)
		}
		printed(f, want)
	}
	cancel()
	for _, f := range fs {
		if err := <-f.done; err != nil || f.st.Matched != uint64(len(f.got)) || !slices.Equal(f.got, local(&f.q, first+second)) {
			t.Fatalf("query %+v: follower stopped: %v, %+v, %d printed", f.q, err, f.st, len(f.got))
		}
	}
}
