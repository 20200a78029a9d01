package core

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/contid/contid/internal/core/engine"
	"github.com/contid/contid/internal/source/procfs"
	"github.com/contid/contid/internal/testing/testwait"
)

// TestPace: the tick doubles while nothing happens, up to its cap, and
// comes back to the base period at the first thing that happens or
// while a tick leaves work held for the next.
func TestPace(t *testing.T) {
	const s = time.Second
	for _, tc := range []struct {
		name  string
		steps string // t: idle tick, h: tick holding work, a: activity, then a tick
		want  []time.Duration
		reset []bool // for each a: whether the timer must be set anew
	}{
		{"backs off to the cap", "tttttt", []time.Duration{2 * s, 4 * s, 8 * s, 10 * s, 10 * s, 10 * s}, nil},
		{"activity at base keeps base", "att", []time.Duration{s, 2 * s, 4 * s}, []bool{false}},
		{"activity when idle resets", "ttat", []time.Duration{2 * s, 4 * s, s, 2 * s}, []bool{true}},
		{"held work keeps base", "tthhtt", []time.Duration{2 * s, 4 * s, s, s, 2 * s, 4 * s}, nil},
		{"two activities, one reset", "ttaat", []time.Duration{2 * s, 4 * s, s, s, 2 * s}, []bool{true, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPace(s, 10*s)
			var got []time.Duration
			var resets []bool
			for _, st := range tc.steps {
				switch st {
				case 't':
					got = append(got, p.tick(false))
				case 'h':
					got = append(got, p.tick(true))
				case 'a':
					resets = append(resets, p.happened())
					got = append(got, p.tick(false))
				}
			}
			if !slices.Equal(got, tc.want) || !slices.Equal(resets, tc.reset) {
				t.Fatalf("periods %v resets %v, want %v %v", got, resets, tc.want, tc.reset)
			}
			if p.idle() != (p.cur > s) {
				t.Fatalf("idle %v at %v", p.idle(), p.cur)
			}
		})
	}
}

// wakeSource is a waitSource that counts WakeNext calls into a log the
// test reads with the core's ticks.
type wakeSource struct {
	waitSource
	log *events
}

func (w wakeSource) WakeNext() error { w.log.add("wake"); return nil }

type events struct {
	mu sync.Mutex
	l  []string
}

func (e *events) add(s string) { e.mu.Lock(); e.l = append(e.l, s); e.mu.Unlock() }
func (e *events) String() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return strings.Join(e.l, " ")
}

// TestIdleTick: on its own timer the core's tick backs off while nothing
// happens, asking the source to wake it at its next event (WakeNext, only
// then); a request brings it back to the base period, so the tick after
// it does not ask; nor does a tick whose hook holds work for the next.
func TestIdleTick(t *testing.T) {
	log := &events{}
	src := wakeSource{waitSource{newFake()}, log}
	hold := make(chan bool, 1)
	c := New(Config{Source: src, HostLog: &lines{}, Tick: time.Millisecond, IdleTick: 4 * time.Millisecond})
	c.Seed(Seed{Tasks: []procfs.Task{{PID: 1, TGID: 1, Start: 1, Comm: "init"}}})
	c.Attach(Hooks{Tick: func(time.Time) bool {
		select {
		case h := <-hold:
			if h {
				log.add("tick-held")
				return true
			}
		default:
		}
		log.add("tick")
		return false
	}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	// count reports how many of what the log holds.
	count := func(what string) int { return strings.Count(" "+log.String()+" ", " "+what+" ") }
	// waitFor waits for n of what; the ticks are its progress: a core
	// that stopped ticking fails.
	waitFor := func(what string, n int) {
		t.Helper()
		testwait.Until(t, fmt.Sprintf("%d %q: %s", n, what, log), func() (bool, any) {
			return count(what) >= n, count("tick")
		})
	}
	waitFor("wake", 1)
	if l := log.String(); !strings.HasPrefix(l, "tick wake") {
		t.Fatalf("the first tick did not back off: %s", l)
	}
	for range 3 {
		if err := c.Do(ctx, func(*engine.Engine) error { log.add("do"); return nil }); err != nil {
			t.Fatal(err)
		}
		n := count("wake")
		waitFor("wake", n+1)
		l := log.String()
		if i := strings.LastIndex(l, "do"); !strings.HasPrefix(l[i:], "do tick tick wake") {
			t.Fatalf("after a request the tick did not come back to the base period: %s", l[i:])
		}
	}
	hold <- true
	waitFor("tick-held", 1)
	n := count("wake")
	waitFor("wake", n+1)
	if l := log.String(); !strings.Contains(l, "tick-held tick wake") {
		t.Fatalf("a tick that held work let the next one back off: %s", l)
	}
}
