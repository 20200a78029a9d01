package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/contid/contid/internal/surface/api"
)

// BenchmarkRegistration times 1,000 `contid exec --contid N -- true` against
// 1,000 runs of `true` alone, side by side in one run, and 1,000 API
// registrations of a held process: p50/p99 of each. The first is what a
// new container costs a caller end to end (two process starts, the API
// round trip, kernel tagging, exec); the last is the registration itself.
//
//	go test -run x -bench Registration -benchtime 1x ./e2e
func BenchmarkRegistration(b *testing.B) {
	d := startDaemon(b, "")
	const n = 1000
	for i := 0; i < b.N; i++ {
		var with, without []time.Duration
		for j := 0; j < n; j++ {
			start := time.Now()
			if err := exec.Command("true").Run(); err != nil {
				b.Fatal(err)
			}
			without = append(without, time.Since(start))
			start = time.Now()
			cmd := exec.Command(contidBin, "exec", "--contid", strconv.Itoa(1_000_000+i*n+j), "--", "true")
			cmd.Env = append(cmd.Environ(), "CONTID_SOCKET="+d.socket)
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("%v: %s", err, out)
			}
			with = append(with, time.Since(start))
		}
		p := func(ds []time.Duration, q float64) time.Duration {
			slices.Sort(ds)
			return ds[int(q*float64(len(ds)-1))]
		}
		// The registration alone: the API round trip that checks, tags every
		// thread in the kernel and commits, on a process held by the test.
		var reg []time.Duration
		cl := api.NewClient(d.socket)
		for j := 0; j < n; j++ {
			held := exec.Command("sleep", "60")
			if err := held.Start(); err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			_, err := cl.SetContid(context.Background(), api.SetRequest{PID: int32(held.Process.Pid), Contid: strconv.Itoa(2_000_000 + i*n + j)})
			reg = append(reg, time.Since(start))
			held.Process.Kill()
			held.Wait()
			if err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(p(reg, 0.5).Microseconds()), "set-p50-µs")
		b.ReportMetric(float64(p(reg, 0.99).Microseconds()), "set-p99-µs")
		fmt.Printf("API registration: p50 %v p99 %v\n", p(reg, 0.5), p(reg, 0.99))
		b.ReportMetric(float64(p(with, 0.5).Microseconds()), "exec-p50-µs")
		b.ReportMetric(float64(p(with, 0.99).Microseconds()), "exec-p99-µs")
		b.ReportMetric(float64(p(without, 0.5).Microseconds()), "baseline-p50-µs")
		b.ReportMetric(float64(p(without, 0.99).Microseconds()), "baseline-p99-µs")
		fmt.Printf("contid exec -- true: p50 %v p99 %v; true alone: p50 %v p99 %v; ratio p50 %.1fx\n",
			p(with, 0.5), p(with, 0.99), p(without, 0.5), p(without, 0.99), float64(p(with, 0.5))/float64(p(without, 0.5)))
	}
}

// BenchmarkRuncHook runs a busybox container (`true`) with runc 20 times
// with contid's hook and 20 times without, interleaved, and reports the
// medians and what the hook adds.
//
//	go test -run x -bench RuncHook -benchtime 1x ./e2e
func BenchmarkRuncHook(b *testing.B) {
	d := startDaemon(b, "")
	with := bundle(b, d, "true", nil)
	without := bundle(b, d, "true", nil)
	stripHooks(b, without)
	const n = 20
	for i := 0; i < b.N; i++ {
		var tw, to []time.Duration
		for j := 0; j < n; j++ {
			for _, c := range []struct {
				dir string
				ts  *[]time.Duration
			}{{with, &tw}, {without, &to}} {
				id := fmt.Sprintf("contid-bench-%d-%d", os.Getpid(), j)
				start := time.Now()
				if out, err := exec.Command("runc", "run", "--bundle", c.dir, id).CombinedOutput(); err != nil {
					b.Fatalf("runc run: %v\n%s", err, out)
				}
				*c.ts = append(*c.ts, time.Since(start))
				exec.Command("runc", "delete", "-f", id).Run()
			}
		}
		slices.Sort(tw)
		slices.Sort(to)
		mw, mo := tw[n/2], to[n/2]
		b.ReportMetric(float64(mw.Microseconds()), "with-hook-median-µs")
		b.ReportMetric(float64(mo.Microseconds()), "without-median-µs")
		fmt.Printf("runc run (busybox true), median of %d: with hook %v, without %v: +%v (%.2fx)\n", n, mw, mo, mw-mo, float64(mw)/float64(mo))
	}
}

func stripHooks(b *testing.B, dir string) {
	editJSON(b, filepath.Join(dir, "config.json"), func(cfg map[string]any) { delete(cfg, "hooks") })
}
