// Package bench holds contid's whole-pipeline benchmarks; bench/*.sh run
// them side by side with their baselines and print the ratios.
package bench

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/core/engine"
	"github.com/contid/contid/internal/pipeline"
	"github.com/contid/contid/internal/sink/auditlog"
	"github.com/contid/contid/internal/sink/output"
)

// The event shapes of an exec storm under an execve and exit_group rule,
// as the kernel wrote them on this machine (taken from a recorded log; the
// stamp and pids are filled in): an execve event of 8 records and an
// exit_group event of 3.
const (
	execve = `type=SYSCALL msg=audit(%[1]d.%03[2]d:%[3]d): arch=c000003e syscall=59 success=yes exit=0 a0=161500fb3c50 a1=161500ff84c0 a2=161500f7e140 a3=0 items=2 ppid=%[5]d pid=%[4]d auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="true" exe="/usr/bin/true" key="exec"
type=BPRM_FCAPS msg=audit(%[1]d.%03[2]d:%[3]d): fver=0 fp=0 fi=0 fe=0 old_pp=000001fffeffffff old_pi=0 old_pe=000001fffeffffff old_pa=0 pp=000001fffeffffff pi=0 pe=000001fffeffffff pa=0 frootid=0
type=EXECVE msg=audit(%[1]d.%03[2]d:%[3]d): argc=1 a0="/bin/true"
type=CWD msg=audit(%[1]d.%03[2]d:%[3]d): cwd="/tmp/t1"
type=PATH msg=audit(%[1]d.%03[2]d:%[3]d): item=0 name="/bin/true" inode=247070 dev=fe:00 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0
type=PATH msg=audit(%[1]d.%03[2]d:%[3]d): item=1 name="/lib64/ld-linux-x86-64.so.2" inode=325835 dev=fe:00 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0
type=PROCTITLE msg=audit(%[1]d.%03[2]d:%[3]d): proctitle=2F62696E2F74727565
type=EOE msg=audit(%[1]d.%03[2]d:%[3]d):
`
	exitGroup = `type=SYSCALL msg=audit(%[1]d.%03[2]d:%[3]d): arch=c000003e syscall=231 a0=0 a1=3c a2=0 a3=0 items=0 ppid=%[5]d pid=%[4]d auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="true" exe="/usr/bin/true" key="exit"
type=PROCTITLE msg=audit(%[1]d.%03[2]d:%[3]d): proctitle=2F62696E2F74727565
type=EOE msg=audit(%[1]d.%03[2]d:%[3]d):
`
	pids  = 2000 // distinct processes; every other one is contained
	start = 1795722502
)

// logFile writes (once) a log of at least n records: execve and exit_group
// events of 2,000 processes, round robin, 1 ms apart.
func logFile(b *testing.B, n int) (string, int) {
	b.Helper()
	path := filepath.Join(os.TempDir(), fmt.Sprintf("contid-bench-pipeline-%d.log", n))
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	recs := 0
	for serial := 1; recs < n; serial++ {
		ms := int64(serial)
		pid := 10000 + serial%pids
		tmpl := execve
		if serial%2 == 0 {
			tmpl = exitGroup
		}
		fmt.Fprintf(w, tmpl, start+ms/1000, ms%1000, serial, pid, 9999)
		if tmpl == execve {
			recs += 8
		} else {
			recs += 3
		}
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	return path, recs
}

// world is an engine that knows the log's processes, every other one in
// container 100+pid%50, nested in 7.
func world(b *testing.B) *engine.Engine {
	e := engine.New(engine.Config{})
	born := int64(start-10) * 1e9
	for i := 0; i < pids; i++ {
		s := engine.SeedTask{Time: born, PID: int32(10000 + i), TGID: int32(10000 + i), PPID: 9999, Start: uint64(i + 1), Born: born}
		if i%2 == 1 {
			s.HasContid, s.Contid = true, contid.ID(100+i%50)
		}
		if err := e.SeedTask(s); err != nil {
			b.Fatal(err)
		}
	}
	return e
}

const records = 1_200_000

// BenchmarkPipeline: a recorded log of 1.2M records through parse →
// reassemble → attribute → format → write (host log, and each contained
// event to its container's log), on one goroutine as in the daemon, which
// commits its writes after each batch of up to 512 records. The baseline
// reads the same lines and writes each unchanged to one log with the same
// writer, one write(2) a line as auditd does.
func BenchmarkPipeline(b *testing.B) {
	path, n := logFile(b, records)
	defer os.Remove(path)
	for _, bb := range []struct {
		name string
		full bool
	}{{"baseline-copy", false}, {"contid", true}} {
		b.Run(bb.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				dir := b.TempDir()
				host, err := auditlog.Open(auditlog.Config{Path: filepath.Join(dir, "audit.log")}, nil)
				if err != nil {
					b.Fatal(err)
				}
				var push func(string)
				var p *pipeline.Pipeline
				var out *output.Output
				if bb.full {
					out = output.New(output.Config{
						Host: host, MaxOpen: 256,
						Container: func(id contid.ID) auditlog.Config {
							return auditlog.Config{Path: filepath.Join(dir, "containers", id.String(), "audit.log")}
						},
					})
					p = pipeline.New(pipeline.Config{Attributor: world(b), Writer: out})
					push = func(l string) { p.PushLine(l) }
				} else {
					push = func(l string) { host.WriteLine([]byte(l)) }
				}
				f, err := os.Open(path)
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				sc := bufio.NewScanner(f)
				for n := 1; sc.Scan(); n++ {
					push(sc.Text())
					if out != nil && n%512 == 0 {
						out.Commit() // as the daemon does after each batch it receives
					}
				}
				if p != nil {
					p.Flush()
					out.Commit()
				}
				b.StopTimer()
				f.Close()
				if p != nil {
					st := p.Stats()
					if st.Malformed != 0 || st.Reassembly.Gap != 0 || st.Provenance.Contained == 0 || st.Provenance.Unknown != 0 {
						b.Fatalf("stats %+v", st)
					}
					if os := out.Stats(); os.LineErrors+os.OpenErrors != 0 {
						b.Fatalf("output %+v", os)
					}
					out.Close()
				}
				host.Close()
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
