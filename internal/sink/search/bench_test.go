package search

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/records"
)

var (
	benchCold  = flag.Bool("search.cold", false, "evict the logs and sidecars from the page cache before each timed search")
	benchBytes = flag.Int64("search.bytes", 64<<20, "size of the logs BenchmarkOneContainerHour generates (bench/search.sh: 1 GiB)")
	benchDir   = flag.String("search.dir", "", "keep the generated logs in this directory and reuse them")
	benchBlock = flag.Int64("search.block", 0, "index block size (0: DefaultBlockSize)")
)

// BenchmarkOneContainerHour generates contid host logs (1,000 containers
// with nested chains, 10 rotations, 24 hours) and times one query, every
// event of one container and its nested ones in one hour, three ways:
// through the index, by scanning, and with ausearch -if over each file
// with the hour as its filter (the container selected from its output).
// Run with -benchtime 1x; bench/search.sh runs it on 1 GiB.
func BenchmarkOneContainerHour(b *testing.B) {
	dir := *benchDir
	if dir == "" {
		dir = b.TempDir()
	}
	const start, span = 1795687200, 24 * 3600
	files, err := Files(dir)
	if err != nil {
		b.Logf("generating %d MiB of logs in %s", *benchBytes>>20, dir)
		mustGenLogs(b, genConfig{Dir: dir, Containers: 1000, Bytes: *benchBytes, Rotations: 10, Start: start, Span: span, Seed: 1, Interleave: 0.02})
		if files, err = Files(dir); err != nil {
			b.Fatal(err)
		}
	}
	var logBytes int64
	for _, f := range files {
		fi, _ := os.Stat(f)
		logBytes += fi.Size()
	}
	t0 := time.Now()
	if _, err := Rebuild(files, *benchBlock); err != nil {
		b.Fatal(err)
	}
	build := time.Since(t0)
	var idxBytes int64
	ents, _ := os.ReadDir(filepath.Join(dir, IndexDirName))
	for _, e := range ents {
		fi, _ := e.Info()
		idxBytes += fi.Size()
	}

	const id = 123
	q := Query{Contids: []contid.ID{id}, Start: start + 12*3600, End: start + 13*3600 - 1, HasStart: true, HasEnd: true}
	count := func(opt Options) (int, Stats, time.Duration) {
		n := 0
		t := time.Now()
		st, err := Search(files, &q, opt, func(*Event) error { n++; return nil })
		if err != nil {
			b.Fatal(err)
		}
		return n, st, time.Since(t)
	}
	var dIdx, dScan, dAu []time.Duration
	var nIdx, nScan, nAu int
	var stIdx Stats
	all := append(sidecars(b, dir), files...)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var d time.Duration
		evict(b, all)
		nIdx, stIdx, d = count(Options{ReadOnly: true})
		dIdx = append(dIdx, d)
		evict(b, all)
		nScan, _, d = count(Options{NoIndex: true})
		dScan = append(dScan, d)
		evict(b, all)
		nAu, d = ausearchHour(b, files, q.Start, q.End, id)
		dAu = append(dAu, d)
	}
	b.StopTimer()
	if nIdx != nScan {
		b.Fatalf("indexed search found %d events, the scan %d", nIdx, nScan)
	}
	// Medians: the machine may be shared, and one slow run is noise.
	tIdx, tScan, tAu := median(dIdx), median(dScan), median(dAu)
	fmt.Printf("runs (indexed, scan, ausearch), page cache %s:\n", map[bool]string{true: "cold (the logs and sidecars evicted before each)", false: "warm"}[*benchCold])
	for i := range dIdx {
		fmt.Printf("  %8.2f ms  %8.0f ms  %8.0f ms  %5.0fx\n", ms(dIdx[i]), ms(dScan[i]), ms(dAu[i]), float64(dAu[i])/float64(dIdx[i]))
	}
	b.ReportMetric(float64(tIdx.Microseconds())/1e3, "indexed-ms")
	b.ReportMetric(float64(tScan.Microseconds())/1e3, "scan-ms")
	b.ReportMetric(float64(tAu.Microseconds())/1e3, "ausearch-ms")
	b.ReportMetric(float64(tScan)/float64(tIdx), "x-vs-scan")
	b.ReportMetric(float64(tAu)/float64(tIdx), "x-vs-ausearch")
	b.ReportMetric(100*float64(idxBytes)/float64(logBytes), "index-%")
	fmt.Printf("logs %d MiB in %d files; index %d KiB (%.2f%% of the logs), built in %v (%.0f MiB/s)\n",
		logBytes>>20, len(files), idxBytes>>10, 100*float64(idxBytes)/float64(logBytes), build.Round(time.Millisecond), float64(logBytes)/(1<<20)/build.Seconds())
	fmt.Printf("query: contid %d and nested, one hour: %d events (ausearch's hour: %d events naming it)\n", id, nIdx, nAu)
	fmt.Printf("medians:\n")
	fmt.Printf("  indexed   %10v  read %d KiB (%.3f%% of the logs)\n", tIdx.Round(time.Microsecond), stIdx.BytesRead>>10, 100*float64(stIdx.BytesRead)/float64(logBytes))
	fmt.Printf("  scan      %10v  %6.0fx the indexed time\n", tScan.Round(time.Microsecond), float64(tScan)/float64(tIdx))
	fmt.Printf("  ausearch  %10v  %6.0fx the indexed time\n", tAu.Round(time.Microsecond), float64(tAu)/float64(tIdx))
}

// ausearchHour runs ausearch -if FILE -ts -te --raw on every file, as one
// would without contid search, and counts the events whose lines name
// the container in a contid= chain.
func ausearchHour(b *testing.B, files []string, from, to int64, id int) (int, time.Duration) {
	bin, err := exec.LookPath("ausearch")
	if err != nil {
		b.Skip("ausearch not installed")
	}
	f := func(sec int64) []string {
		t := time.Unix(sec, 0).UTC()
		return []string{t.Format("01/02/06"), t.Format("15:04:05")}
	}
	args := append(append([]string{"--raw", "-ts"}, f(from)...), append([]string{"-te"}, f(to)...)...)
	want := fmt.Sprint(id)
	n := 0
	t := time.Now()
	for _, file := range files {
		cmd := exec.Command(bin, append([]string{"-if", file}, args...)...)
		cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
		out, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			l := sc.Text()
			i := strings.Index(l, " contid=")
			if i < 0 || !strings.HasPrefix(l, "type=UNKNOWN[2901]") {
				continue
			}
			for _, e := range strings.Split(l[i+len(" contid="):], ",") {
				if strings.TrimPrefix(e, "^") == want {
					n++
					break
				}
			}
		}
		cmd.Wait() // exit 1 when nothing matched
	}
	return n, time.Since(t)
}

// BenchmarkIndexedQuery times the indexed query alone over the logs of
// -search.dir (left there by BenchmarkOneContainerHour).
func BenchmarkIndexedQuery(b *testing.B) {
	files, err := Files(*benchDir)
	if *benchDir == "" || err != nil {
		b.Skip("needs -search.dir with logs")
	}
	const start = 1795687200
	q := Query{Contids: []contid.ID{123}, Start: start + 12*3600, End: start + 13*3600 - 1, HasStart: true, HasEnd: true}
	for b.Loop() {
		if _, err := Search(files, &q, Options{ReadOnly: true}, func(*Event) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}

// benchLog generates the 16 MiB log the sidecar benchmarks feed, in a
// directory of b's, and returns its contents.
func benchLog(b *testing.B) (dir string, info genInfo, data []byte) {
	dir = b.TempDir()
	info = mustGenLogs(b, genConfig{Dir: dir, Containers: 1000, Bytes: 16 << 20, Start: 1795687200, Span: 3600, Seed: 2, Interleave: 0.02})
	data, err := os.ReadFile(info.Files[0])
	if err != nil {
		b.Fatal(err)
	}
	return dir, info, data
}

// BenchmarkIndexWriter measures what keeping the sidecar costs a log
// writer: IndexWriter.Write over 16 MiB of generated log, per event.
func BenchmarkIndexWriter(b *testing.B) {
	dir, info, data := benchLog(b)
	path := filepath.Join(dir, "empty.log")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w, err := NewIndexWriter(path, 0)
		if err != nil {
			b.Fatal(err)
		}
		for p := data; len(p) > 0; { // the writer's batches: about 64 KiB
			n := min(len(p), 64<<10)
			w.Write(p[:n])
			p = p[n:]
		}
		w.x.f.Close()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(info.Events), "ns/event")
}

// BenchmarkLogIndex measures what keeping the sidecar costs the daemon:
// LogIndex over 16 MiB of generated log, fed as the daemon's output feeds
// it (the records of each event noted, blocks of about 64 KiB), and, for
// comparison, the same lines unnoted (parsed by the index), per event.
func BenchmarkLogIndex(b *testing.B) {
	dir, info, data := benchLog(b)
	// The daemon's events: runs of lines of one stamp, parsed.
	type event struct {
		lines []byte
		recs  []records.Record
	}
	var evs []event
	prev := ""
	for _, l := range strings.SplitAfter(string(data), "\n") {
		if l == "" {
			continue
		}
		r, err := records.ParseLine(l)
		if err != nil {
			r = records.Record{}
		}
		st := fmt.Sprint(r.Stamp)
		if st != prev || len(evs) == 0 {
			evs = append(evs, event{})
			prev = st
		}
		e := &evs[len(evs)-1]
		e.lines = append(e.lines, l...)
		e.recs = append(e.recs, r)
	}
	for _, noted := range []bool{true, false} {
		b.Run(fmt.Sprintf("noted=%v", noted), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				b.StopTimer()
				f, err := os.Open(info.Files[0])
				if err != nil {
					b.Fatal(err)
				}
				os.RemoveAll(filepath.Join(dir, IndexDirName))
				x := NewLogIndex(0, nil)
				b.StartTimer()
				var off int64
				var buf []byte
				flush := func() {
					if noted {
						x.Block(buf)
					}
					x.Appended(f, off, buf)
					off += int64(len(buf))
					buf = buf[:0]
				}
				for _, e := range evs {
					buf = append(buf, e.lines...)
					if noted {
						x.Note(e.recs)
					}
					if len(buf) >= 64<<10 {
						flush()
					}
				}
				flush()
				b.StopTimer()
				f.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(evs)), "ns/event")
		})
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }

// sidecars returns the paths of the sidecars in dir's index directory.
func sidecars(b *testing.B, dir string) []string {
	ents, err := os.ReadDir(filepath.Join(dir, IndexDirName))
	if err != nil {
		b.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, filepath.Join(dir, IndexDirName, e.Name()))
	}
	return out
}

// evict drops files from the page cache (with -search.cold): only these
// files, so that other work on the machine keeps its cache.
func evict(b *testing.B, files []string) {
	if !*benchCold {
		return
	}
	for _, p := range files {
		f, err := os.Open(p)
		if err != nil {
			b.Fatal(err)
		}
		f.Sync() // only clean pages are dropped
		if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}
