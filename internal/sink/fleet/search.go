package fleet

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/contid/contid/internal/sink/search"
)

// SearchOptions says where Search looks.
type SearchOptions struct {
	Prefix string   // streams are <Prefix>_<host>
	Hosts  []string // only these hosts; none: every host's stream
	// Skew is how far a host's clock may run ahead of the servers': the
	// stream is read from the query's start time minus Skew (a message is
	// stored after its event happened, by the servers' clock).
	Skew time.Duration
}

// SearchStats counts what Search read.
type SearchStats struct {
	Streams    int
	Messages   uint64 // messages the servers delivered
	Events     uint64 // distinct events in them
	Matched    uint64
	Malformed  uint64 // messages not in the batch form, events whose lines did not make one event
	Duplicates uint64 // further copies of an event (one per chain, or spooled anew)
}

// Search answers q from the hosts' streams, host by host (in name order)
// and in each host's order, handing every matching event to emit once.
// It reads only the subjects that can hold a match (a container and
// those nested in it, Filters) and, with a start time, only what the
// servers stored since; the rest of q is checked on each event as the
// local search does (search.Query.Match), so both answer alike.
func Search(ctx context.Context, js jetstream.JetStream, q *search.Query, opt SearchOptions, emit func(host string, ev *search.Event) error) (SearchStats, error) {
	var st SearchStats
	hosts, err := searchHosts(ctx, js, opt)
	if err != nil {
		return st, err
	}
	for _, h := range hosts {
		st.Streams++
		if err := searchHost(ctx, js, h, q, opt, &st, emit); err != nil {
			return st, err
		}
	}
	return st, nil
}

// searchHosts lists the hosts whose streams Search reads.
func searchHosts(ctx context.Context, js jetstream.JetStream, opt SearchOptions) ([]string, error) {
	if len(opt.Hosts) > 0 {
		for _, h := range opt.Hosts {
			if err := CheckHost(h); err != nil {
				return nil, err
			}
		}
		return slices.Sorted(slices.Values(opt.Hosts)), nil
	}
	var hosts []string
	names := js.StreamNames(ctx, jetstream.WithStreamListSubject("contid.>"))
	for n := range names.Name() {
		if h, ok := strings.CutPrefix(n, opt.Prefix+"_"); ok && CheckHost(h) == nil {
			hosts = append(hosts, h)
		}
	}
	if err := names.Err(); err != nil {
		return nil, fmt.Errorf("fleet: list streams: %w", err)
	}
	slices.Sort(hosts)
	return hosts, nil
}

func searchHost(ctx context.Context, js jetstream.JetStream, host string, q *search.Query, opt SearchOptions, st *SearchStats, emit func(string, *search.Event) error) error {
	r, err := readHistory(ctx, js, host, q, opt, st, emit)
	if err != nil {
		return err
	}
	return r.flush()
}

// readHistory reads what host's stream holds that can match q, up to
// the stream's last message when it starts, handing the events to a
// hostReader; the last batch it read is left in the reader (a follower
// may meet more of it).
func readHistory(ctx context.Context, js jetstream.JetStream, host string, q *search.Query, opt SearchOptions, st *SearchStats, emit func(string, *search.Event) error) (*hostReader, error) {
	stream, err := js.Stream(ctx, StreamName(opt.Prefix, host))
	if err != nil {
		return nil, fmt.Errorf("fleet: stream of %s: %w", host, err)
	}
	r := &hostReader{host: host, q: q, st: st, emit: emit, seen: map[string]bool{}, last: stream.CachedInfo().State.LastSeq}
	// The filters that hold messages; each is read by its own consumer
	// (filters may overlap, which one consumer does not allow), and the
	// messages merged by stream sequence.
	var filters []string
	for _, f := range Filters(host, q.Contids, q.Exact) {
		if len(q.Contids) == 0 {
			filters = append(filters, f)
			continue
		}
		info, err := stream.Info(ctx, jetstream.WithSubjectFilter(f))
		if err != nil {
			return nil, fmt.Errorf("fleet: stream of %s: %w", host, err)
		}
		if len(info.State.Subjects) > 0 {
			filters = append(filters, f)
		}
	}
	msgs := map[uint64]jetstream.Msg{}
	for _, f := range filters {
		if err := readFilter(ctx, stream, f, q, opt, msgs); err != nil {
			return nil, fmt.Errorf("fleet: read %s: %w", f, err)
		}
	}
	seqs := make([]uint64, 0, len(msgs))
	for s := range msgs {
		if s <= r.last { // what came since is the follower's
			seqs = append(seqs, s)
		}
	}
	slices.Sort(seqs)
	for _, s := range seqs {
		if err := r.add(msgs[s].Data()); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// A hostReader puts the events of one host's messages, read in stream
// order, back in the host's order and emits those that match. A batch's
// messages are stored one after the other, so those of one batch come
// together in any subset of the stream: the reader gathers a batch's
// events until a message of another batch comes (or flush), sorts them
// by their place in the batch, and emits each event once (an event of
// several chains is in several messages).
type hostReader struct {
	host   string
	q      *search.Query
	st     *SearchStats
	emit   func(string, *search.Event) error
	seen   map[string]bool
	batch  string  // the batch being gathered
	frames []Frame // its events read so far
	last   uint64  // the stream's last sequence when the reading began
	// forget clears seen after each batch (a follower's memory stays
	// bounded; an event's copies are in one batch).
	forget bool
}

// add reads a message's data.
func (r *hostReader) add(data []byte) error {
	r.st.Messages++
	n := len(r.frames)
	b, fr, ok := ParseBatch(data, r.frames)
	if !ok {
		r.st.Malformed++
		r.frames = fr[:n]
		return nil
	}
	if b != r.batch && n > 0 {
		// A new batch: the frames before it are the last one's.
		next := slices.Clone(fr[n:])
		r.frames = fr[:n]
		if err := r.flush(); err != nil {
			return err
		}
		fr = append(r.frames, next...)
	}
	r.frames, r.batch = fr, b
	if len(r.frames) > maxBatchFrames {
		// Far beyond a batch of the daemon's (512 records): a host that
		// never ends its batch is not kept in memory for good.
		return r.flush()
	}
	return nil
}

// maxBatchFrames bounds the events a reader gathers of one batch.
const maxBatchFrames = 1 << 16

// next tells the reader that a message of batch b came that it does not
// read: the batch gathered so far is whole if b is another.
func (r *hostReader) next(b string) error {
	if b != r.batch && len(r.frames) > 0 {
		return r.flush()
	}
	return nil
}

// flush emits the batch gathered so far.
func (r *hostReader) flush() error {
	slices.SortStableFunc(r.frames, func(a, b Frame) int { return cmp.Compare(a.Index, b.Index) })
	frames := r.frames
	r.frames, r.batch = r.frames[:0], ""
	if r.forget {
		defer clear(r.seen)
	}
	for i := range frames {
		f := &frames[i]
		if r.seen[f.ID] {
			r.st.Duplicates++
			continue
		}
		r.seen[f.ID] = true
		ev, ok := EventOfMsg(f.Body)
		if !ok {
			r.st.Malformed++
			continue
		}
		r.st.Events++
		if !r.q.Match(ev) {
			continue
		}
		r.st.Matched++
		if err := r.emit(r.host, ev); err != nil {
			return err
		}
	}
	return nil
}

// readFilter reads every message of the filter stored up to now (since
// the query's start, less the skew) into msgs.
func readFilter(ctx context.Context, stream jetstream.Stream, filter string, q *search.Query, opt SearchOptions, msgs map[uint64]jetstream.Msg) error {
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}}
	if q.HasStart {
		t := time.Unix(q.Start, 0).Add(-opt.Skew)
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
	}
	cons, err := stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		return err
	}
	info := cons.CachedInfo()
	if info == nil || info.NumPending == 0 {
		return nil
	}
	left := info.NumPending
	for left > 0 {
		// An idle wait per fetch, not a bound on the whole read.
		batch, err := cons.Fetch(int(min(left, 4096)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return err
		}
		got := 0
		for m := range batch.Messages() {
			md, err := m.Metadata()
			if err != nil {
				return err
			}
			msgs[md.Sequence.Stream] = m
			got++
			left = md.NumPending
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return err
		}
		if got == 0 {
			return fmt.Errorf("no message for 5 s with %d pending", left)
		}
	}
	return nil
}

// EventOfMsg returns the event of a message's data (Msg.Data): its lines
// grouped as the local search groups a log's; ok is false unless they
// make exactly one event.
func EventOfMsg(data []byte) (*search.Event, bool) {
	if len(data) > 0 && data[0] == '{' { // the JSON object first: skip it
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			return nil, false
		}
		data = data[i+1:]
	}
	g := search.NewGrouper(nil)
	var off int64
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			return nil, false
		}
		g.Add(off, string(data[:i+1]))
		off += int64(i + 1)
		data = data[i+1:]
	}
	g.Flush()
	ev, ok := g.Next()
	if !ok {
		return nil, false
	}
	if _, more := g.Next(); more {
		return nil, false
	}
	return ev, true
}
