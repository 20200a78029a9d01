package fleet

import (
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/pipeline"
	"github.com/contid/contid/internal/pipeline/rules"
	"github.com/contid/contid/internal/records"
	"github.com/contid/contid/internal/sink/search"
)

// genLog writes n events of a host as the host log holds them: syscall
// events of random containers (nested up to 4 deep) or of the host, some
// with a second chain (a signal to another container's process), and
// CONTAINER_OP records of contid's own.
func genLog(r *rand.Rand, from, n int, sec0 int64) string {
	var b strings.Builder
	chains := []contid.Chain{{1}, {2}, {5, 1}, {6, 5, 1}, {9, 6, 5, 1}, {12, 2}, {3}}
	for i := from; i < from+n; i++ {
		sec := sec0 + int64(i/50)
		stamp := fmt.Sprintf("msg=audit(%d.%03d:%d)", sec, i%1000, 1000+i)
		pid := 100 + r.IntN(50)
		switch k := r.IntN(10); {
		case k == 0:
			c := chains[r.IntN(len(chains))]
			fmt.Fprintf(&b, "type=UNKNOWN[2900] %s: op=set opid=%d contid=%d old-contid=%s pid=1 uid=0 auid=0 ses=1 comm=\"runc\" exe=\"/usr/bin/runc\" res=success\n", stamp, pid, c[0], oldChain(c))
		default:
			key := []string{"exec", "net", "file"}[r.IntN(3)]
			fmt.Fprintf(&b, "type=SYSCALL %s: arch=c000003e syscall=%d success=%s exit=0 a0=1 a1=2 a2=3 a3=0 items=0 ppid=1 pid=%d auid=%d uid=%d gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=1 comm=\"sh\" exe=\"/bin/sh\" key=\"%s\"\n",
				stamp, []int{59, 62, 2}[r.IntN(3)], []string{"yes", "no"}[r.IntN(2)], pid, r.IntN(3)*1000, r.IntN(3), key)
			if k > 3 {
				c := chains[r.IntN(len(chains))]
				list := c.String()
				if k == 9 { // a second chain: the target of the event
					list += "," + chains[r.IntN(len(chains))].String()
				}
				fmt.Fprintf(&b, "type=UNKNOWN[2901] %s: record=1 contid=%s\n", stamp, list)
			}
			fmt.Fprintf(&b, "type=EOE %s:\n", stamp)
		}
	}
	return b.String()
}

func oldChain(c contid.Chain) string {
	if len(c) == 1 {
		return "-1"
	}
	return c[1:].String()
}

// replay groups a log's lines into events as the local search does and
// hands each, with its records, to w: a host log replayed into the
// stream.
func replay(log string, w interface{ Write(*pipeline.Event) }) int {
	g := search.NewGrouper(nil)
	var off int64
	n := 0
	emit := func() {
		for {
			ev, ok := g.Next()
			if !ok {
				return
			}
			var recs []records.Record
			for _, l := range ev.Lines {
				r, err := records.ParseLine(strings.TrimSuffix(l, "\n"))
				if err != nil {
					panic(err)
				}
				recs = append(recs, r)
			}
			w.Write(&pipeline.Event{Records: recs, Routes: rules.Routes{Dest: rules.Host}})
			n++
		}
	}
	for _, l := range strings.SplitAfter(log, "\n") {
		if l == "" {
			continue
		}
		g.Add(off, l)
		off += int64(len(l))
		emit()
	}
	g.Flush()
	emit()
	return n
}
