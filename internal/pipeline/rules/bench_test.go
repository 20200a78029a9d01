package rules

import (
	"testing"

	"github.com/contid/contid/internal/contid"
)

// benchRules are 20 rules of the kinds a host has, none of which matches
// the benchmark's event until the last, so Decide tries them all.
const benchRules = `
-a drop -F contid=42 -F exe=/usr/bin/curl
-a drop -F contid=43 -F exe=/usr/bin/wget
-a keep,host -F type=CONTAINER_OP
-a keep,host -F type=SET_CAPCONTID
-a keep,host,container,stream=ct7 -F contid=7
-a keep,host,container,stream=ct8 -F contid=8
-a keep,host,container,stream=fleet -F key=shadow
-a keep,host,container,stream=fleet -F key=sudoers
-a drop -F contid!=none -F syscall=openat -F auid>=1000 -F auid!=unset -F key=proc
-a drop -F contid=100 -F type=AVC
-a drop -F pid=1 -F syscall=wait4
-a drop -F uid=33 -F exe=/usr/sbin/nginx -F key=net
-a keep,host -F auid<1000 -F key=admin
-a drop -F contid=200 -F contid!=201
-a keep,stream=audit -F exe=/usr/bin/passwd
-a keep,stream=audit -F exe=/usr/bin/chsh
-a drop -F type=PROCTITLE -F type!=SYSCALL
-a drop -F syscall=59 -F uid=65534
-a keep,host -F contid=none
-a keep,host,container -F contid=1
`

// BenchmarkDecide: one event (4 records, two chains of depth 3 and 1, a
// key) against 20 rules; ns/op is ns per event.
func BenchmarkDecide(b *testing.B) {
	set := mustParse(b, benchRules)
	if set.Len() != 20 {
		b.Fatalf("%d rules", set.Len())
	}
	v := syscallView(contid.Chain{9, 5, 1}, contid.Chain{12})
	if d := set.Decide(v); d.Rule != 19 {
		b.Fatalf("rule %d matched", d.Rule)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		set.Decide(v)
	}
}
