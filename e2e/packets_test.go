package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/contid/contid/internal/records"
)

// TestAuditPacketArrivalOrder: a NETFILTER_PKT record, which the kernel
// writes as an event of its own, is written when it arrives: before a user
// record the kernel queued after it, not after the reassembly timeout.
func TestAuditPacketArrivalOrder(t *testing.T) {
	d := startAudit(t, "-a always,exit -F arch=b64 -S kill -F key=contid-e2e-pkt\n")
	ns := fmt.Sprintf("contid-e2e-pkt%d", os.Getpid())
	_, errOut, code := d.sh(`set -e
ip netns add ` + ns + `
trap 'ip netns del ` + ns + `' EXIT
ip -n ` + ns + ` link set lo up
ip netns exec ` + ns + ` iptables -I INPUT -i lo -p icmp --icmp-type echo-request -j AUDIT --type accept
ip netns exec ` + ns + ` busybox ping -c 1 -q 127.0.0.1 >/dev/null
auditctl -m contid-e2e-after-packet
`)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	pkt, marker := -1, -1
	waitFor(t, func() bool {
		pkt, marker = -1, -1
		for i, r := range d.logRecords() {
			switch {
			case r.Type == records.NetfilterPkt && pkt < 0:
				pkt = i
			case r.Type == 1005 && strings.Contains(r.Raw, "contid-e2e-after-packet"):
				marker = i
			}
		}
		return marker >= 0
	}, "the user record sent after the packet")
	if pkt < 0 || pkt > marker {
		b, _ := os.ReadFile(d.dir + "/audit.log")
		t.Fatalf("NETFILTER_PKT at line %d, the user record sent after it at %d; want the packet first\n%s", pkt, marker, b)
	}
}
