package fleet

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/contid/contid/internal/sink/search"
)

// Follow answers q as Search does, then goes on emitting the matching
// events the hosts' streams store, in each host's order, until ctx is
// done; flush is called after events were emitted. It follows the hosts
// whose streams exist when it starts.
//
// Each host's stream is read from the message after the last one the
// search read, by one ordered consumer over all the host's subjects: one
// consumer cannot take the overlapping filters a query by contid makes,
// so the follower skips other subjects' messages itself, reading only
// their first line (which batch they are of). A batch is emitted once a
// message of the next batch comes, or when the host's stream has been
// quiet for idle (a batch's messages are published one after the
// other). A follower keeps one copy of an event of several chains within
// a batch; it does not remember events across batches, so that it runs
// for good in bounded memory.
func Follow(ctx context.Context, js jetstream.JetStream, q *search.Query, opt SearchOptions, idle time.Duration, emit func(host string, ev *search.Event) error, flush func() error) (SearchStats, error) {
	var st SearchStats
	hosts, err := searchHosts(ctx, js, opt)
	if err != nil {
		return st, err
	}
	var mu sync.Mutex // the readers, st, emit and flush
	readers := make([]*hostReader, len(hosts))
	for i, h := range hosts {
		st.Streams++
		if readers[i], err = readHistory(ctx, js, h, q, opt, &st, emit); err != nil {
			return st, err
		}
	}
	if err := flush(); err != nil {
		return st, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var failed error // the first error of a consumer's callback or the ticker
	fail := func(err error) {
		if failed == nil {
			failed = err
		}
		cancel()
	}
	type follower struct {
		r       *hostReader
		filters []string
		quiet   time.Time // of the last message
	}
	fs := make([]*follower, len(hosts))
	for i, h := range hosts {
		r := readers[i]
		r.forget = true
		f := &follower{r: r, filters: Filters(h, q.Contids, q.Exact), quiet: time.Now()}
		fs[i] = f
		stream, err := js.Stream(ctx, StreamName(opt.Prefix, h))
		if err != nil {
			return st, fmt.Errorf("fleet: stream of %s: %w", h, err)
		}
		cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{HostSubjects(h)},
			DeliverPolicy:  jetstream.DeliverByStartSequencePolicy, OptStartSeq: r.last + 1,
		})
		if err != nil {
			return st, fmt.Errorf("fleet: follow %s: %w", h, err)
		}
		cc, err := cons.Consume(func(m jetstream.Msg) {
			mu.Lock()
			defer mu.Unlock()
			if ctx.Err() != nil {
				return
			}
			f.quiet = time.Now()
			before := st.Matched
			var err error
			if matchAny(f.filters, m.Subject()) {
				err = f.r.add(m.Data())
			} else {
				err = f.r.next(batchOf(m.Data()))
			}
			if err == nil && st.Matched != before {
				err = flush()
			}
			if err != nil {
				fail(err)
			}
		})
		if err != nil {
			return st, fmt.Errorf("fleet: follow %s: %w", h, err)
		}
		defer cc.Stop()
	}
	t := time.NewTicker(max(idle/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			mu.Lock()
			defer mu.Unlock()
			err := failed // nil: stopped, as asked
			for _, f := range fs {
				if ferr := f.r.flush(); err == nil {
					err = ferr
				}
			}
			if ferr := flush(); err == nil {
				err = ferr
			}
			return st, err
		case <-t.C:
			mu.Lock()
			before := st.Matched
			var err error
			for _, f := range fs {
				if len(f.r.frames) > 0 && time.Since(f.quiet) >= idle && err == nil {
					err = f.r.flush()
				}
			}
			if err == nil && st.Matched != before {
				err = flush()
			}
			if err != nil {
				fail(err)
			}
			mu.Unlock()
		}
	}
}

// batchOf returns the batch of a message's data, "" if it has none.
func batchOf(data []byte) string {
	rest, ok := cutPrefix(data, batchMagic)
	if !ok {
		return ""
	}
	for i, c := range rest {
		if c == ' ' || c == '\n' {
			return string(rest[:i])
		}
	}
	return ""
}

func cutPrefix(b []byte, p string) ([]byte, bool) {
	if len(b) < len(p) || string(b[:len(p)]) != p {
		return nil, false
	}
	return b[len(p):], true
}

// matchAny reports whether subject matches one of the subject filters
// (tokens, "*" one token, ">" the rest).
func matchAny(filters []string, subject string) bool {
	toks := split(subject)
	for _, f := range filters {
		if match(split(f), toks) {
			return true
		}
	}
	return false
}

func match(filter, toks []string) bool {
	for i, f := range filter {
		if f == ">" {
			return len(toks) > i
		}
		if i >= len(toks) || f != "*" && f != toks[i] {
			return false
		}
	}
	return len(filter) == len(toks)
}
