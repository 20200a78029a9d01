package netpkt

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/contid/contid/internal/ns"
	"github.com/contid/contid/internal/pipeline/provenance"
	"github.com/contid/contid/internal/records"
	"github.com/contid/contid/internal/source/auditd"
	"github.com/contid/contid/internal/source/procfs"
	"github.com/contid/contid/internal/source/taskevent"
)

// Packets attributes NETFILTER_PKT records to the containers of the
// network namespace that logged them (docs/packets.md): the probe pairs
// each record with that namespace; the namespaces of live containers are
// watched, each at the hooks where it has audit packet rules.
// Everything runs on the core goroutine but reading rules: a
// namespace's ruleset is as large as its owner (a container's root) makes
// it, so rules are read, and hooks attached, by a goroutine of their own
// (rechecker), never holding up records. A nil *Packets does nothing.
type Packets struct {
	log     *slog.Logger
	live    Live
	probe   *Probe
	table   *Table
	attr    Attributor
	watched map[ns.ID]*Watch
	failed  map[ns.ID]bool // could not be watched: not tried again while in use
	// nets: a task event may have given a container a namespace.
	nets bool
	// rules: the kernel reported a table change (NETFILTER_CFG) that no
	// recheck has followed yet; lastCheck is when rules were last read.
	rules     bool
	lastCheck time.Time
	// overflow, ringFull: the probe's kernel counters as last read, at a
	// tick (two system calls: not at every batch's Stats).
	overflow, ringFull uint64
	// feed: in mode plugin, the auditd whose feed is read; local: it held
	// no TCP socket after the last batch with a packet record was read, so
	// that batch's records are this host's (internal/source/auditd); remote: it
	// has held one since contid started.
	feed       *auditd.Prober
	local      bool
	remote     bool
	feedLogged bool

	pendMu sync.Mutex
	pend   map[*Watch]bool // to recheck
	wake   chan struct{}   // the rechecker; closed at the end
	done   chan struct{}   // the rechecker ended
}

// recheckEvery bounds how often table changes make the watched
// namespaces' rules be read again: the first change after a quiet period
// is read at once, later ones of a burst at the first tick past the
// period. Until then a record logged at a new hook pairs with no namespace
// (counted), never a wrong one. The bound keeps a container that changes
// its own namespace's rules in a loop from making contid read them in one.
const recheckEvery = time.Second

// netfilterCfg is the NETFILTER_CFG record type.
const netfilterCfg = 1325

// Live is what packet attribution needs of the engine.
type Live interface {
	provenance.Attributor
	Netns
	// ContainerNets returns the network namespaces live containers use.
	ContainerNets() map[ns.ID]bool
	// NetMembers calls f with the live tasks in the namespaces of want,
	// until f returns false.
	NetMembers(want map[ns.ID]bool, f func(tid int32, id ns.ID) bool)
}

// NewPackets loads the pairing programs and returns the Attributor the
// pipeline uses: live alone, and a nil *Packets, when the programs cannot
// load, or in mode plugin when the feed is not auditd's; packet records
// then carry no CONTAINER_ID. Modes primary and listener read this
// kernel's own stream; a plugin's feed may also hold other hosts' records,
// so there a record is paired only while auditd provably receives none
// (Batch).
func NewPackets(mode string, live Live, log *slog.Logger) (provenance.Attributor, *Packets) {
	var feed *auditd.Prober
	switch mode {
	case "primary", "listener":
	case "plugin":
		var err error
		if feed, err = auditd.Parent(); err != nil {
			log.Warn("packets: cannot tell whether the plugin feed holds only this host's records; packet records will carry no CONTAINER_ID", "err", err)
			return live, nil
		}
	default:
		return live, nil
	}
	p, err := Load()
	if err != nil {
		log.Warn("packets: packet records will carry no CONTAINER_ID", "err", err)
		return live, nil
	}
	t := NewTable(0)
	pk := &Packets{log: log, live: live, probe: p, table: t, watched: map[ns.ID]*Watch{}, failed: map[ns.ID]bool{},
		pend: map[*Watch]bool{}, wake: make(chan struct{}, 1), done: make(chan struct{}), feed: feed}
	pk.attr = Attributor{Attributor: live, Pairs: t, Nets: live, Refresh: pk.drainPairs}
	if feed != nil {
		pk.attr.Local = func(string) bool { return pk.local }
	}
	go pk.rechecker(log)
	return &pk.attr, pk
}

// recheck has the rechecker read the rules of these watches again.
func (pk *Packets) recheck(ws ...*Watch) {
	pk.pendMu.Lock()
	for _, w := range ws {
		pk.pend[w] = true
	}
	pk.pendMu.Unlock()
	select {
	case pk.wake <- struct{}{}:
	default: // already woken; it takes every pending watch
	}
}

// rechecker reads rules and attaches hooks until wake is closed. Each
// watch's first failure is logged; a watch closed meanwhile is skipped.
func (pk *Packets) rechecker(log *slog.Logger) {
	defer close(pk.done)
	logged := map[*Watch]bool{}
	for range pk.wake {
		pk.pendMu.Lock()
		ws := pk.pend
		pk.pend = map[*Watch]bool{}
		pk.pendMu.Unlock()
		for w := range ws {
			err := w.Recheck()
			switch {
			case errors.Is(err, ErrClosed):
				delete(logged, w)
			case err != nil && !logged[w]:
				logged[w] = true
				log.Warn("packets: a container namespace's rules or hooks; its records may go unpaired (no CONTAINER_ID)", "err", err)
			case err == nil:
				delete(logged, w)
			}
		}
	}
}

// Event notes a task event that can give a container a network
// namespace (a setns or unshare, a move into a container, a clone into a
// new namespace): the namespace is watched when the events applied with
// it are (AfterEvents), not at the next tick.
func (pk *Packets) Event(ev taskevent.Event) {
	if pk == nil {
		return
	}
	switch {
	case ev.Kind == taskevent.KindNS, ev.Kind == taskevent.KindJoin,
		ev.Kind == taskevent.KindFork && ev.CloneFlags&unix.CLONE_NEWNET != 0:
		pk.nets = true
	}
}

// AfterEvents watches the namespaces events gave containers.
func (pk *Packets) AfterEvents() {
	if pk != nil && pk.nets {
		pk.Tick()
	}
}

// Batch runs before each batch of records: it moves the pairs the
// kernel wrote into the table and, when the batch reports a table change
// (NETFILTER_CFG, emitted for every change in any namespace), reads the
// watched namespaces' rules again. In mode plugin, a batch with a packet
// record asks whether auditd holds a TCP socket, after the batch was read:
// without one, auditd received nothing from another host and every record
// of the batch is this host's (a packet event ends within its batch).
func (pk *Packets) Batch(b []records.Raw) {
	if pk == nil {
		return
	}
	pk.AfterEvents()
	pkt := false
	for _, m := range b {
		if m.Type == netfilterCfg || m.Type == 0 && bytes.Contains(m.Data, []byte("type=NETFILTER_CFG ")) {
			pk.rules = true
		}
		if m.Type == 0 && bytes.Contains(m.Data, []byte("type=NETFILTER_PKT ")) {
			pkt = true
		}
	}
	if pk.feed != nil && pkt && !pk.remote {
		local, err := pk.feed.LocalOnly()
		pk.local = local && err == nil
		switch {
		case err != nil && !pk.feedLogged:
			pk.log.Warn("packets: cannot tell whether auditd receives other hosts' records; its packet records get no CONTAINER_ID", "err", err)
			pk.feedLogged = true
		case err == nil && !local:
			// For good: records received before auditd closes its socket
			// may still be on their way.
			pk.remote = true
			pk.log.Warn("packets: auditd holds a TCP socket (remote logging): its feed may hold other hosts' records, whose node names prove nothing; packet records get no CONTAINER_ID until contid restarts", "auditd_pid", pk.feed.Pid())
		case pk.local:
			pk.feedLogged = false
		}
	}
	if pk.rules && time.Since(pk.lastCheck) >= recheckEvery {
		pk.recheckRules()
	}
	pk.drainPairs()
}

// recheckRules has the rules of every watched namespace read again.
func (pk *Packets) recheckRules() {
	pk.rules = false
	pk.lastCheck = time.Now()
	ws := make([]*Watch, 0, len(pk.watched))
	for _, w := range pk.watched {
		ws = append(ws, w)
	}
	pk.recheck(ws...)
}

// drainPairs moves the pairs the kernel wrote into the table; called
// before each batch of records, whose packet records' pairs were written
// before the records were queued to us.
func (pk *Packets) drainPairs() {
	if pk == nil {
		return
	}
	if err := pk.probe.Drain(pk.table.Add); err != nil {
		pk.log.Warn("packets: pairs", "err", err)
	}
}

// Tick watches the network namespaces of live containers and stops
// watching those no container uses any more.
func (pk *Packets) Tick() {
	if pk == nil {
		return
	}
	pk.nets = false
	if o, r, err := pk.probe.Counters(); err == nil {
		pk.overflow, pk.ringFull = o, r
	}
	if pk.rules && time.Since(pk.lastCheck) >= recheckEvery {
		pk.recheckRules()
	}
	want := pk.live.ContainerNets()
	for id, w := range pk.watched {
		if !want[id] {
			w.Close()
			delete(pk.watched, id)
		}
	}
	for id := range pk.failed {
		if !want[id] {
			delete(pk.failed, id)
		}
	}
	missing := 0
	for id := range want {
		if _, ok := pk.watched[id]; !ok && !pk.failed[id] {
			missing++
		}
	}
	if missing == 0 {
		return
	}
	pk.live.NetMembers(want, func(tid int32, id ns.ID) bool {
		if _, ok := pk.watched[id]; ok || pk.failed[id] {
			return true
		}
		path := "/proc/" + strconv.Itoa(int(tid)) + "/ns/net"
		f, err := os.Open(path)
		if err != nil {
			return true // gone; another member may do
		}
		// The task may have moved or died and its pid been reused: watch
		// only the namespace the engine means, checked on the open file.
		if got, err := procfs.ReadNSID("/proc/self/fd/" + strconv.Itoa(int(f.Fd()))); err != nil || got != id {
			f.Close()
			return true
		}
		w, err := pk.probe.Watch(f)
		f.Close()
		if err != nil {
			pk.log.Warn("packets: cannot watch a container's network namespace; its packet records get no CONTAINER_ID", "netns", id, "err", err)
			pk.failed[id] = true
			return true
		}
		pk.attr.NsDev = id.Dev
		pk.watched[id] = w
		pk.recheck(w)
		return true
	})
}

// Close detaches everything.
func (pk *Packets) Close() {
	if pk == nil {
		return
	}
	close(pk.wake)
	<-pk.done
	for _, w := range pk.watched {
		w.Close()
	}
	pk.probe.Close()
}

// PacketsStats is what status shows of the packet attribution, taken on
// the core goroutine.
type PacketsStats struct {
	on                 bool
	watched            uint64
	pairs              TableStats
	overflow, ringFull uint64
}

// Stats reads the counters (the kernel's as of the last Tick); core
// goroutine only.
func (pk *Packets) Stats() PacketsStats {
	if pk == nil {
		return PacketsStats{}
	}
	return PacketsStats{on: true, watched: uint64(len(pk.watched)), pairs: pk.table.Stats(), overflow: pk.overflow, ringFull: pk.ringFull}
}

// Counters adds the packet counters to status: how many packet
// records got a CONTAINER_ID, how many had a namespace without
// containers, and how many could not be placed exactly (no CONTAINER_ID,
// no guess), with the reasons the pairing side knows.
func Counters(c map[string]uint64, p provenance.PacketStats, st PacketsStats) {
	c["packets"] = p.Packets
	c["packets_contained"] = p.Contained
	c["packets_uncontained"] = p.Uncontained
	c["packets_unattributed"] = p.Unknown
	if !st.on {
		return
	}
	c["packets_netns_watched"] = st.watched
	c["packets_pair_missing"] = st.pairs.Missing
	c["packets_pair_mismatch"] = st.pairs.Mismatch
	c["packets_pair_unused"] = st.pairs.Evicted
	c["packets_not_local"] = st.pairs.NotLocal
	c["packets_stack_overflow"] = st.overflow
	c["packets_ring_full"] = st.ringFull
}
