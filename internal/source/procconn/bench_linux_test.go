package procconn

import (
	"context"
	"testing"
	"time"

	"github.com/contid/contid/internal/testing/testwait"
)

// BenchmarkReadCancel measures how long a blocked Read takes to return
// after its context is cancelled (TestReadCancel checks that it does).
func BenchmarkReadCancel(b *testing.B) {
	requireRoot(b)
	c, err := Open(Config{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	var total time.Duration
	for range b.N {
		ctx, cancel := context.WithCancel(context.Background())
		returned := make(chan time.Time, 1)
		go func() {
			for {
				if _, err := c.Read(ctx); err != nil {
					returned <- time.Now()
					return
				}
			}
		}()
		testwait.Parked(b, "procconn.(*Conn).receive")
		start := time.Now()
		cancel()
		total += testwait.Receive(b, "Read's return", returned).Sub(start)
	}
	b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/cancel")
}
