package fleet

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/contid/contid/internal/testing/testwait"
)

// cluster is a JetStream cluster of embedded servers on 127.0.0.1, with
// ports picked free at start and stores in the test's temp dir.
type cluster struct {
	t    testing.TB
	opts []*server.Options
	srvs []*server.Server
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startCluster(t testing.TB, n int, tweak func(*server.Options)) *cluster {
	c := &cluster{t: t}
	dir := t.TempDir()
	var routes []string
	cports := make([]int, n)
	for i := range n {
		cports[i] = freePort(t)
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", cports[i]))
	}
	for i := range n {
		o := &server.Options{
			ServerName: fmt.Sprintf("s%d", i), Host: "127.0.0.1", Port: freePort(t),
			JetStream: true, StoreDir: filepath.Join(dir, fmt.Sprintf("s%d", i)),
			NoLog: true, NoSigs: true,
		}
		if n > 1 {
			o.Cluster = server.ClusterOpts{Name: "contid", Host: "127.0.0.1", Port: cports[i]}
			o.Routes = server.RoutesFromStr(strings.Join(routes, ","))
		}
		if tweak != nil {
			tweak(o)
		}
		c.opts = append(c.opts, o)
		c.srvs = append(c.srvs, nil)
	}
	for i := range n {
		c.start(i)
	}
	t.Cleanup(func() {
		for i := range c.srvs {
			c.stop(i)
		}
	})
	return c
}

func (c *cluster) start(i int) {
	c.t.Helper()
	s, err := server.NewServer(c.opts[i])
	if err != nil {
		c.t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(testwait.Idle()) {
		c.t.Fatalf("server %d not ready", i)
	}
	c.srvs[i] = s
}

func (c *cluster) stop(i int) {
	if s := c.srvs[i]; s != nil {
		s.Shutdown()
		s.WaitForShutdown()
		c.srvs[i] = nil
	}
}

func (c *cluster) urls() string {
	var u []string
	for _, o := range c.opts {
		u = append(u, fmt.Sprintf("nats://127.0.0.1:%d", o.Port))
	}
	return strings.Join(u, ",")
}

// streamLeader returns the index of the server leading stream, -1 if none.
func (c *cluster) streamLeader(stream string) int {
	for i, s := range c.srvs {
		if s != nil && s.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream) {
			return i
		}
	}
	return -1
}

func connect(t testing.TB, urls string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	opts = append([]nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond), nats.RetryOnFailedConnect(true)}, opts...)
	nc, err := nats.Connect(urls, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// createStream creates host's stream, retrying while the cluster elects
// its meta leader (one step: allowed Idle in total).
func createStream(t testing.TB, nc *nats.Conn, host string, replicas int) {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cfg := StreamConfig(StreamName("CONTID", host), host)
	cfg.Replicas = replicas
	var last error
	testwait.Until(t, "stream created", func() (bool, any) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, last = js.CreateOrUpdateStream(ctx, cfg)
		return last == nil, 0
	})
}

// streamIDs reads a host's stream from the start and returns the
// message ids in stream order.
func streamIDs(t testing.TB, nc *nats.Conn, stream string) []string {
	t.Helper()
	var ids []string
	for _, m := range streamMsgs(t, nc, stream) {
		ids = append(ids, m.id)
	}
	return ids
}

type storedMsg struct {
	id   string
	data []byte
}

// streamMsgs reads a host's stream from the start and returns its
// messages in stream order.
func streamMsgs(t testing.TB, nc *nats.Conn, stream string) []storedMsg {
	t.Helper()
	js, _ := jetstream.New(nc)
	var (
		ids  []storedMsg
		st   jetstream.Stream
		info *jetstream.StreamInfo
		cons jetstream.Consumer
	)
	take := func(b jetstream.MessageBatch) {
		for m := range b.Messages() {
			ids = append(ids, storedMsg{m.Headers().Get(jetstream.MsgIDHeader), m.Data()})
		}
	}
	// Each request may time out while a cluster that just came back
	// settles (a leader elected, replicas caught up): it is made again, for
	// as long as the read advances.
	testwait.Until(t, "the messages of stream "+stream, func() (bool, any) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var err error
		stage := "fetch"
		switch {
		case st == nil:
			stage = "stream"
			st, err = js.Stream(ctx, stream)
		case info == nil:
			stage = "info"
			info, err = st.Info(ctx)
		case cons == nil && info.State.Msgs > 0:
			stage = "consumer"
			cons, err = st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
		case cons != nil:
			var b jetstream.MessageBatch
			if b, err = cons.FetchNoWait(4096); err == nil {
				before := len(ids)
				take(b)
				if len(ids) == before {
					b, err = cons.Fetch(4096, jetstream.FetchMaxWait(time.Second))
					if b != nil {
						take(b)
					}
				}
			}
		}
		if err != nil {
			return false, fmt.Sprintf("%d read; %s failed", len(ids), stage)
		}
		return info != nil && uint64(len(ids)) >= info.State.Msgs, fmt.Sprintf("%d read", len(ids))
	})
	return ids
}

// EnsureStream makes the stream with the replicas asked for, on as many
// servers, and leaves an existing stream as it is.
func TestEnsureStreamReplicas(t *testing.T) {
	c := startCluster(t, 3, nil)
	nc := connect(t, c.urls())
	name := StreamName("CONTID", "r")
	var err error
	testwait.Until(t, "stream created", func() (bool, any) {
		err = EnsureStream(nc, name, "r", 3)
		return err == nil, err
	})
	js, _ := jetstream.New(nc)
	check := func() {
		t.Helper()
		var info *jetstream.StreamInfo
		testwait.Until(t, "the stream's replicas", func() (bool, any) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			st, err := js.Stream(ctx, name)
			if err != nil {
				return false, err
			}
			info, err = st.Info(ctx)
			return err == nil && info.Cluster != nil && len(info.Cluster.Replicas) == 2, info
		})
		if info.Config.Replicas != 3 || info.Config.Subjects[0] != "contid.r.>" || info.Config.Duplicates != 10*time.Minute {
			t.Fatalf("stream %+v", info.Config)
		}
	}
	check()
	if err := EnsureStream(nc, name, "r", 1); err != nil {
		t.Fatal(err)
	}
	check()
}
