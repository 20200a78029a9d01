// Package metrics exports the daemon's counters for Prometheus.
//
// The Collector turns one Snapshot, taken at scrape time from the same
// function that answers `contid status` (Daemon.Status), into metrics. It
// keeps no state of its own, so the two views never disagree and nothing
// is counted twice. Status counters have stable metric names (the table
// below); losses are one metric, contid_lost_total, with a kind label.
// A counter the table does not know yet is still exported, untyped, as
// contid_status_<key>, so a new status counter is never missing here.
//
// Server serves the metrics on an opt-in address: read-only, GET /metrics
// only, with read and write timeouts, a header size limit and a connection
// limit.
package metrics

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/contid/contid/internal/surface/api"
)

// Snapshot is what one scrape reports.
type Snapshot struct {
	Status api.Status
	Queues []Queue
}

// Queue is the fill of one of the daemon's internal queues (a channel),
// read with len() and cap() at scrape time.
type Queue struct {
	Name     string
	Len, Cap int
}

// family is one exported metric name; a status counter maps to one of
// its series.
type family struct {
	name, help string
	typ        prometheus.ValueType
	label      string // "" when the family has a single series
	desc       *prometheus.Desc
}

func newFamily(name, help string, typ prometheus.ValueType, label string) *family {
	var labels []string
	if label != "" {
		labels = []string{label}
	}
	return &family{name: name, help: help, typ: typ, label: label, desc: prometheus.NewDesc(name, help, labels, nil)}
}

// series places a status counter: a family and, for labelled families,
// the label value.
type series struct {
	f     *family
	value string
}

var (
	lost = newFamily("contid_lost_total",
		"Records, events or lines lost or not applied, by kind. The audit kinds (kernel, enobufs, gap, incomplete, late, "+
			"discontinuity, malformed) are also written as CONTID_LOSS records. kernel: the kernel's audit lost counter; "+
			"enobufs: audit socket overflows; gap: serials missing from the audit stream; incomplete: events ended by "+
			"timeout; late: records after their event was written; discontinuity: serial stream restarts; malformed: "+
			"records that did not parse; decode_error: netlink datagrams that did not decode; ring: task events the "+
			"eBPF ring buffer dropped; bad_event: task events that did not decode; connector_*: process-events "+
			"connector overflows, sequence gaps and bad datagrams; log_dropped: lines the host log refused; stream: events "+
			"the fleet stream's full spool dropped (also written as CONTID_LOSS kind=stream).",
		prometheus.CounterValue, "kind")
	written = newFamily("contid_audit_events_written_total",
		"Audit events written, by destination: host (audit.log), container (the container's own log, by routing), json (audit.json).",
		prometheus.CounterValue, "dest")
	writeErrors = newFamily("contid_write_errors_total",
		"Failed writes, by what was written: audit (event writes to the host, container or JSON log that failed, "+
			"and container logs that could not be opened), own (contid's own records the host log refused), log (failed write(2) calls of the logs, a full disk included), retire (dropped "+
			"containers' logs that could not be moved aside or removed), search_index (search index sidecars not written or logs not read: "+
			"searches scan those logs instead).",
		prometheus.CounterValue, "records")
	anomalies = newFamily("contid_engine_anomalies_total",
		"Task events the engine could not place as they came, by kind: unknown_parent (fork of a task never seen), "+
			"unknown_exit, unknown_join, evicted (a tid reused before its exit was seen), inherit_mismatch (the "+
			"kernel's inherited contid differs from the engine's), stale_ns (a namespace change first seen through a child).",
		prometheus.CounterValue, "kind")
	ownRecords = newFamily("contid_own_records_total",
		"contid's own records (CONTAINER_OP, NS_*, CONTID_LOSS, ...) while kernel audit is in use, by path: kernel "+
			"(sent into the kernel's audit stream), local (written to the host log directly instead).",
		prometheus.CounterValue, "path")

	tasks = newFamily("contid_tasks", "Tasks the engine tracks.", prometheus.GaugeValue, "")
	info  = prometheus.NewDesc("contid_info",
		"Always 1; the labels say where task events (source) and kernel audit records (audit) come from.",
		[]string{"source", "audit"}, nil)
	queueLen = newFamily("contid_queue_length",
		"Items waiting in an internal queue: task_events (batches from the task-event reader), audit_batches (batches of "+
			"kernel audit records), own_records (own records waiting to be sent into the kernel's audit stream).",
		prometheus.GaugeValue, "queue")
	packets = newFamily("contid_packet_records_total",
		"NETFILTER_PKT records, by how they were attributed: contained (the logging namespace is known and has containers: "+
			"a CONTAINER_ID lists them), uncontained (known, no container), unattributed (the namespace could not be "+
			"established exactly: no CONTAINER_ID is written).",
		prometheus.CounterValue, "attribution")
	packetPairs = newFamily("contid_packet_pairs_total",
		"Packet-to-namespace pairs from the netfilter programs that were not used as they should: missing (a record "+
			"without its pair), mismatch (a pair whose stamp disagreed), unused (a pair no record claimed), "+
			"not_local (a record of a plugin feed that may hold other hosts' records: no pair looked up), stack_overflow and ring_full (pairs the kernel side could not keep).",
		prometheus.CounterValue, "kind")
	netnsWatched = newFamily("contid_packet_netns_watched", "Network namespaces of live containers whose packet records are attributed.",
		prometheus.GaugeValue, "")
	logDiskFull = newFamily("contid_log_disk_full", "1 while a log (host, JSON or a container's) waits for disk space, else 0.",
		prometheus.GaugeValue, "")
	logQueued = newFamily("contid_log_queued_lines", "Lines the logs hold in memory while their disk is full (disk_full_queue).",
		prometheus.GaugeValue, "")
	fleetPending = newFamily("contid_fleet_pending_messages", "Messages in the fleet spool not yet acknowledged by the stream.",
		prometheus.GaugeValue, "")
	fleetSpoolBytes = newFamily("contid_fleet_spool_bytes", "Bytes the fleet spool holds on disk.", prometheus.GaugeValue, "")
	fleetHeldBytes  = newFamily("contid_fleet_held_bytes", "Bytes of host logs the fleet spool refers to for events not yet published (counted against spool_max).", prometheus.GaugeValue, "")
	fleetHeldFiles  = newFamily("contid_fleet_held_files", "Host log files the fleet spool keeps open for events not yet published.", prometheus.GaugeValue, "")
	fleetConnected  = newFamily("contid_fleet_connected", "1 while the fleet publisher is connected to a server, else 0.",
		prometheus.GaugeValue, "")
	queueCap = newFamily("contid_queue_capacity",
		"Capacity of an internal queue (see contid_queue_length).", prometheus.GaugeValue, "queue")
)

// single returns a one-series counter family.
func single(name, help string) series {
	return series{f: newFamily(name, help, prometheus.CounterValue, "")}
}

// counters maps every status counter to its series.
var counters = map[string]series{
	"ring_lost":             {lost, "ring"},
	"kernel_lost":           {lost, "kernel"},
	"audit_enobufs":         {lost, "enobufs"},
	"audit_gaps":            {lost, "gap"},
	"audit_incomplete":      {lost, "incomplete"},
	"audit_late":            {lost, "late"},
	"audit_discontinuities": {lost, "discontinuity"},
	"audit_malformed":       {lost, "malformed"},
	"audit_decode_errors":   {lost, "decode_error"},
	"bad_events":            {lost, "bad_event"},
	"connector_overflows":   {lost, "connector_overflow"},
	"connector_seq_gaps":    {lost, "connector_gap"},
	"connector_malformed":   {lost, "connector_malformed"},
	"log_dropped":           {lost, "log_dropped"},
	"log_dropped_disk_full": {lost, "disk_full"},
	"log_disk_full":         {f: logDiskFull},
	"log_queued":            {f: logQueued},
	"log_write_errors":      {writeErrors, "log"},

	"written_host":      {written, "host"},
	"written_container": {written, "container"},
	"written_json":      {written, "json"},

	"write_errors":  {writeErrors, "audit"},
	"record_errors": {writeErrors, "own"},

	"unknown_parent":   {anomalies, "unknown_parent"},
	"unknown_exit":     {anomalies, "unknown_exit"},
	"unknown_join":     {anomalies, "unknown_join"},
	"evicted":          {anomalies, "evicted"},
	"inherit_mismatch": {anomalies, "inherit_mismatch"},
	"stale_ns":         {anomalies, "stale_ns"},

	"own_sent":  {ownRecords, "kernel"},
	"own_local": {ownRecords, "local"},
	"records_written": single("contid_own_records_written_total",
		"Own records written to the host log directly (not through the kernel's audit stream), in any audit mode."),
	"own_queue_full": single("contid_own_queue_full_total",
		"Own records that found the queue to the kernel's audit stream full and were written to the host log directly."),
	"own_send_errors": single("contid_own_send_errors_total",
		"Own records the kernel's audit stream refused; they were written to the host log directly."),
	"loss_records": single("contid_loss_records_total", "CONTID_LOSS records emitted."),

	"engine_inputs":    single("contid_engine_inputs_total", "Inputs (task events, registrations, seeds) applied to the engine."),
	"seed_duplicates":  single("contid_seed_duplicates_total", "Fork events skipped because the start-up scan had already seen the child."),
	"syncs":            single("contid_syncs_total", "Barriers that applied every buffered task event before an API request or audit batch."),
	"inherit_failures": single("contid_inherit_failures_total", "New tasks whose parent had a contid but whose kernel task storage could not be created (should stay 0)."),

	"audit_batches":                single("contid_audit_batches_total", "Batches of kernel audit records processed."),
	"audit_received":               single("contid_audit_records_received_total", "Kernel audit records received."),
	"audit_events":                 single("contid_audit_events_total", "Audit events assembled and decided by the rules."),
	"audit_dropped_by_rule":        single("contid_audit_events_dropped_by_rule_total", "Audit events a filtering rule dropped (never written)."),
	"audit_contained":              single("contid_audit_events_contained_total", "Audit events whose subject is in a container (they carry CONTAINER_ID records)."),
	"audit_unknown_subject":        single("contid_audit_events_unknown_subject_total", "Audit events whose subject process the engine did not know."),
	"quota_refused":                single("contid_quota_refused_total", "Registrations refused (EDQUOT) because the orchestrator owns max_containers_per_owner live containers."),
	"container_logs_retired":       single("contid_container_logs_retired_total", "Logs of dropped containers closed and moved to containers/dropped/."),
	"container_logs_removed":       single("contid_container_logs_removed_total", "Dropped containers' logs removed by keep_dropped / keep_dropped_days."),
	"container_logs_retire_errors": {writeErrors, "retire"},
	"packets":                      {packets, "all"},
	"packets_contained":            {packets, "contained"},
	"packets_uncontained":          {packets, "uncontained"},
	"packets_unattributed":         {packets, "unattributed"},
	"packets_netns_watched":        {f: netnsWatched},
	"packets_pair_missing":         {packetPairs, "missing"},
	"packets_pair_mismatch":        {packetPairs, "mismatch"},
	"packets_pair_unused":          {packetPairs, "unused"},
	"packets_not_local":            {packetPairs, "not_local"},
	"packets_stack_overflow":       {packetPairs, "stack_overflow"},
	"packets_ring_full":            {packetPairs, "ring_full"},
	"search_index_lines":           single("contid_search_index_lines_total", "Host log lines the search index took in as they were written."),
	"search_index_sidecars":        single("contid_search_index_sidecars_total", "Search index sidecars written beside the host logs."),
	"search_index_errors":          {writeErrors, "search_index"},
	"search_index_files_skipped":   single("contid_search_index_files_skipped_total", "Host logs found without a sound sidecar and too much to read at once: left to the first search."),
	"fleet_spooled":                single("contid_fleet_events_spooled_total", "Events routed to the fleet stream and written to its spool."),
	"fleet_pending":                {f: fleetPending},
	"fleet_spool_bytes":            {f: fleetSpoolBytes},
	"fleet_dropped":                {lost, "stream"},
	"fleet_unreadable":             single("contid_fleet_events_unreadable_total", "Spooled events whose lines their host log no longer held as written (removed, truncated, changed): not published, counted in contid_lost_total{kind=\"stream\"}."),
	"fleet_held_bytes":             {f: fleetHeldBytes},
	"fleet_held_files":             {f: fleetHeldFiles},
	"fleet_published":              single("contid_fleet_events_published_total", "Events the fleet stream acknowledged."),
	"fleet_messages":               single("contid_fleet_messages_published_total", "Messages (one per container subject per batch) the fleet stream acknowledged."),
	"fleet_publish_errors":         single("contid_fleet_publish_errors_total", "Fleet publishes that failed and were retried from the spool."),
	"fleet_resyncs":                single("contid_fleet_resyncs_total", "Times the fleet publisher read the stream's last message to continue after it."),
	"fleet_registry_puts":          single("contid_fleet_registry_puts_total", "Container registry entries written to the fleet's key-value bucket."),
	"fleet_registry_errors":        single("contid_fleet_registry_errors_total", "Container registry writes that failed (retried while the servers are away)."),
	"fleet_connected":              {f: fleetConnected},
	"audit_forged":                 single("contid_audit_forged_total", "Records claiming to be contid's own that another process sent; kept but never trusted or routed."),
}

// Described reports whether the status counter key has a name of its own
// (else it is exported as contid_status_<key>).
func Described(key string) bool { _, ok := counters[key]; return ok }

// Series names the series a status counter is exported as, the way the
// text exposition writes it: contid_lost_total{kind="kernel"}.
func Series(key string) string {
	se, ok := counters[key]
	switch {
	case !ok:
		return "contid_status_" + sanitize(key)
	case se.f.label == "":
		return se.f.name
	}
	return se.f.name + "{" + se.f.label + "=\"" + se.value + "\"}"
}

// Collector is a prometheus.Collector over a Snapshot function.
type Collector struct {
	snap func() Snapshot
}

// NewCollector returns a Collector that calls snap once per scrape. snap
// must be safe to call from any goroutine.
func NewCollector(snap func() Snapshot) *Collector { return &Collector{snap: snap} }

// Describe sends nothing: the collector is "unchecked" because a status
// counter the table does not know is exported under a name made at
// scrape time. The golden test pins the names the table makes.
func (c *Collector) Describe(chan<- *prometheus.Desc) {}

// Collect takes one snapshot and sends its metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.snap()
	st := s.Status
	ch <- prometheus.MustNewConstMetric(info, prometheus.GaugeValue, 1, st.Source, orNone(st.Audit))
	ch <- prometheus.MustNewConstMetric(tasks.desc, prometheus.GaugeValue, float64(st.Tasks))
	for k, v := range st.Counters {
		se, ok := counters[k]
		if !ok {
			name := "contid_status_" + sanitize(k)
			d := prometheus.NewDesc(name, "Status counter "+k+" (no description yet).", nil, nil)
			ch <- prometheus.MustNewConstMetric(d, prometheus.UntypedValue, float64(v))
			continue
		}
		ch <- se.metric(float64(v))
	}
	for _, q := range s.Queues {
		ch <- series{queueLen, q.Name}.metric(float64(q.Len))
		ch <- series{queueCap, q.Name}.metric(float64(q.Cap))
	}
}

func (s series) metric(v float64) prometheus.Metric {
	if s.f.label == "" {
		return prometheus.MustNewConstMetric(s.f.desc, s.f.typ, v)
	}
	return prometheus.MustNewConstMetric(s.f.desc, s.f.typ, v, s.value)
}

// orNone names the audit source when kernel audit is not in use.
func orNone(s string) string {
	if s == "" {
		return "off"
	}
	return s
}

// sanitize keeps a metric name valid whatever the key holds.
func sanitize(k string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
			return r
		}
		return '_'
	}, k)
}
