package provenance

import (
	"strconv"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/records"
)

// PacketAttributor is what an Attributor also implements when it knows
// where packet records were logged (see docs/packets.md).
type PacketAttributor interface {
	// PacketChains returns the chains of the live containers with a task in
	// the network namespace where the NETFILTER_PKT record with this stamp
	// was logged, newest first; known is false when that namespace is not
	// known exactly (then no CONTAINER_ID is written).
	PacketChains(node string, stamp records.Stamp) (chains []contid.Chain, known bool)
}

// PacketStats counts the packet records seen.
type PacketStats struct {
	Packets     uint64 // NETFILTER_PKT records
	Contained   uint64 // … whose namespace has containers: a CONTAINER_ID each
	Uncontained uint64 // … whose namespace is known and has none
	Unknown     uint64 // … whose namespace is not known exactly
}

// packet adds the CONTAINER_ID of the NETFILTER_PKT record just appended
// to an.out: one record listing every container of its namespace.
func (an *Annotator) packet(r *records.Record) {
	an.pstats.Packets++
	pa, ok := an.a.(PacketAttributor)
	if !ok {
		an.pstats.Unknown++
		return
	}
	chains, known := pa.PacketChains(r.Node, r.Stamp)
	switch {
	case !known:
		an.pstats.Unknown++
		return
	case len(chains) == 0:
		an.pstats.Uncontained++
		return
	}
	an.pstats.Contained++
	n := len(an.chains)
	an.chains = append(an.chains, chains...)
	an.pkt = an.chains[n:len(an.chains):len(an.chains)]
	an.buf = an.buf[:0]
	for i, c := range chains {
		if i > 0 {
			an.buf = append(an.buf, ',')
		}
		an.buf = c.Append(an.buf)
	}
	an.out = append(an.out, records.Record{
		Node: r.Node, Type: records.ContainerID, Stamp: r.Stamp,
		Fields: []records.Field{
			{Key: "record", Value: strconv.Itoa(len(an.out))},
			{Key: "contid", Value: string(an.buf)},
		},
	})
}

// PacketStats returns the packet counters.
func (an *Annotator) PacketStats() PacketStats { return an.pstats }
