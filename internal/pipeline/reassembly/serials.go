package reassembly

// Serial tracking for gap detection. The kernel numbers events with a 32-bit
// counter (audit_serial: atomic_inc_return, so 4294967295 is followed by 0)
// and hands serials out in increasing order; events of different CPUs reach
// the reader slightly out of that order. The tracker keeps
//
//   - hi: the highest serial seen, in wrap-around (RFC 1982) order;
//   - lo: the lowest serial of the window, at most window below hi;
//   - spans: the runs of serials in (lo, hi) not seen yet, oldest first,
//     each with the stream time at which it counts as lost.
//
// Every serial in [lo, hi] outside spans has been seen.

const (
	// window bounds how far behind hi the tracker remembers serials, and
	// how far ahead a serial may jump before it counts as a discontinuity
	// rather than a gap: 2^24 events, as go-libaudit's reassembler allows.
	window = 1 << 24
	// restartMin is how far below the window a serial with a newer stamp
	// must fall to count as the kernel's counter starting again (a nearer
	// one needs a stamp newer by more than the timeout).
	restartMin = 1 << 16
	// maxSpans bounds the runs of missing serials kept; beyond it the
	// oldest run counts as lost at once.
	maxSpans = 1024
)

type span struct {
	lo, hi   uint32 // inclusive, lo ≤ hi in wrap-around order
	deadline int64  // stream time (ms) at which the run counts as lost
}

func (s span) size() uint64 { return uint64(s.hi-s.lo) + 1 }

type tracker struct {
	started bool
	lo, hi  uint32
	spans   []span
}

// verdict is what a serial's first record means for its event.
type verdict uint8

const (
	fresh   verdict = iota // a serial not seen before
	late                   // a serial seen before: its event was delivered
	restart                // the counter jumped: a discontinuity
)

// see classifies serial s, the first record of an event not in flight, with
// stamp time t (ms); prev is the stream time before this record, now after
// it. It updates the window. On restart the caller must take the pending
// runs (drain) before reset.
func (k *tracker) see(s uint32, t, prev, now int64, timeout int64) (verdict, uint64) {
	if !k.started {
		k.started = true
		k.lo, k.hi = s, s
		return fresh, 0
	}
	if d := int32(s - k.hi); d > 0 {
		if uint32(d) > window {
			return restart, 0
		}
		var lost uint64
		if d > 1 {
			lost = k.add(span{lo: k.hi + 1, hi: s - 1, deadline: now + timeout})
		}
		k.hi = s
		if k.hi-k.lo > window {
			k.lo = k.hi - window
		}
		return fresh, lost
	}
	back := k.hi - s
	if back > k.hi-k.lo {
		// Below the window: never seen here. A newer stamp with a far jump
		// back, or a stamp newer than the stream by more than the timeout,
		// is the counter starting again (a reboot in a replayed log);
		// otherwise it is an event that was on its way when the first one
		// we saw arrived.
		if t > prev && (back > restartMin || t-prev > timeout) {
			return restart, 0
		}
		return fresh, 0
	}
	if ok, lost := k.take(s); ok {
		return fresh, lost
	}
	// Seen before. A straggler of a delivered event carries the stamp of
	// records already seen, so it cannot be newer than the stream; a newer
	// one means the counter started again.
	if t > prev {
		return restart, 0
	}
	return late, 0
}

// reset restarts the window at s. The caller drains the pending runs first.
func (k *tracker) reset(s uint32) {
	k.started = true
	k.lo, k.hi = s, s
	k.spans = k.spans[:0]
}

// add appends a run of missing serials; it returns the size of a run that
// had to count as lost at once to keep maxSpans.
func (k *tracker) add(sp span) uint64 {
	var lost uint64
	if len(k.spans) == maxSpans {
		lost = k.spans[0].size()
		k.spans = append(k.spans[:0], k.spans[1:]...)
	}
	k.spans = append(k.spans, sp)
	return lost
}

// take removes s from the missing runs. It reports whether s was missing,
// and the size of a run that had to count as lost at once to keep
// maxSpans when removing s split a run in two.
func (k *tracker) take(s uint32) (bool, uint64) {
	// Runs are in increasing serial order, so in decreasing distance
	// behind hi.
	off := k.hi - s
	lo, hi := 0, len(k.spans)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if k.hi-k.spans[m].lo < off { // run m starts after s
			hi = m
		} else {
			lo = m + 1
		}
	}
	// lo is the first run starting after s; the run before it may hold s.
	i := lo - 1
	if i < 0 || k.hi-k.spans[i].hi > off { // no run, or it ends before s
		return false, 0
	}
	sp := &k.spans[i]
	switch {
	case sp.lo == sp.hi:
		k.spans = append(k.spans[:i], k.spans[i+1:]...)
	case s == sp.lo:
		sp.lo++
	case s == sp.hi:
		sp.hi--
	default:
		right := span{lo: s + 1, hi: sp.hi, deadline: sp.deadline}
		sp.hi = s - 1
		k.spans = append(k.spans, span{})
		copy(k.spans[i+2:], k.spans[i+1:])
		k.spans[i+1] = right
		if len(k.spans) > maxSpans {
			lost := k.spans[0].size()
			k.spans = append(k.spans[:0], k.spans[1:]...)
			return true, lost
		}
	}
	return true, 0
}

// expire removes the runs whose deadline has passed and returns how many
// serials they held.
func (k *tracker) expire(now int64) uint64 {
	n := 0
	var lost uint64
	for n < len(k.spans) && k.spans[n].deadline <= now {
		lost += k.spans[n].size()
		n++
	}
	if n > 0 {
		k.spans = append(k.spans[:0], k.spans[n:]...)
	}
	return lost
}

// drain removes every run and returns how many serials they held.
func (k *tracker) drain() uint64 {
	var lost uint64
	for _, sp := range k.spans {
		lost += sp.size()
	}
	k.spans = k.spans[:0]
	return lost
}
