package core

import "time"

// DefaultTick is the tick while anything happens; DefaultIdleTick the
// longest one while nothing does (Config.Tick, Config.IdleTick).
const (
	DefaultTick     = time.Second
	DefaultIdleTick = 16 * time.Second
)

// pace decides the period of the core's tick: the base period while
// anything happens (task events, audit batches, requests), doubling at
// each tick that found nothing to do up to max, and back to the base at
// the first thing that happens. Pure: the loop owns the timer.
//
// Why the tick can wait while nothing happens: everything the tick does
// is either caused by something that happened (lines to flush, records
// held for reassembly, losses to report, counters to publish), and the
// first tick after that comes within the base period; or it is a watch
// for what the daemon cannot see coming (the kernel's lost counter, the
// namespace scan), which a longer tick reports later, never not at all.
type pace struct {
	base, max, cur time.Duration
	active         bool // something happened since the last tick
}

func newPace(base, longest time.Duration) pace {
	return pace{base: base, max: max(base, longest), cur: base}
}

// happened notes that something happened; true when the timer must be
// set to fire within the base period (the tick had backed off).
func (p *pace) happened() bool {
	p.active = true
	if p.cur > p.base {
		p.cur = p.base
		return true
	}
	return false
}

// tick is the period until the next tick, at a tick; held says the tick
// left work that needs the next one soon (records held for reassembly,
// lines queued on a full disk).
func (p *pace) tick(held bool) time.Duration {
	if p.active || held {
		p.cur = p.base
	} else {
		p.cur = min(2*p.cur, p.max)
	}
	p.active = false
	return p.cur
}

// idle reports whether the tick has backed off.
func (p *pace) idle() bool { return p.cur > p.base }
