package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/pipeline"
	"github.com/contid/contid/internal/sink/search"
)

// RegistryBucket is the name of the KV bucket of the fleet's containers:
// key <host>.<contid>, value a Registration.
func RegistryBucket(prefix string) string { return prefix + "_containers" }

// RegistryKey is the key of contid id of host.
func RegistryKey(host string, id contid.ID) string {
	return host + "." + strconv.FormatUint(uint64(id), 10)
}

// Registration is what the registry holds of a container of a host.
type Registration struct {
	Host   string `json:"host"`
	Contid uint64 `json:"contid"`
	// Chain is the container's chain, outermost first (the order of
	// subjects), as its registration named it.
	Chain []uint64 `json:"chain,omitempty"`
	// Registered and Dropped are the times (Unix ms, by the event's
	// stamp) of the events that registered and dropped it; Event is the
	// identity of the last of them.
	Registered int64  `json:"registered,omitempty"`
	Dropped    int64  `json:"dropped,omitempty"`
	Event      string `json:"event"`
}

// A Registry keeps the registry's entries of one host: the sink notes the
// events that register and drop containers, and Run puts them in the
// bucket, retrying while the servers are away. It is an index beside the
// stream, which holds the events themselves: a value waiting to be put
// is replaced by a newer one of the same container, and what is waiting
// when contid stops is not kept.
type Registry struct {
	host string
	log  *slog.Logger
	mu   sync.Mutex
	// known are the entries of the containers not yet dropped, to which a
	// drop adds its time; waiting are the values to put, by key.
	known   map[contid.ID]*Registration
	waiting map[string][]byte
	order   []string // waiting's keys, oldest first
	wake    chan struct{}
	put     atomic.Uint64
	errs    atomic.Uint64
}

// NewRegistry returns the registry of host's containers.
func NewRegistry(host string, log *slog.Logger) *Registry {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Registry{host: host, log: log, known: map[contid.ID]*Registration{}, waiting: map[string][]byte{}, wake: make(chan struct{}, 1)}
}

// Note takes an event of the sink: one that registered or dropped a
// container (pipeline.Event.Life) changes its entry.
func (r *Registry) Note(ev *pipeline.Event, id string) {
	if ev.Life == 0 || ev.Container == contid.Unset || len(ev.Records) == 0 {
		return
	}
	st := ev.Records[0].Stamp
	at := st.Sec*1000 + int64(st.Msec)
	r.mu.Lock()
	defer r.mu.Unlock()
	reg := r.known[ev.Container]
	if reg == nil || ev.Life == pipeline.Registered {
		reg = &Registration{Host: r.host, Contid: uint64(ev.Container)}
	}
	reg.Event = id
	switch ev.Life {
	case pipeline.Registered:
		reg.Registered, reg.Dropped = at, 0
		for _, c := range search.RecordChains(ev.Records) {
			if len(c) > 0 && c[0] == ev.Container {
				reg.Chain = reg.Chain[:0]
				for i := len(c) - 1; i >= 0; i-- {
					reg.Chain = append(reg.Chain, uint64(c[i]))
				}
				break
			}
		}
		r.known[ev.Container] = reg
	case pipeline.Dropped:
		reg.Dropped = at
		delete(r.known, ev.Container)
	}
	v, err := json.Marshal(reg)
	if err != nil {
		return
	}
	key := RegistryKey(r.host, ev.Container)
	if _, ok := r.waiting[key]; !ok {
		r.order = append(r.order, key)
	}
	r.waiting[key] = v
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Stats returns how many values were put and how many puts failed.
func (r *Registry) Stats() (put, errs uint64) { return r.put.Load(), r.errs.Load() }

// Run puts the waiting values in bucket until ctx is done, retrying a
// value that failed (the servers away, the bucket not made yet) with a
// growing pause.
func (r *Registry) Run(ctx context.Context, nc *nats.Conn, bucket string) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("fleet: %w", err)
	}
	var kv jetstream.KeyValue
	delay := 100 * time.Millisecond
	for {
		r.mu.Lock()
		var key string
		var val []byte
		if len(r.order) > 0 {
			key = r.order[0]
			val = r.waiting[key]
		}
		r.mu.Unlock()
		if key == "" {
			select {
			case <-ctx.Done():
				return nil
			case <-r.wake:
				continue
			}
		}
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		var err error // each try starts afresh: one failure must not stick
		if kv == nil {
			kv, err = js.KeyValue(c, bucket)
		}
		if err == nil {
			_, err = kv.Put(c, key, val)
		}
		cancel()
		if err != nil {
			if errors.Is(err, jetstream.ErrBucketNotFound) {
				kv = nil
			}
			r.errs.Add(1)
			r.log.Debug("fleet: registry put", "key", key, "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(delay):
			}
			delay = min(2*delay, 5*time.Second)
			continue
		}
		delay = 100 * time.Millisecond
		r.put.Add(1)
		r.mu.Lock()
		if string(r.waiting[key]) == string(val) { // not replaced meanwhile
			delete(r.waiting, key)
			r.order = r.order[1:]
		}
		r.mu.Unlock()
	}
}
