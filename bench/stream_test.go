package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
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
	if v, err := strconv.Atoi(os.Getenv("COMMIT_EVERY")); err == nil {
		commitEvery = v
	}
	ackEvery, _ = strconv.Atoi(os.Getenv("ACK_EVERY"))
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
// record path on one goroutine, as in the daemon, committing every 512
// records, four times in each iteration on the same events (in an order
// that turns from one iteration to the next, so that no run always
// follows another):
//
//   - host: the rule "-a keep,host", the host log alone;
//   - stream: "-a keep,host,stream=fleet", every event also gathered
//     into the batch's messages, spooled and published by the
//     publisher's goroutines to a JetStream server in another process,
//     until the stream has acknowledged the last;
//   - pub: the same, the spool filled first, then the publisher alone
//     timed (behind: it reads the events back from the host log);
//   - raw: the host log, and the lines it got shipped as they are to the
//     same stream: at each commit, in messages of up to fleet.DefaultMaxMsg
//     on the host's subject, plain publishes, no spool, no identity, no
//     acknowledgement, until the stream holds them all. The least any
//     route that ships the events' lines to this server costs on this
//     machine: the copy, the client, the loopback socket, and the server
//     working on the other CPUs.
//
// cpu-ns/event is this process's CPU time (all its threads, getrusage)
// per event; events/s is wall time to the last acknowledgement (raw: to
// the last stored). ratio is stream CPU over host-log CPU, raw-ratio raw
// over host, stream/raw stream over raw: what the route's own work adds
// to shipping the lines at all.
func BenchmarkStreamRoute(b *testing.B) {
	path, _ := logFile(b, records)
	defer os.Remove(path)
	url := natsServer(b)
	runs := [...]mode{hostOnly, streamLive, publishAlone, rawShip}
	var got [len(runs)]run
	for i := 0; i < b.N; i++ {
		for j := range runs {
			m := runs[(i+j)%len(runs)]
			// Each run under a label: go test -cpuprofile, then go tool
			// pprof -tagfocus run=stream (or host, pub, raw) shows one
			// run's profile.
			pprof.Do(context.Background(), pprof.Labels("run", m.String()), func(context.Context) { got[m].add(routeRun(b, path, url, m)) })
		}
	}
	host, stream, pub, raw := got[hostOnly], got[streamLive], got[publishAlone], got[rawShip]
	b.ReportMetric(host.cpuPerEvent(), "host-log-cpu-ns/event")
	b.ReportMetric(stream.cpuPerEvent(), "stream-cpu-ns/event")
	b.ReportMetric(raw.cpuPerEvent(), "raw-cpu-ns/event")
	b.ReportMetric(stream.cpuPerEvent()/host.cpuPerEvent(), "ratio")
	b.ReportMetric(raw.cpuPerEvent()/host.cpuPerEvent(), "raw-ratio")
	b.ReportMetric(stream.cpuPerEvent()/raw.cpuPerEvent(), "stream/raw")
	b.ReportMetric(host.perSecond(), "host-log-events/s")
	b.ReportMetric(stream.perSecond(), "stream-events/s")
	b.ReportMetric(pub.perSecond(), "publish-events/s")
	// The publisher run's two halves: host log and stream route without a
	// publisher running, then the publisher alone.
	b.ReportMetric(float64(pub.fill.Nanoseconds())/float64(pub.events), "spool-cpu-ns/event")
	b.ReportMetric(pub.cpuPerEvent(), "publish-cpu-ns/event")
}

// mode is what a run of BenchmarkStreamRoute does (see there).
type mode int

const (
	hostOnly mode = iota
	streamLive
	publishAlone
	rawShip
)

func (m mode) String() string { return [...]string{"host", "stream", "pub", "raw"}[m] }

type run struct {
	events          uint64
	cpu, wall, fill time.Duration // fill: CPU before the publisher started (publishAlone)
}

func (r *run) add(o run) { r.events += o.events; r.cpu += o.cpu; r.wall += o.wall; r.fill += o.fill }

func (r *run) cpuPerEvent() float64 { return float64(r.cpu.Nanoseconds()) / float64(r.events) }

func (r *run) perSecond() float64 { return float64(r.events) / r.wall.Seconds() }

// routeRun runs the log through the pipeline as m says.
func routeRun(b *testing.B, path, url string, m mode) run {
	b.StopTimer()
	defer b.StartTimer()
	stream, live := m == streamLive || m == publishAlone, m != publishAlone
	rule := "-a keep,host\n"
	if stream {
		rule = "-a keep,host,stream=fleet\n"
	}
	rs, err := rules.Parse(strings.NewReader(rule), "bench")
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	host, err := auditlog.Open(auditlog.Config{Path: filepath.Join(dir, "audit.log")}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer host.Close()
	oc := output.Config{Host: host, MaxOpen: 1}
	var places *fleet.Places
	if stream && !copySpool {
		// The daemon's default: the spool refers to the host log.
		places = &fleet.Places{}
		host.Observe(places)
		oc.HostPlacer = places
		defer places.Close()
	}
	out := output.New(oc)
	defer out.Close()
	var w pipeline.Writer = out
	var (
		sink     *fleet.Sink
		sp       *fleet.Spool
		pub      *fleet.Publisher
		nc       *nats.Conn
		ship     *shipper
		hostName = "bench" + strconv.FormatInt(time.Now().UnixNano(), 36)
		name     = fleet.StreamName("CONTID", hostName)
		done     = make(chan error, 1)
		start    = func() { go func() { done <- pub.Run(context.Background()); nc.Close() }() }
	)
	if stream || m == rawShip {
		nc, err = fleet.Connect(fleet.ConnConfig{URLs: url})
		if err != nil {
			b.Fatal(err)
		}
		if err := fleet.EnsureStream(nc, name, hostName, 1); err != nil {
			b.Fatal(err)
		}
	}
	if m == rawShip {
		ship = &shipper{out: out, nc: nc, subject: string(fleet.AppendSubject(nil, hostName, nil))}
		w = ship
	}
	if stream {
		sp, err = fleet.OpenSpool(fleet.SpoolConfig{Dir: filepath.Join(dir, "spool"), MaxBytes: 4 << 30, Action: fleet.Block,
			LogDir: dir, LogBase: "audit.log"})
		if err != nil {
			b.Fatal(err)
		}
		// The boot id as long as the daemon's (the kernel's boot_id):
		// every event's identity carries it.
		sink = fleet.NewSink("fleet", hostName, "6f0e9c1a-3b2d-4c5e-8f7a-9b0c1d2e3f40", withJSON, sp)
		sink.Places = places
		pub, err = fleet.NewPublisher(fleet.PublisherConfig{Conn: nc, Stream: name, Host: hostName, Spool: sp, AckEvery: ackEvery})
		if err != nil {
			b.Fatal(err)
		}
		w = tee{out, sink}
	}
	p := pipeline.New(pipeline.Config{Attributor: world(b), Writer: w, Rules: rs})
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	commit := func() {
		out.Commit()
		if sink != nil {
			sink.Commit()
		}
		if ship != nil {
			ship.commit(b)
		}
	}
	// Every run starts from the same heap: the garbage of the run before
	// collected and its memory returned, which would otherwise be paid
	// for in this one.
	debug.FreeOSMemory()
	c0, t0 := cpuNow(), time.Now()
	if stream && live {
		start()
	}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		p.PushLine(sc.Text())
		if n%commitEvery == 0 {
			commit()
		}
	}
	p.Flush()
	commit()
	var fill time.Duration
	if ship != nil {
		ship.wait(b, name)
		nc.Close()
	}
	if stream {
		if !live {
			fill = cpuNow() - c0
			c0, t0 = cpuNow(), time.Now()
			start()
		}
		sp.Close() // the publisher returns once it has sent everything
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	r := run{events: p.Stats().Kept, cpu: cpuNow() - c0, wall: time.Since(t0), fill: fill}
	if stream || m == rawShip {
		deleteStream(b, url, name)
	}
	if stream && live {
		st := sp.Stats()
		b.Logf("%d events in %d messages (%.1f events a message), %d bytes spooled (%.0f an event), %d unreadable",
			r.events, st.Appended, float64(st.Events)/float64(st.Appended), st.Written, float64(st.Written)/float64(r.events), st.Unreadable)
	}
	if stream {
		if ps, st := pub.Stats(), sp.Stats(); ps.Published != st.Appended || ps.Events != st.Events || st.Events < r.events || ps.Reordered != 0 {
			b.Fatalf("published %+v of %+v", ps, st)
		}
	}
	return r
}

type tee struct {
	*output.Output
	sink *fleet.Sink
}

func (t tee) Write(ev *pipeline.Event) {
	t.Output.Write(ev)
	t.sink.WriteLines(ev, t.Output.Lines(), t.Output.Span())
}

// commitEvery (COMMIT_EVERY=N) is how many records go into a batch;
// withJSON (FLEET_JSON=1) puts each event's JSON object in the messages;
// copySpool (FLEET_SPOOL_COPY=1) copies every event into the spool
// (fleet.spool_copy) instead of referring to the host log; ackEvery
// (ACK_EVERY=N) is the publisher's AckEvery (0: its default).
var (
	ackEvery    int
	commitEvery = 512
	withJSON    = os.Getenv("FLEET_JSON") == "1"
	copySpool   = os.Getenv("FLEET_SPOOL_COPY") == "1"
)

// shipper is the raw run's writer: the host log, and the lines it got
// published as they are at each commit.
type shipper struct {
	out     *output.Output
	nc      *nats.Conn
	subject string
	buf     []byte
	sent    uint64 // messages
}

func (s *shipper) Write(ev *pipeline.Event) {
	s.out.Write(ev)
	s.buf = append(s.buf, s.out.Lines()...)
}

func (s *shipper) Lost(n uint64, why pipeline.Loss) { s.out.Lost(n, why) }

func (s *shipper) commit(b *testing.B) {
	for rest := s.buf; len(rest) > 0; s.sent++ {
		n := min(len(rest), fleet.DefaultMaxMsg)
		if err := s.nc.Publish(s.subject, rest[:n]); err != nil {
			b.Fatal(err)
		}
		rest = rest[n:]
	}
	s.buf = s.buf[:0]
}

// wait returns once the stream holds every message sent; it fails when
// the stream's count stops moving for a minute short of them.
func (s *shipper) wait(b *testing.B, stream string) {
	js, err := jetstream.New(s.nc)
	if err != nil {
		b.Fatal(err)
	}
	var last uint64
	moved := time.Now()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		st, err := js.Stream(ctx, stream)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		n := st.CachedInfo().State.Msgs
		if n == s.sent {
			return
		}
		if n > s.sent {
			b.Fatalf("stream %s holds %d messages, %d sent", stream, n, s.sent)
		}
		if n != last {
			last, moved = n, time.Now()
		} else if time.Since(moved) > time.Minute {
			b.Fatalf("stream %s stopped at %d of %d messages", stream, n, s.sent)
		}
		time.Sleep(time.Millisecond) // between asking: the server stores at its pace
	}
}

// deleteStream removes a run's stream, so that the server's store holds
// one run's at a time.
func deleteStream(b *testing.B, url, name string) {
	nc, err := fleet.Connect(fleet.ConnConfig{URLs: url})
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := js.DeleteStream(ctx, name); err != nil {
		b.Fatal(err)
	}
}
