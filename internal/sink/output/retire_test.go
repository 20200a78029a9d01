package output

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/pipeline"
	"github.com/contid/contid/internal/pipeline/rules"
	"github.com/contid/contid/internal/records"
	"github.com/contid/contid/internal/sink/auditlog"
)

// lifeWorld is an Output over a temporary log directory.
type lifeWorld struct {
	t   *testing.T
	dir string // DIR/containers
	o   *Output
}

func newLife(t *testing.T, keep int, keepFor time.Duration) *lifeWorld {
	t.Helper()
	base := t.TempDir()
	w := &lifeWorld{t: t, dir: filepath.Join(base, "containers")}
	w.o = w.output(keep, keepFor)
	return w
}

func (w *lifeWorld) output(keep int, keepFor time.Duration) *Output {
	return New(Config{
		Host: open(w.t, filepath.Join(filepath.Dir(w.dir), "audit.log")),
		Container: func(id contid.ID) auditlog.Config {
			return auditlog.Config{Path: filepath.Join(w.dir, id.String(), "audit.log")}
		},
		MaxOpen: 4, Dir: w.dir, KeepDropped: keep, KeepDroppedFor: keepFor,
	})
}

// own writes contid's CONTAINER_OP op for id at second sec.
func (w *lifeWorld) own(id contid.ID, op string, sec int64, serial int) {
	w.t.Helper()
	r := records.Record{Type: records.ContainerOp, Stamp: records.Stamp{Sec: sec, Msec: 5, Serial: uint64(serial)},
		Fields: []records.Field{{Key: "op", Value: op}, {Key: "contid", Value: id.String()}, {Key: "res", Value: "success"}}}
	life := pipeline.Registered
	if op == "drop" {
		life = pipeline.Dropped
	}
	w.o.Write(&pipeline.Event{Records: []records.Record{r}, Container: id, Life: life,
		Routes: rules.Routes{Dest: rules.Host | rules.Container}, Chains: []contid.Chain{{id}}})
	w.o.Commit()
}

func (w *lifeWorld) kernel(id contid.ID, serial int) {
	w.o.Write(event(w.t, id, rules.Host|rules.Container, serial))
	w.o.Commit()
}

func (w *lifeWorld) ls(sub string) []string {
	w.t.Helper()
	ents, err := os.ReadDir(filepath.Join(w.dir, sub))
	if err != nil && !os.IsNotExist(err) {
		w.t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func serials(t *testing.T, path string) string {
	t.Helper()
	var s []string
	for _, l := range strings.Split(strings.TrimSpace(read(t, path)), "\n") {
		r, err := records.ParseLine(l)
		if err != nil {
			t.Fatal(err)
		}
		s = append(s, strconv.FormatUint(r.Stamp.Serial, 10))
	}
	return strings.Join(s, " ")
}

// TestRetire: a dropped container's log is closed and moved aside under its
// drop time with everything written to it, late events included; its contid
// registered again starts a new log.
func TestRetire(t *testing.T) {
	w := newLife(t, 10, 0)
	if got := w.ls(""); len(got) != 0 {
		t.Fatalf("container dirs before any event: %v", got)
	}
	w.own(7, "set", 1795687201, 1)
	w.kernel(7, 2)
	w.own(7, "drop", 1795687202, 3)
	if got := w.ls(""); !slices.Equal(got, []string{"dropped"}) {
		t.Fatalf("containers/ after the drop: %v", got)
	}
	first := filepath.Join(w.dir, "dropped", "7-"+time.Unix(1795687202, 5e6).UTC().Format(dropTimeLayout))
	w.kernel(7, 4) // late: a task's record that arrived after the drop
	if got := serials(t, filepath.Join(first, "audit.log")); got != "1 2 3 4" {
		t.Fatalf("dropped log holds serials %q, want 1 2 3 4", got)
	}
	// Reused: a new log; the old one is untouched.
	w.own(7, "set", 1795687203, 5)
	w.kernel(7, 6)
	if got := serials(t, filepath.Join(w.dir, "7", "audit.log")); got != "5 6" {
		t.Fatalf("new log holds %q, want 5 6", got)
	}
	// Dropped again with the same drop time (a clock step): a directory of its own.
	w.own(7, "drop", 1795687202, 7)
	if got := w.ls("dropped"); len(got) != 2 || got[1] != filepath.Base(first)+"-2" ||
		serials(t, filepath.Join(first, "audit.log")) != "1 2 3 4" || serials(t, filepath.Join(first+"-2", "audit.log")) != "5 6 7" {
		t.Fatalf("dropped/: %v", got)
	}
	if st := w.o.Stats(); st.Retired != 2 || st.RetiredRemoved != 0 || st.RetireErrors != 0 || st.OpenLogs != 0 {
		t.Fatalf("stats %+v", st)
	}
	// A container no event was routed to has no log, before or after.
	w.o.Write(&pipeline.Event{Records: []records.Record{{Type: records.ContainerOp, Stamp: records.Stamp{Sec: 1795687204}}},
		Container: 8, Life: pipeline.Dropped, Routes: rules.Routes{Dest: rules.Host}})
	if got := w.ls(""); !slices.Equal(got, []string{"dropped"}) {
		t.Fatalf("containers/: %v", got)
	}
}

// TestRetireBounds: short-lived registrations in a loop leave at most
// KeepDropped directories, the newest; an age limit and 0 remove more; a
// restart applies the bound to what it finds and leaves foreign names.
func TestRetireBounds(t *testing.T) {
	w := newLife(t, 3, 0)
	for i := range 50 {
		id := contid.ID(100 + i)
		w.own(id, "set", 1795687201+int64(i), 2*i+1)
		w.own(id, "drop", 1795687201+int64(i), 2*i+2)
	}
	got := w.ls("dropped")
	if len(got) != 3 || !strings.HasPrefix(got[0], "147-") || !strings.HasPrefix(got[2], "149-") {
		t.Fatalf("dropped/ after 50 containers: %v", got)
	}
	if st := w.o.Stats(); st.Retired != 50 || st.RetiredRemoved != 47 {
		t.Fatalf("stats %+v", st)
	}
	// A restart with a smaller bound; a directory not named by contid stays.
	if err := os.Mkdir(filepath.Join(w.dir, "dropped", "notes"), 0o700); err != nil {
		t.Fatal(err)
	}
	w.o.Close()
	w.o = w.output(1, 0)
	if got := w.ls("dropped"); len(got) != 2 || !strings.HasPrefix(got[0], "149-") || got[1] != "notes" {
		t.Fatalf("dropped/ after a restart keeping 1: %v", got)
	}

	// Age: a drop two days after another removes it when one day is kept.
	w = newLife(t, 10, 24*time.Hour)
	w.own(1, "set", 1795687201, 1)
	w.own(1, "drop", 1795687201, 2)
	w.own(2, "set", 1795687201+2*86400, 3)
	w.own(2, "drop", 1795687201+2*86400, 4)
	if got := w.ls("dropped"); len(got) != 1 || !strings.HasPrefix(got[0], "2-") {
		t.Fatalf("dropped/ with a 1-day limit: %v", got)
	}

	// 0 kept: the log goes at the drop (the host log has its events).
	w = newLife(t, 0, 0)
	w.own(3, "set", 1795687201, 1)
	w.own(3, "drop", 1795687201, 2)
	if got := w.ls(""); len(got) != 0 {
		t.Fatalf("containers/ keeping none: %v", got)
	}
}

func TestParseDropped(t *testing.T) {
	at := time.Date(2026, 12, 4, 3, 1, 44, 123e6, time.UTC).UnixNano()
	tests := []struct {
		name string
		id   contid.ID
		ok   bool
	}{
		{"77-20261204T030144.123Z", 77, true},
		{"77-20261204T030144.123Z-2", 77, true},
		{"77-20261204T030144.123Z-1", 0, false},
		{"77-20261204T030144.123Zx", 0, false},
		{"18446744073709551615-20261204T030144.123Z", 0, false},
		{"x-20261204T030144.123Z", 0, false},
		{"77", 0, false},
		{"77-2026", 0, false},
		{"notes", 0, false},
	}
	for _, tt := range tests {
		id, got, ok := parseDropped(tt.name)
		if ok != tt.ok || ok && (id != tt.id || got != at) {
			t.Errorf("%s: %d %d %v", tt.name, id, got, ok)
		}
	}
}
