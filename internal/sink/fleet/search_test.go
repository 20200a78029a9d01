package fleet

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/records"
	"github.com/contid/contid/internal/sink/search"
)

// TestSearchEquivalence: two hosts' logs, each published to its stream
// (a replayed log); for random queries, the fleet search of a host
// returns exactly the events the local search finds in that host's log,
// byte for byte and in the same order, and a query over every host
// returns both hosts' answers.
func TestSearchEquivalence(t *testing.T) {
	c := startCluster(t, 1, nil)
	admin := connect(t, c.urls())
	logs := map[string]string{}
	r := rand.New(rand.NewPCG(7, 8))
	const sec0 = 1700000000
	for i, name := range []string{"a", "b"} {
		createStream(t, admin, name, 1)
		h := startHost(t, c.urls(), name, SpoolConfig{})
		log := genLog(r, 0, 3000, sec0+int64(i)*10)
		path := filepath.Join(t.TempDir(), "audit.log")
		if err := os.WriteFile(path, []byte(log), 0o600); err != nil {
			t.Fatal(err)
		}
		logs[name] = path
		// Batches of a size that cuts across subjects; the last is short.
		replay(log, &batches{rec: h.rec, every: 37 + 50*i})
		h.rec.Commit()
		h.drained(t)
	}
	js, err := jetstream.New(admin)
	if err != nil {
		t.Fatal(err)
	}
	checkReadsOnly(t, js, 3000)
	ids := []contid.ID{1, 2, 3, 5, 6, 9, 12, 77}
	for n := range 150 {
		var q search.Query
		if r.IntN(4) > 0 {
			q.Contids = append(q.Contids, ids[r.IntN(len(ids))])
			if r.IntN(4) == 0 {
				q.Contids = append(q.Contids, ids[r.IntN(len(ids))])
			}
			q.Exact = r.IntN(3) == 0
		}
		if r.IntN(2) == 0 {
			q.Start, q.HasStart = sec0+int64(r.IntN(70)), true
		}
		if r.IntN(3) == 0 {
			q.End, q.HasEnd = sec0+int64(r.IntN(70)), true
		}
		switch r.IntN(5) {
		case 0:
			q.Keys = []string{"exec"}
		case 1:
			q.Types = []records.Type{records.ContainerOp}
		case 2:
			q.Success = "no"
		case 3:
			q.UIDs = []string{"1"}
		}
		// Build's normal form of a query (its decimal contids, terms).
		crit := search.Criteria{Exact: q.Exact, Success: q.Success, Keys: q.Keys, UIDs: q.UIDs}
		for _, id := range q.Contids {
			crit.Contids = append(crit.Contids, id.String())
		}
		for _, ty := range q.Types {
			crit.Types = append(crit.Types, fmt.Sprint(uint16(ty)))
		}
		bq, err := crit.Build(search.Clock{Now: time.Unix(sec0, 0), Loc: time.UTC})
		if err != nil {
			t.Fatal(err)
		}
		bq.Start, bq.HasStart, bq.End, bq.HasEnd = q.Start, q.HasStart, q.End, q.HasEnd
		var all []string
		for _, host := range []string{"a", "b"} {
			var local []string
			if _, err := search.Search([]string{logs[host]}, &bq, search.Options{NoIndex: true}, func(ev *search.Event) error {
				local = append(local, strings.Join(ev.Lines, ""))
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			got := fleetSearch(t, js, &bq, []string{host})
			if !slices.Equal(got, local) {
				t.Fatalf("query %d %+v on %s: fleet %d events, local %d", n, bq, host, len(got), len(local))
			}
			all = append(all, local...)
		}
		if got := fleetSearch(t, js, &bq, nil); !slices.Equal(got, all) {
			t.Fatalf("query %d %+v on every host: fleet %d events, local %d", n, bq, len(got), len(all))
		}
	}
}

// The search reads only the subjects of the container asked about: of
// the host's events, those of contid 12's subjects, each a match.
func checkReadsOnly(t *testing.T, js jetstream.JetStream, total uint64) {
	q := search.Query{Contids: []contid.ID{12}}
	var matched uint64
	st, err := Search(context.Background(), js, &q, SearchOptions{Prefix: "CONTID", Hosts: []string{"a"}}, func(string, *search.Event) error { matched++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if matched == 0 || st.Events != st.Matched || st.Malformed != 0 || st.Events*4 > total {
		t.Fatalf("contid 12 of %d events: %+v", total, st)
	}
}

func fleetSearch(t *testing.T, js jetstream.JetStream, q *search.Query, hosts []string) []string {
	t.Helper()
	var got []string
	_, err := Search(context.Background(), js, q, SearchOptions{Prefix: "CONTID", Hosts: hosts, Skew: time.Minute}, func(_ string, ev *search.Event) error {
		got = append(got, strings.Join(ev.Lines, ""))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// A compromised host writes what it likes into its own stream, also
// frames that carry another host's event identities: the search takes
// them as that host's (a) events only, and every event of b still comes
// out, as b's local search finds it.
func TestSearchForgedIdentities(t *testing.T) {
	c := startCluster(t, 1, nil)
	admin := connect(t, c.urls())
	createStream(t, admin, "a", 1)
	createStream(t, admin, "b", 1)
	b := startHost(t, c.urls(), "b", SpoolConfig{})
	log := genLog(rand.New(rand.NewPCG(21, 22)), 0, 300, 1700000000)
	replay(log, &batches{rec: b.rec, every: 50})
	b.rec.Commit()
	b.drained(t)

	ids := b.rec.Events()
	data := AppendBatchHead(nil, ids[0]+"+300", uint64(len(ids)))
	for i, id := range ids {
		body := fmt.Sprintf("type=SYSCALL msg=audit(1700000000.%03d:%d): pid=6 uid=0 forged\n", i%1000, i+1)
		data = fmt.Appendf(data, "%d %s %d\n%s", i, id, len(body), body)
	}
	js, err := jetstream.New(admin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(context.Background(), "contid.a.h", data); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(path, []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	var local []string
	if _, err := search.Search([]string{path}, &search.Query{}, search.Options{NoIndex: true}, func(ev *search.Event) error {
		local = append(local, strings.Join(ev.Lines, ""))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	if _, err := Search(context.Background(), js, &search.Query{}, SearchOptions{Prefix: "CONTID"}, func(host string, ev *search.Event) error {
		got[host] = append(got[host], strings.Join(ev.Lines, ""))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got["b"], local) || len(got["a"]) != len(ids) {
		t.Fatalf("b: %d events, local %d; a: %d forged of %d", len(got["b"]), len(local), len(got["a"]), len(ids))
	}
}
