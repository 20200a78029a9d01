package engine

import (
	"runtime"
	"strconv"
	"testing"

	"github.com/contid/contid/internal/ns"
)

// population builds an engine with 1,000 containers (each registered by the
// root shell, half of them in their own network namespace) and 10,000 live
// tasks in all.
func population(tb testing.TB, conts, tasks int) (*Engine, []int32) {
	tb.Helper()
	e := New(Config{})
	var host ns.Set
	host[ns.Net], host[ns.Mnt] = hostNet, hostMnt
	if err := e.SeedTask(SeedTask{PID: 1, TGID: 1, Start: 1, NS: host}); err != nil {
		tb.Fatal(err)
	}
	if err := e.SeedTask(SeedTask{PID: 100, TGID: 100, PPID: 1, Start: 2, NS: host}); err != nil {
		tb.Fatal(err)
	}
	now := int64(1)
	next := int32(1000)
	inits := make([]int32, 0, conts)
	for i := 0; i < conts; i++ {
		next++
		now++
		f := Fork{Time: now, Parent: 100, Child: next, ChildTGID: next, Start: uint64(now)}
		if i%2 == 0 {
			f.NS[ns.Net] = ns.ID{Dev: 4, Ino: uint32(4026540000 + i), Unique: uint64(100 + i)}
		}
		e.Fork(f)
		if _, err := e.SetContid(SetContid{Time: now, Caller: TaskRef{PID: 100, Start: 2}, CallerCap: true, Target: next, Value: strconv.Itoa(i + 1)}); err != nil {
			tb.Fatal(err)
		}
		inits = append(inits, next)
	}
	for len(e.idx) < tasks {
		next++
		now++
		e.Fork(Fork{Time: now, Parent: inits[int(next)%conts], Child: next, ChildTGID: next, Start: uint64(now)})
	}
	return e, inits
}

// BenchmarkForkExitChurn applies fork+exit pairs in containers with 10k
// live tasks and 1k containers; it reports events/s and allocs per event.
func BenchmarkForkExitChurn(b *testing.B) {
	e, inits := population(b, 1000, 10000)
	const base = 40000
	// Warm the free lists and map so the loop measures steady state.
	for i := 0; i < 2048; i++ {
		e.Fork(Fork{Time: 1, Parent: inits[i%len(inits)], Child: base + int32(i%1024), ChildTGID: base + int32(i%1024), Start: 7})
		e.Exit(Exit{Time: 1, PID: base + int32(i%1024)})
	}
	recs := e.Stats().Records
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tid := base + int32(i%1024)
		e.Fork(Fork{Time: int64(i), Parent: inits[i%len(inits)], Child: tid, ChildTGID: tid, Start: uint64(i)})
		e.Exit(Exit{Time: int64(i), PID: tid})
	}
	b.StopTimer()
	b.ReportMetric(float64(2*b.N)/b.Elapsed().Seconds(), "events/s")
	if got := e.Stats().Records; got != recs {
		b.Fatalf("churn wrote %d records", got-recs)
	}
}

// BenchmarkBytesPerTask reports the heap held per tracked task.
func BenchmarkBytesPerTask(b *testing.B) {
	const n = 100000
	for i := 0; i < b.N; i++ {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		e, _ := population(b, 1000, n)
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/task")
		runtime.KeepAlive(e)
	}
}

// BenchmarkAttribute looks up the chain of live and exited processes at a
// record's time, as the audit pipeline does for every record.
func BenchmarkAttribute(b *testing.B) {
	e, inits := population(b, 1000, 10000)
	// 20,000 exited processes in history.
	for i := 0; i < 20000; i++ {
		tid := int32(40000 + i)
		e.Fork(Fork{Time: int64(i), Parent: inits[i%len(inits)], Child: tid, ChildTGID: tid, Start: uint64(i)})
		e.Exit(Exit{Time: int64(i) + 5, PID: tid})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		pid := int32(40000 + i%20000)
		if i%2 == 0 {
			pid = inits[i%len(inits)]
		}
		if _, ok := e.Attribute(pid, int64(i%20000)+2, 0); !ok {
			b.Fatalf("pid %d not attributed", pid)
		}
	}
}
