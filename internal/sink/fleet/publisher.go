package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	Conn *nats.Conn
	// Stream is the host's stream (StreamName); it holds the subjects
	// contid.<Host>.> and nothing else publishes to it.
	Stream string
	Host   string
	Spool  *Spool
	// AckEvery is how many messages go out for one acknowledgement
	// (default 32; fewer when the spool has no more to send, and 1 while
	// the publisher is finding its place after a failure). Every message
	// carries the sequence it must get, so one acknowledgement vouches
	// for every message before it.
	AckEvery int
	// Window bounds the acknowledgements awaited (default 64: with
	// AckEvery messages or 1 MiB each, 64 MiB).
	Window int
	// AckWait is how long an acknowledgement may take before the
	// message is taken as lost and the publisher resynchronises
	// (default 5 s).
	AckWait time.Duration
	// Create makes the stream (StreamConfig, with Replicas copies) when
	// the servers answer that it does not exist: a daemon started while
	// they were away could not make it then.
	Create   bool
	Replicas int
	Log      *slog.Logger
}

// PublisherStats counts what the publisher did.
type PublisherStats struct {
	Published  uint64 // messages acknowledged as stored
	Events     uint64 // events in them
	Duplicates uint64 // … of which the stream already held (a resend)
	Resyncs    uint64 // times the publisher asked the stream where it stands
	Errors     uint64 // publishes that failed or were not acknowledged
	Skipped    uint64 // spooled messages found in the stream at a resync
	Reordered  uint64 // acknowledgements out of sequence (never expected)
	InFlight   int64
	Connected  bool
}

// A Publisher sends the spool's messages to the host's stream, in order,
// each exactly once.
//
// Only this host publishes to its stream, so the publisher knows the
// stream sequence each message must get. Each message carries
// Nats-Msg-Id (its identity) and Nats-Expected-Last-Sequence (the
// sequence of the message before it): the stream stores it only right
// after its predecessor, so a message lost in a leader change makes every
// later one in flight fail rather than be stored out of order. On any
// failure the publisher waits for what is in flight, asks the stream for
// its last message, finds that message in the spool and goes on after
// it. Nothing is stored twice or out of order, also after a crash of
// contid between a store and its acknowledgement; the stream's duplicate
// window is a second guard.
//
// (Nats-Expected-Last-Msg-Id would do the same without counting, but
// nats-server 2.15.3 checks it only when a replicated stream applies the
// message, and a refusal there during a leader change left the stream
// without a leader for good in our tests; the sequence is checked before
// the proposal.)
//
// Only one message in AckEvery asks for an acknowledgement (a reply
// subject); the others go out as plain publishes, which the stream
// stores all the same. The acknowledgement of a message proves that every
// message before it was stored, in order, since each was stored only
// after its predecessor; a message refused without a word makes the next
// acknowledged one fail. This saves the client most of its work per
// message (reply, future, timer, JSON acknowledgement). Up to Window
// acknowledgements are awaited; a second goroutine takes them in order
// and advances the spool's cursor.
type Publisher struct {
	cfg  PublisherConfig
	js   jetstream.JetStream
	next uint64 // stream sequence the next message sent gets
	// careful asks for an acknowledgement of every message: set when the
	// stream's last message is not in the spool, or a round sent nothing
	// that was stored; cleared by the first message stored anew.
	careful atomic.Bool
	stats   struct {
		published, events, duplicates, resyncs, errors, skipped, reordered atomic.Uint64
		inflight                                                           atomic.Int64
	}
}

type inflight struct {
	f    jetstream.PubAckFuture
	pos  Pos
	msgs int    // messages it acknowledges: those sent since the last
	n    uint64 // events in them
	seq  uint64 // the stream sequence it must get
	id   string
	err  error // publish failed at once
}

// NewPublisher returns a Publisher; Run sends.
func NewPublisher(cfg PublisherConfig) (*Publisher, error) {
	if cfg.Window <= 0 {
		cfg.Window = 64
	}
	if cfg.AckEvery <= 0 {
		cfg.AckEvery = 32
	}
	if cfg.AckWait <= 0 {
		cfg.AckWait = 5 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	js, err := jetstream.New(cfg.Conn,
		jetstream.WithPublishAsyncMaxPending(2*cfg.Window), // the bound is ours (send); never stall
		jetstream.WithPublishAsyncTimeout(cfg.AckWait))
	if err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	return &Publisher{cfg: cfg, js: js}, nil
}

// Stats returns the counters (from any goroutine).
func (p *Publisher) Stats() PublisherStats {
	return PublisherStats{
		Published: p.stats.published.Load(), Events: p.stats.events.Load(), Duplicates: p.stats.duplicates.Load(),
		Resyncs: p.stats.resyncs.Load(), Errors: p.stats.errors.Load(),
		Skipped: p.stats.skipped.Load(), Reordered: p.stats.reordered.Load(),
		InFlight:  p.stats.inflight.Load(),
		Connected: p.cfg.Conn.IsConnected(),
	}
}

// Run publishes until ctx is done or the spool is closed and drained.
func (p *Publisher) Run(ctx context.Context) error {
	for {
		if err := p.resync(ctx); err != nil {
			return err
		}
		before := p.stats.published.Load()
		err := p.send(ctx)
		if p.stats.published.Load() == before {
			p.careful.Store(true)
		}
		if errors.Is(err, ErrClosed) || ctx.Err() != nil {
			p.cfg.Spool.Save()
			return nil
		}
		p.cfg.Log.Warn("fleet: publishing interrupted; resynchronising", "err", err)
	}
}

// send publishes from the spool's read position until a publish fails.
func (p *Publisher) send(ctx context.Context) error {
	q := make(chan inflight, p.cfg.Window)
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.acks(q, &failed)
	}()
	stop := context.AfterFunc(ctx, func() { p.cfg.Spool.wake() })
	defer stop()
	var (
		err          error
		group, bytes int // messages and bytes since the last acknowledged
		events       uint64
		plain        = nats.NewMsg("")
		plainID      = []string{""}
		plainSeq     = []string{""}
	)
	plain.Header[jetstream.MsgIDHeader] = plainID
	plain.Header[jetstream.ExpectedLastSeqHeader] = plainSeq
	for {
		if e := failed.Load(); e != nil {
			err = *e
			break
		}
		if err = ctx.Err(); err != nil {
			break
		}
		m, pos, nerr := p.cfg.Spool.Next(true)
		if errors.Is(nerr, ErrEmpty) {
			continue // woken: look at failed and ctx again
		}
		if nerr != nil {
			err = nerr
			break
		}
		prev := p.next - 1 // the sequence it must follow
		p.next++
		p.stats.inflight.Add(1)
		group, events, bytes = group+1, events+m.N, bytes+len(m.Data)
		if group < p.cfg.AckEvery && bytes < ackBytes && !p.careful.Load() && p.cfg.Spool.More() {
			// Not acknowledged: the next acknowledged one stands for it.
			// The client copies the message into its write buffer before
			// it returns, so one message and its header serve every such
			// publish, and the spool's buffer needs no copy.
			plain.Subject, plain.Data = m.Subject, m.Data
			plainID[0] = m.ID
			plainSeq[0] = strconv.FormatUint(prev, 10)
			if perr := p.cfg.Conn.PublishMsg(plain); perr != nil {
				q <- inflight{msgs: group, err: perr}
				group, err = 0, perr
				break
			}
			continue
		}
		msg := nats.NewMsg(m.Subject)
		// Its resend being off (noRetry), the client never sends it
		// again: the spool's buffer needs no copy. (The keys are in
		// canonical form already: no Header.Set.)
		msg.Data = m.Data
		msg.Header[jetstream.MsgIDHeader] = []string{m.ID}
		msg.Header[jetstream.ExpectedLastSeqHeader] = []string{strconv.FormatUint(prev, 10)}
		f, perr := p.js.PublishMsgAsync(msg, noRetry)
		q <- inflight{f: f, pos: pos, msgs: group, n: events, seq: prev + 1, id: m.ID, err: perr}
		group, events, bytes = 0, 0, 0
		if perr != nil {
			err = perr
			break
		}
	}
	// Sent with no acknowledgement asked since the last one: not counted
	// in flight any more (the resync finds what the stream has of them).
	p.stats.inflight.Add(-int64(group))
	close(q)
	wg.Wait()
	if e := failed.Load(); e != nil && (err == nil || errors.Is(err, ErrClosed)) {
		err = *e
	}
	return err
}

// ackBytes closes a group of messages for one acknowledgement.
const ackBytes = 1 << 20

// noRetry turns off the client's resend of a message that found no
// responder: the publisher resends, in order.
var noRetry = jetstream.WithRetryAttempts(0)

// acks takes acknowledgements in order and advances the spool's cursor
// until the first failure; it takes the rest without (sent again after
// the resync).
func (p *Publisher) acks(q <-chan inflight, failed *atomic.Pointer[error]) {
	var n uint64
	saved := time.Now()
	for e := range q {
		err := e.err
		var ack *jetstream.PubAck
		if err == nil {
			select {
			case ack = <-e.f.Ok():
			case err = <-e.f.Err():
			}
		}
		p.stats.inflight.Add(-int64(e.msgs))
		if err != nil {
			p.stats.errors.Add(1)
			if failed.Load() == nil {
				failed.Store(&err)
				p.cfg.Spool.wake()
			}
			continue
		}
		if failed.Load() != nil {
			continue // after a failure: sent again from it
		}
		p.stats.published.Add(uint64(e.msgs))
		p.stats.events.Add(e.n)
		if ack.Duplicate {
			// Stored before, not at the end (a spool made anew, say): the
			// sequences expected by those in flight are one too high, so
			// they will fail; resynchronise after this one.
			p.stats.duplicates.Add(1)
			p.cfg.Spool.Ack(e.pos, e.id)
			dup := fmt.Errorf("fleet: %s already in the stream at %d", e.id, ack.Sequence)
			failed.CompareAndSwap(nil, &dup)
			p.cfg.Spool.wake()
			continue
		}
		if ack.Sequence != e.seq {
			p.stats.reordered.Add(1)
			p.cfg.Log.Warn("fleet: message stored out of sequence", "stream", p.cfg.Stream, "id", e.id, "seq", ack.Sequence, "want", e.seq)
		}
		p.careful.Store(false)
		p.cfg.Spool.Ack(e.pos, e.id)
		// The cursor on disk may lag (the resync finds the stream's last
		// message in the spool): saved every 256 messages, or 100 ms.
		if n++; n%256 == 0 || len(q) == 0 && time.Since(saved) >= 100*time.Millisecond {
			p.cfg.Spool.Save()
			saved = time.Now()
		}
	}
}

// resync asks the stream for its last message, sets the spool's read
// position after it, and the sequence the next message must get; it
// retries until the stream answers or ctx is done.
func (p *Publisher) resync(ctx context.Context) error {
	p.stats.resyncs.Add(1)
	sp := p.cfg.Spool
	for delay := 100 * time.Millisecond; ; delay = min(2*delay, 2*time.Second) {
		seq, last, err := p.last(ctx)
		if err == nil {
			sp.Rewind()
			p.next = seq + 1
			if last == "" || last == sp.LastAcked() {
				return nil
			}
			// Stored after the last acknowledgement: skip up to it.
			if n, ok := sp.Seek(last); ok {
				p.stats.skipped.Add(n)
				return nil
			}
			p.cfg.Log.Warn("fleet: the stream's last message is not among those spooled; publishing the spool after it", "stream", p.cfg.Stream, "last", last)
			p.careful.Store(true)
			return nil
		}
		p.cfg.Log.Debug("fleet: stream not reachable", "stream", p.cfg.Stream, "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
	}
}

// last returns the stream's last sequence and the Nats-Msg-Id of its
// last message ("" when the stream holds none of the host's).
func (p *Publisher) last(ctx context.Context) (uint64, string, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.AckWait)
	defer cancel()
	st, err := p.js.Stream(ctx, p.cfg.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) && p.cfg.Create {
		if st, err = newStream(ctx, p.js, p.cfg.Stream, p.cfg.Host, p.cfg.Replicas); err == nil {
			p.cfg.Log.Info("fleet: created the stream", "stream", p.cfg.Stream)
		}
	}
	if err != nil {
		return 0, "", err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0, "", err
	}
	if info.State.Msgs == 0 {
		return info.State.LastSeq, "", nil
	}
	m, err := st.GetMsg(ctx, info.State.LastSeq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return info.State.LastSeq, "", nil
	}
	if err != nil {
		return 0, "", err
	}
	return info.State.LastSeq, m.Header.Get(jetstream.MsgIDHeader), nil
}

// StreamConfig is the configuration of host's stream that contid expects:
// the host's subjects only, kept on file, with a duplicate window of ten
// minutes (a second guard behind the publisher's resynchronisation).
// Retention, size and replicas are the operator's choice.
func StreamConfig(name, host string) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name: name, Subjects: []string{HostSubjects(host)},
		Storage: jetstream.FileStorage, Duplicates: 10 * time.Minute,
		AllowDirect: true,
	}
}

// EnsureRegistry creates the registry's bucket (RegistryBucket, with
// replicas copies, a history of 5 values a key) unless it exists.
func EnsureRegistry(nc *nats.Conn, prefix string, replicas int) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("fleet: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	bucket := RegistryBucket(prefix)
	if _, err := js.KeyValue(ctx, bucket); err == nil {
		return nil
	}
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bucket, History: 5, Replicas: replicas, Storage: jetstream.FileStorage}); err != nil {
		return fmt.Errorf("fleet: create bucket %s: %w", bucket, err)
	}
	return nil
}

// EnsureStream creates host's stream (StreamConfig, with replicas copies)
// unless it exists.
func EnsureStream(nc *nats.Conn, name, host string, replicas int) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("fleet: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.Stream(ctx, name); err == nil {
		return nil
	}
	if _, err := newStream(ctx, js, name, host, replicas); err != nil {
		return fmt.Errorf("fleet: create stream %s: %w", name, err)
	}
	return nil
}

// newStream creates host's stream (StreamConfig, with replicas copies,
// at least one).
func newStream(ctx context.Context, js jetstream.JetStream, name, host string, replicas int) (jetstream.Stream, error) {
	cfg := StreamConfig(name, host)
	cfg.Replicas = max(replicas, 1)
	return js.CreateStream(ctx, cfg)
}
