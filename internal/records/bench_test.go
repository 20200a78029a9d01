package records

import (
	"testing"
	"time"
)

// Benchmarks of the hot paths: go test -bench . ./internal/records

func benchAppend(b *testing.B, name string, f func([]byte, *Record) []byte) {
	r := benchRecords()[name]
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf = f(buf[:0], &r)
	}
	b.SetBytes(int64(len(buf)))
}

func interpUTC(b []byte, r *Record) []byte { return AppendInterpreted(b, r, time.UTC) }

func BenchmarkAppendRaw(b *testing.B) {
	for _, name := range []string{"syscall-parsed", "syscall-built", "container-id", "container-op"} {
		b.Run(name, func(b *testing.B) { benchAppend(b, name, AppendRaw) })
	}
}

func BenchmarkAppendInterpreted(b *testing.B) {
	for _, name := range []string{"syscall-parsed", "user-parsed", "container-id"} {
		b.Run(name, func(b *testing.B) { benchAppend(b, name, interpUTC) })
	}
}

func BenchmarkAppendJSON(b *testing.B) {
	for _, name := range []string{"syscall-parsed", "user-parsed", "container-id", "container-op"} {
		b.Run(name, func(b *testing.B) { benchAppend(b, name, AppendJSON) })
	}
}

func BenchmarkParseLine(b *testing.B) {
	for name, line := range map[string]string{
		"syscall":      benchSyscall,
		"user":         benchUser,
		"container-id": "type=UNKNOWN[2901] msg=audit(1700000000.123:4242): record=1 contid=4,^2",
		"eoe":          "type=EOE msg=audit(1700000000.123:4242):",
		"proctitle":    "type=PROCTITLE msg=audit(1700000000.123:4242): proctitle=636174002D6E002F746D702F6D792066696C65",
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(line)))
			for b.Loop() {
				if _, err := ParseLine(line); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkParseMessage(b *testing.B) {
	payload := []byte(benchSyscall[len("type=SYSCALL msg="):])
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		if _, err := ParseMessage(1300, payload); err != nil {
			b.Fatal(err)
		}
	}
}
