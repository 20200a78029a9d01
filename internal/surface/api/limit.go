package api

import (
	"context"
	"sync"

	"golang.org/x/sys/unix"
	"golang.org/x/time/rate"
)

// listLimiter bounds the listings that read /proc per task off the core:
// per uid a rate (token bucket) and one at a time, and two at a time in
// all, so no caller can keep the machine's CPUs busy with them.
type listLimiter struct {
	r     rate.Limit
	burst int
	all   chan struct{}

	mu  sync.Mutex
	uid map[uint32]*uidLimit
}

type uidLimit struct {
	rate *rate.Limiter
	one  chan struct{}
	refs int
}

func newListLimiter(perSecond float64, burst int) *listLimiter {
	return &listLimiter{r: rate.Limit(perSecond), burst: burst, all: make(chan struct{}, 2), uid: map[uint32]*uidLimit{}}
}

// wait waits for uid's turn (or ctx) and returns the function that ends it.
func (l *listLimiter) wait(ctx context.Context, uid uint32) (func(), error) {
	l.mu.Lock()
	u := l.uid[uid]
	if u == nil {
		u = &uidLimit{rate: rate.NewLimiter(l.r, l.burst), one: make(chan struct{}, 1)}
		l.uid[uid] = u
	}
	u.refs++
	l.mu.Unlock()
	done := func() {
		l.mu.Lock()
		// A uid's bucket goes once it is full again, so idle uids cost nothing.
		if u.refs--; u.refs == 0 && u.rate.Tokens() >= float64(l.burst) {
			delete(l.uid, uid)
		}
		l.mu.Unlock()
	}
	if err := u.rate.Wait(ctx); err != nil {
		done()
		return nil, refuse(unix.EAGAIN, "too many listings from uid: try again later")
	}
	select {
	case u.one <- struct{}{}:
	case <-ctx.Done():
		done()
		return nil, refuse(unix.EAGAIN, "too many listings from uid: try again later")
	}
	select {
	case l.all <- struct{}{}:
	case <-ctx.Done():
		<-u.one
		done()
		return nil, refuse(unix.EAGAIN, "too many listings: try again later")
	}
	return func() { <-l.all; <-u.one; done() }, nil
}
