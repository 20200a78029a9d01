package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"golang.org/x/sys/unix"

	"github.com/contid/contid/internal/pipeline"
	"github.com/contid/contid/internal/pipeline/rules"
	"github.com/contid/contid/internal/sink/auditlog"
	"github.com/contid/contid/internal/sink/fleet"
	"github.com/contid/contid/internal/sink/output"
)

// serverEnv makes the test binary a NATS server (JetStream, store in the
// directory it names) that prints its port and runs until killed: the
// server of the stream benchmark, in a process of its own so that its
// CPU is not counted as contid's.
const serverEnv = "CONTID_BENCH_NATS_STORE"

func TestMain(m *testing.M) {
	if dir := os.Getenv(serverEnv); dir != "" {
		s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoSigs: true, NoLog: true})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		s.Start()
		if !s.ReadyForConnections(time.Minute) {
			os.Exit(2)
		}
		fmt.Println(s.ClientURL())
		select {}
	}
	os.Exit(m.Run())
}

// natsServer starts the server process and returns its URL.
func natsServer(b *testing.B) string {
	cmd := exec.Command(os.Args[0], "-test.run", "^$")
	cmd.Env = append(os.Environ(), serverEnv+"="+b.TempDir())
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	url, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		b.Fatal("nats server: ", err)
	}
	return strings.TrimSpace(url)
}

func cpuNow() time.Duration {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkStreamRoute: the log of BenchmarkPipeline through the whole
// record path on one goroutine, as in the daemon, with the rules
// "-a keep,host" (host-log) and "-a keep,host,stream=fleet" (host-log+stream):
// every event also encoded, spooled and published by the publisher's
// goroutines to a JetStream server in another process, until the stream
// has acknowledged the last one. cpu-ns/event is this process's CPU time
// (all its threads, getrusage) per event; events/s is wall time to the
// last acknowledgement.
func BenchmarkStreamRoute(b *testing.B) {
	path, _ := logFile(b, records)
	defer os.Remove(path)
	url := natsServer(b)
	for _, bb := range []struct{ name, rule string }{
		{"host-log", "-a keep,host\n"},
		{"host-log+stream", "-a keep,host,stream=fleet\n"},
	} {
		b.Run(bb.name, func(b *testing.B) {
			rs, err := rules.Parse(strings.NewReader(bb.rule), "bench")
			if err != nil {
				b.Fatal(err)
			}
			var events uint64
			var cpu time.Duration
			for i := 0; i < b.N; i++ {
				dir := b.TempDir()
				host, err := auditlog.Open(auditlog.Config{Path: filepath.Join(dir, "audit.log")}, nil)
				if err != nil {
					b.Fatal(err)
				}
				out := output.New(output.Config{Host: host, MaxOpen: 1})
				var w pipeline.Writer = out
				var sink *fleet.Sink
				var sp *fleet.Spool
				var pub *fleet.Publisher
				done := make(chan error, 1)
				if strings.Contains(bb.rule, "stream") {
					hostName := "bench" + strconv.FormatInt(time.Now().UnixNano(), 36)
					nc, err := fleet.Connect(fleet.ConnConfig{URLs: url})
					if err != nil {
						b.Fatal(err)
					}
					stream := fleet.StreamName("CONTID", hostName)
					if err := fleet.EnsureStream(nc, stream, hostName); err != nil {
						b.Fatal(err)
					}
					sp, err = fleet.OpenSpool(fleet.SpoolConfig{Dir: filepath.Join(dir, "spool"), MaxBytes: 4 << 30, Action: fleet.Block})
					if err != nil {
						b.Fatal(err)
					}
					sink = fleet.NewSink("fleet", hostName, "boot", false, sp)
					pub, err = fleet.NewPublisher(fleet.PublisherConfig{Conn: nc, Stream: stream, Host: hostName, Spool: sp})
					if err != nil {
						b.Fatal(err)
					}
					go func() { done <- pub.Run(context.Background()); nc.Close() }()
					w = tee{out, sink}
				}
				p := pipeline.New(pipeline.Config{Attributor: world(b), Writer: w, Rules: rs})
				f, err := os.Open(path)
				if err != nil {
					b.Fatal(err)
				}
				c0, t0 := cpuNow(), time.Now()
				b.StartTimer()
				sc := bufio.NewScanner(f)
				for n := 1; sc.Scan(); n++ {
					p.PushLine(sc.Text())
					if n%512 == 0 {
						out.Commit()
						if sink != nil {
							sink.Commit()
						}
					}
				}
				p.Flush()
				out.Commit()
				if sink != nil {
					sink.Commit()
					sp.Close() // the publisher returns once it has sent everything
					if err := <-done; err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				cpu += cpuNow() - c0
				wall := time.Since(t0)
				f.Close()
				st := p.Stats()
				events += st.Kept
				if sink != nil {
					if ps := pub.Stats(); ps.Published != sp.Stats().Appended || ps.Reordered != 0 {
						b.Fatalf("published %+v of %+v", ps, sp.Stats())
					}
				}
				out.Close()
				host.Close()
				b.ReportMetric(float64(st.Kept)/wall.Seconds(), "events/s")
			}
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(events), "cpu-ns/event")
		})
	}
}

type tee struct {
	*output.Output
	sink *fleet.Sink
}

func (t tee) Write(ev *pipeline.Event) { t.Output.Write(ev); t.sink.Write(ev) }
