package provenance

import (
	"strings"
	"testing"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/records"
	"github.com/contid/contid/internal/testing/pipelinetest"
)

// netFake also places packet records: by serial, a list of chains; a
// serial not listed is a record whose namespace is unknown.
type netFake struct {
	pipelinetest.Table
	pkts map[uint64][]contid.Chain
}

func (f netFake) PacketChains(node string, s records.Stamp) ([]contid.Chain, bool) {
	c, ok := f.pkts[s.Serial]
	return c, ok
}

func pktEvent(t *testing.T, serial string) []records.Record {
	t.Helper()
	r, err := records.ParseLine("type=NETFILTER_PKT msg=audit(1796356643.694:" + serial + "): mark=0x2a saddr=127.0.0.1 daddr=127.0.0.1 proto=1")
	if err != nil {
		t.Fatal(err)
	}
	return []records.Record{r}
}

func TestPacket(t *testing.T) {
	a := netFake{Table: world, pkts: map[uint64][]contid.Chain{
		10: {{5, 2}, {4, 2}}, // two containers in the namespace, newest first
		11: {},               // a namespace without containers
	}}
	tests := []struct {
		serial string
		want   string // the CONTAINER_ID line, "" for none
		chains int
	}{
		{"10", "type=UNKNOWN[2901] msg=audit(1796356643.694:10): record=1 contid=5,^2,4,^2", 2},
		{"11", "", 0},
		{"12", "", 0},
	}
	an := New(a)
	for _, tc := range tests {
		out, chains := an.Annotate(pktEvent(t, tc.serial))
		got := ""
		if len(out) > 1 {
			got = string(records.AppendRaw(nil, &out[1]))
		}
		if got != tc.want || len(chains) != tc.chains || len(out) > 2 || len(an.Packet()) != tc.chains {
			t.Errorf("serial %s: got %q (%d records, %d chains, packet's %v), want %q, %d chains", tc.serial, got, len(out), len(chains), an.Packet(), tc.want, tc.chains)
		}
		if !strings.HasPrefix(string(records.AppendRaw(nil, &out[0])), "type=NETFILTER_PKT") {
			t.Errorf("serial %s: the packet record is not first: %v", tc.serial, out)
		}
	}
	if got, want := an.PacketStats(), (PacketStats{Packets: 3, Contained: 1, Uncontained: 1, Unknown: 1}); got != want {
		t.Errorf("stats %+v, want %+v", got, want)
	}

	// An Attributor that cannot place packets: every packet record unknown.
	an = New(world)
	if out, _ := an.Annotate(pktEvent(t, "10")); len(out) != 1 {
		t.Errorf("a CONTAINER_ID without a packet attributor: %v", out)
	}
	if got := an.PacketStats(); got.Unknown != 1 {
		t.Errorf("stats %+v, want one unknown", got)
	}
}
