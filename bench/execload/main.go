// Command execload runs a program (/bin/true) at a steady rate: the paced
// exec load of bench/fair.sh. Starts follow a fixed timetable (start i at
// i/rate seconds after the first), so a slow start delays only itself, not
// the ones after it; when the machine cannot keep up, the late starts run
// back to back until the timetable is met again, and the line printed at
// the end says how many were late.
//
//	execload -rate 250 -seconds 30      # paced
//	execload -rate 0 -seconds 30        # flat out, one loop per CPU
//
// It prints one line: "execs N seconds S rate R late L", late counting the
// starts more than 10 ms behind their time.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	rate := flag.Float64("rate", 250, "execs per second; 0 runs flat out")
	seconds := flag.Float64("seconds", 30, "how long to run")
	prog := flag.String("exec", "/bin/true", "the program to run (an absolute path)")
	flag.Parse()
	if *seconds <= 0 || *rate < 0 {
		fmt.Fprintln(os.Stderr, "execload: -seconds must be > 0 and -rate >= 0")
		os.Exit(2)
	}
	r, err := run(*prog, *rate, time.Duration(*seconds*float64(time.Second)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "execload:", err)
		os.Exit(1)
	}
	el := r.elapsed.Seconds()
	fmt.Printf("execs %d seconds %.2f rate %.1f late %d\n", r.execs, el, float64(r.execs)/el, r.late)
}

type result struct {
	execs, late int64
	elapsed     time.Duration
}

// lateAfter is how far behind its time a start counts as late.
const lateAfter = 10 * time.Millisecond

func run(prog string, rate float64, d time.Duration) (result, error) {
	workers := runtime.NumCPU()
	if rate > 0 {
		// Enough in flight that one slow start does not hold up the next.
		workers = 4 * runtime.NumCPU()
	}
	var (
		next, done, late atomic.Int64
		firstErr         atomic.Pointer[error]
		wg               sync.WaitGroup
	)
	start := time.Now()
	end := start.Add(d)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for firstErr.Load() == nil {
				var at time.Time
				if rate > 0 {
					i := next.Add(1) - 1
					at = start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
					if !at.Before(end) {
						return
					}
					if wait := time.Until(at); wait > 0 {
						time.Sleep(wait)
					} else if -wait > lateAfter {
						late.Add(1)
					}
				} else if !time.Now().Before(end) {
					return
				}
				if err := exec.Command(prog).Run(); err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	r := result{execs: done.Load(), late: late.Load(), elapsed: time.Since(start)}
	if p := firstErr.Load(); p != nil {
		return r, *p
	}
	return r, nil
}
