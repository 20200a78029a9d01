package bench

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	auditrec "github.com/contid/contid/internal/records"
	"github.com/contid/contid/internal/sink/auditlog"
	"github.com/contid/contid/internal/sink/trace"
	"github.com/contid/contid/internal/wiring/replay"
)

// traceEnv names a trace the daemon recorded (contid daemon --record);
// bench/pipeline.sh records one under a container exec load.
const traceEnv = "CONTID_TRACE"

// BenchmarkRecorded: a run the daemon recorded, replayed through the whole
// path as the daemon ran it (contid replay): the kernel's records as they
// came, interleaved as they came, with the task events (forks, execs,
// exits, registrations) applied between the batches in the order the
// daemon applied them, attributed and written to the host log. The
// baseline decodes the same trace and writes each record as auditd does,
// "type=NAME msg=…", one write(2) a line, with the same writer: both pay
// the trace's decoding, so the difference is what contid does beyond a
// copy. (The replay also reads its host log back once, to print it, to
// io.Discard: a little against contid.) A third run only decodes the
// trace; bench/pipeline.sh subtracts it from both.
func BenchmarkRecorded(b *testing.B) {
	path := os.Getenv(traceEnv)
	if path == "" {
		b.Skip(traceEnv + " names no trace: bench/pipeline.sh records one")
	}
	n := traceRecords(b, path)
	if n == 0 {
		b.Fatalf("%s holds no audit batch", path)
	}
	b.Run("decode", func(b *testing.B) { // what both pay: pipeline.sh subtracts it
		perRecord(b, path, n, func(f *os.File) {
			b.StartTimer()
			eachItem(b, f, path, func(any) {})
		})
	})
	b.Run("baseline-copy", func(b *testing.B) {
		perRecord(b, path, n, func(f *os.File) {
			host, err := auditlog.Open(auditlog.Config{Path: filepath.Join(b.TempDir(), "audit.log")}, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer host.Close()
			b.StartTimer()
			var line []byte
			eachItem(b, f, path, func(it any) {
				bt, ok := it.(trace.Batch)
				if !ok {
					return
				}
				for _, r := range bt.Records {
					line = append(append(append(append(line[:0], "type="...), auditrec.Type(r.Type).String()...), " msg="...), r.Data...)
					if err := host.WriteLine(line); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.StopTimer()
		})
	})
	b.Run("contid", func(b *testing.B) {
		perRecord(b, path, n, func(f *os.File) {
			b.StartTimer()
			res, err := replay.Run(f, path, io.Discard, replay.Options{})
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			if res.Inputs == 0 {
				b.Fatalf("the trace applied no task event: %+v", res)
			}
		})
	})
}

// perRecord runs run b.N times on the trace opened anew, with the timer
// stopped (run starts it for what it times), and reports the time per
// record of the n in the trace.
func perRecord(b *testing.B, path string, n int, run func(f *os.File)) {
	for range b.N {
		f := openTrace(b, path)
		run(f)
		b.StopTimer()
		f.Close()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n)/float64(b.N), "ns/record")
}

func openTrace(b *testing.B, path string) *os.File {
	b.Helper()
	b.StopTimer()
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	return f
}

// traceRecords counts the kernel records in the trace's batches.
func traceRecords(b *testing.B, path string) int {
	b.Helper()
	f := openTrace(b, path)
	defer f.Close()
	n := 0
	start := time.Now()
	eachItem(b, f, path, func(it any) {
		if bt, ok := it.(trace.Batch); ok {
			n += len(bt.Records)
		}
	})
	b.Logf("%s: %d records (read in %v)", path, n, time.Since(start).Round(time.Millisecond))
	return n
}

// eachItem decodes the trace in f and gives do each item.
func eachItem(b *testing.B, f *os.File, path string, do func(it any)) {
	dec := trace.NewDecoder(f, path)
	for {
		it, err := dec.NextItem()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			b.Fatal(err)
		}
		do(it)
	}
}
