package netpkt

import "testing"

func TestAuditHooks(t *testing.T) {
	for _, tc := range []struct {
		name   string
		chains []chain
		want   string
	}{
		{"none", nil, ""},
		{"no audit rule", []chain{{famIPv4, "filter", 1, false}}, ""},
		{"iptables INPUT", []chain{{famIPv4, "filter", 1, true}, {famIPv4, "filter", 3, false}}, "ipv4/input"},
		{"ip6tables OUTPUT", []chain{{famIPv6, "filter", 3, true}}, "ipv6/output"},
		{"inet both families", []chain{{famInet, "pk", 0, true}}, "ipv4/prerouting,ipv6/prerouting"},
		{"regular chain: every base chain of its table", []chain{
			{famIPv4, "filter", 1, false}, {famIPv4, "filter", 2, false}, {famIPv4, "filter", -1, true},
			{famIPv4, "nat", 4, false}, {famIPv6, "filter", 3, false},
		}, "ipv4/input,ipv4/forward"},
		{"regular chain of a table without base chains", []chain{{famIPv4, "t", -1, true}}, ""},
		{"bridge and netdev: no link", []chain{{7, "br", 1, true}, {5, "nd", 0, true}}, ""},
		{"inet ingress: no link", []chain{{famInet, "i", 5, true}}, ""},
	} {
		if got := auditHooks(tc.chains).String(); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	if got := AllHooks.String(); got != "ipv4/prerouting,ipv4/input,ipv4/forward,ipv4/output,ipv4/postrouting,ipv6/prerouting,ipv6/input,ipv6/forward,ipv6/output,ipv6/postrouting" {
		t.Errorf("AllHooks: %s", got)
	}
}
