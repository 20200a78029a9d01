package daemon

import (
	"io"
	"os"
	"strconv"

	"github.com/contid/contid/internal/netpkt"
	"github.com/contid/contid/internal/ns"
	"github.com/contid/contid/internal/procfs"
	"github.com/contid/contid/internal/provenance"
)

// packets attributes NETFILTER_PKT records to the containers of the
// network namespace that logged them (docs/packets.md): the probe pairs
// each record with that namespace; the namespaces of live containers are
// watched. Everything runs on the daemon's goroutine.
type packets struct {
	probe   *netpkt.Probe
	table   *netpkt.Table
	attr    netpkt.Attributor
	watched map[ns.ID]io.Closer
	failed  map[ns.ID]bool // could not be watched: not tried again while in use
}

// packetAttributor loads the pairing programs and returns the Attributor
// the pipeline uses: the engine alone when the records are not the
// kernel's own stream (mode primary) or the programs cannot load; packet
// records then carry no CONTAINER_ID.
func (d *Daemon) packetAttributor(mode string) provenance.Attributor {
	if mode != "primary" {
		return d.eng
	}
	p, err := netpkt.Load()
	if err != nil {
		d.log.Warn("packets: packet records will carry no CONTAINER_ID", "err", err)
		return d.eng
	}
	t := netpkt.NewTable(0)
	d.pk = &packets{probe: p, table: t, watched: map[ns.ID]io.Closer{}, failed: map[ns.ID]bool{},
		attr: netpkt.Attributor{Attributor: d.eng, Pairs: t, Nets: d.eng, Refresh: d.drainPairs}}
	return &d.pk.attr
}

// drainPairs moves the pairs the kernel wrote into the table; called
// before each batch of records, whose packet records' pairs were written
// before the records were queued to us.
func (d *Daemon) drainPairs() {
	if d.pk == nil {
		return
	}
	if err := d.pk.probe.Drain(d.pk.table.Add); err != nil {
		d.log.Warn("packets: pairs", "err", err)
	}
}

// watchPackets watches the network namespaces of live containers and
// stops watching those no container uses any more.
func (d *Daemon) watchPackets() {
	pk := d.pk
	if pk == nil {
		return
	}
	want := map[ns.ID]bool{}
	for _, c := range d.eng.Containers() {
		for _, id := range c.Netns {
			want[id] = true
		}
	}
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
	for _, ti := range d.eng.Tasks() {
		id := ti.NS[ns.Net]
		if !want[id] {
			continue
		}
		if _, ok := pk.watched[id]; ok || pk.failed[id] {
			continue
		}
		path := "/proc/" + strconv.Itoa(int(ti.TID)) + "/ns/net"
		f, err := os.Open(path)
		if err != nil {
			continue // gone; another member may do
		}
		// The task may have moved or died and its pid been reused: watch
		// only the namespace the engine means, checked on the open file.
		if got, err := procfs.ReadNSID("/proc/self/fd/" + strconv.Itoa(int(f.Fd()))); err != nil || got != id {
			f.Close()
			continue
		}
		w, err := pk.probe.Watch(f)
		f.Close()
		if err != nil {
			d.log.Warn("packets: cannot watch a container's network namespace; its packet records get no CONTAINER_ID", "netns", id, "err", err)
			pk.failed[id] = true
			continue
		}
		pk.attr.NsDev = id.Dev
		pk.watched[id] = w
	}
}

// closePackets detaches everything.
func (d *Daemon) closePackets() {
	if d.pk == nil {
		return
	}
	for _, w := range d.pk.watched {
		w.Close()
	}
	d.pk.probe.Close()
	d.pk = nil
}

// packetStats is what status shows of the packet attribution, taken on
// the daemon's goroutine.
type packetStats struct {
	on                 bool
	watched            uint64
	pairs              netpkt.TableStats
	overflow, ringFull uint64
}

func (d *Daemon) packetStats() packetStats {
	pk := d.pk
	if pk == nil {
		return packetStats{}
	}
	st := packetStats{on: true, watched: uint64(len(pk.watched)), pairs: pk.table.Stats()}
	st.overflow, st.ringFull, _ = pk.probe.Counters()
	return st
}

// packetCounters adds the packet counters to status: how many packet
// records got a CONTAINER_ID, how many had a namespace without
// containers, and how many could not be placed exactly (no CONTAINER_ID,
// no guess), with the reasons the pairing side knows.
func packetCounters(c map[string]uint64, p provenance.PacketStats, st packetStats) {
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
	c["packets_stack_overflow"] = st.overflow
	c["packets_ring_full"] = st.ringFull
}
