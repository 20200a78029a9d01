package auditlog

import (
	"bytes"
	"path/filepath"
	"testing"
)

// BenchmarkWriteLine writes 200-byte lines (201 with the '\n') under each
// flush policy, rotating at 64 MiB with 3 files kept, on the file system of
// the test's temporary directory. MB/s comes from SetBytes; lines/s is
// reported beside it.
func BenchmarkWriteLine(b *testing.B) {
	line := bytes.Repeat([]byte{'x'}, 200)
	copy(line, "type=CONTAINER_OP msg=audit(1700000000.000:1): op=set contid=0123456789abcdef pid=4242 ")
	for _, p := range allPolicies {
		b.Run(p.String(), func(b *testing.B) {
			w, err := Open(Config{Path: filepath.Join(b.TempDir(), "audit.log"), Flush: p, MaxBytes: 64 << 20, NumLogs: 3}, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(line) + 1))
			b.ReportAllocs()
			for b.Loop() {
				if err := w.WriteLine(line); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkWriteLineParallel is FlushNone and FlushIncrementalAsync with
// every P writing: the cost of the Writer's lock under contention.
func BenchmarkWriteLineParallel(b *testing.B) {
	line := bytes.Repeat([]byte{'x'}, 200)
	for _, p := range []FlushPolicy{FlushNone, FlushIncrementalAsync} {
		b.Run(p.String(), func(b *testing.B) {
			w, err := Open(Config{Path: filepath.Join(b.TempDir(), "audit.log"), Flush: p, MaxBytes: 64 << 20, NumLogs: 3}, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(line) + 1))
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := w.WriteLine(line); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
		})
	}
}
