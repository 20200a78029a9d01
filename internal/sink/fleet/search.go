package fleet

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
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
	stream, err := js.Stream(ctx, StreamName(opt.Prefix, host))
	if err != nil {
		return fmt.Errorf("fleet: stream of %s: %w", host, err)
	}
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
			return fmt.Errorf("fleet: stream of %s: %w", host, err)
		}
		if len(info.State.Subjects) > 0 {
			filters = append(filters, f)
		}
	}
	msgs := map[uint64]jetstream.Msg{}
	for _, f := range filters {
		if err := readFilter(ctx, stream, f, q, opt, msgs); err != nil {
			return fmt.Errorf("fleet: read %s: %w", f, err)
		}
	}
	seqs := make([]uint64, 0, len(msgs))
	for s := range msgs {
		seqs = append(seqs, s)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	seen := map[string]bool{}
	var (
		batch  string  // the batch being gathered
		frames []Frame // its events read so far
	)
	flush := func() error {
		// The batch's events in the host's order; copies of an event
		// (one per chain) once.
		slices.SortStableFunc(frames, func(a, b Frame) int { return cmp.Compare(a.Index, b.Index) })
		for i := range frames {
			f := &frames[i]
			if seen[f.ID] {
				st.Duplicates++
				continue
			}
			seen[f.ID] = true
			ev, ok := EventOfMsg(f.Body)
			if !ok {
				st.Malformed++
				continue
			}
			st.Events++
			if !q.Match(ev) {
				continue
			}
			st.Matched++
			if err := emit(host, ev); err != nil {
				return err
			}
		}
		frames = frames[:0]
		return nil
	}
	for _, s := range seqs {
		st.Messages++
		// A batch's messages are stored one after the other, so those of
		// one batch come together in any subset of the stream.
		n := len(frames)
		b, fr, ok := ParseBatch(msgs[s].Data(), frames)
		if !ok {
			st.Malformed++
			frames = fr[:n]
			continue
		}
		if b != batch && n > 0 {
			// A new batch: the frames before it are the last one's.
			next := slices.Clone(fr[n:])
			frames = fr[:n]
			if err := flush(); err != nil {
				return err
			}
			fr = append(frames, next...)
		}
		frames, batch = fr, b
	}
	return flush()
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
