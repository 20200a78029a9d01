package metrics

import (
	"bytes"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/contid/contid/internal/surface/api"
	"github.com/contid/contid/internal/testing/golden"
)

// statusKeys are the counters Daemon.Status reports (every mode), each
// with a distinct value so that a swapped mapping shows in the golden file.
var statusKeys = []string{
	"records_written", "record_errors", "bad_events", "seed_duplicates", "syncs",
	"engine_inputs", "unknown_parent", "unknown_exit", "evicted", "inherit_mismatch", "unknown_join", "stale_ns",
	"ring_lost", "inherit_failures", "connector_overflows", "connector_seq_gaps", "connector_malformed",
	"log_dropped",
	"audit_batches", "own_sent", "own_local", "own_queue_full", "own_send_errors", "loss_records",
	"audit_enobufs", "audit_decode_errors", "kernel_lost",
	"audit_received", "audit_malformed", "audit_events", "audit_dropped_by_rule", "audit_gaps", "audit_incomplete",
	"audit_late", "audit_discontinuities", "audit_contained", "audit_unknown_subject", "audit_forged",
	"written_host", "written_container", "written_json", "write_errors",
	"search_index_lines", "search_index_sidecars", "search_index_errors", "search_index_files_skipped",
	"fleet_spooled", "fleet_pending", "fleet_spool_bytes", "fleet_dropped", "fleet_published", "fleet_messages",
	"fleet_unreadable", "fleet_held_bytes", "fleet_held_files",
	"fleet_publish_errors", "fleet_resyncs", "fleet_registry_puts", "fleet_registry_errors", "fleet_connected",
}

func fullSnapshot() Snapshot {
	c := map[string]uint64{}
	for i, k := range statusKeys {
		c[k] = uint64(1000 + i)
	}
	return Snapshot{
		Status: api.Status{Source: "ebpf", Audit: "primary", Tasks: 123, Counters: c},
		Queues: []Queue{{"task_events", 3, 64}, {"audit_batches", 1, 64}, {"own_records", 0, 4096}},
	}
}

func exposition(t *testing.T, s Snapshot) string {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(func() Snapshot { return s }))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

// TestExposition pins every metric name, type, label and help text.
func TestExposition(t *testing.T) {
	golden.Check(t, "testdata/exposition.golden", []byte(exposition(t, fullSnapshot())))
}

// TestEveryCounterNamed: each status counter the daemon reports has a name
// of its own, and every one appears exactly once with its value.
func TestEveryCounterNamed(t *testing.T) {
	s := fullSnapshot()
	for _, k := range statusKeys {
		if !Described(k) {
			t.Errorf("status counter %q has no metric name", k)
		}
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(func() Snapshot { return s }))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[float64]int{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			seen[value(mf, m)]++
		}
	}
	for k, v := range s.Status.Counters {
		if seen[float64(v)] != 1 {
			t.Errorf("counter %s (%d) appears %d times", k, v, seen[float64(v)])
		}
	}
}

func value(mf *dto.MetricFamily, m *dto.Metric) float64 {
	switch mf.GetType() {
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue()
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue()
	}
	return m.GetUntyped().GetValue()
}

// TestUnknownCounter: a counter the table does not know is exported, not
// hidden, under a valid name, whatever its key holds.
func TestUnknownCounter(t *testing.T) {
	s := Snapshot{Status: api.Status{Source: "proc-connector", Counters: map[string]uint64{
		"future_gauge": 1, "odd key-Ä\n": 7,
	}}}
	out := exposition(t, s)
	for _, want := range []string{
		"contid_status_future_gauge 1\n",
		"contid_status_odd_key___ 7\n",
		`contid_info{audit="off",source="proc-connector"} 1`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("exposition lacks %q:\n%s", want, out)
		}
	}
}

// TestScrapeTakesOneSnapshot: every scrape reads the status afresh, once.
func TestScrapeTakesOneSnapshot(t *testing.T) {
	var n uint64
	c := NewCollector(func() Snapshot {
		n++
		return Snapshot{Status: api.Status{Counters: map[string]uint64{"kernel_lost": n}}}
	})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	for want := uint64(1); want <= 3; want++ {
		var b bytes.Buffer
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			expfmt.MetricFamilyToText(&b, mf)
		}
		if n != want || !strings.Contains(b.String(), `contid_lost_total{kind="kernel"} `+strconv.FormatUint(want, 10)+"\n") {
			t.Fatalf("scrape %d: %d snapshots, output:\n%s", want, n, b.String())
		}
	}
}

// TestSeries: Series names each counter as the exposition writes it.
func TestSeries(t *testing.T) {
	out := exposition(t, fullSnapshot())
	for k, v := range fullSnapshot().Status.Counters {
		if line := Series(k) + " " + strconv.FormatUint(v, 10) + "\n"; !strings.Contains(out, line) {
			t.Errorf("%s: no line %q", k, line)
		}
	}
	if got := Series("new-key"); got != "contid_status_new_key" {
		t.Errorf("Series(new-key) = %q", got)
	}
}
