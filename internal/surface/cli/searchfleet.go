package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/contid/contid/internal/sink/fleet"
	"github.com/contid/contid/internal/sink/search"
)

// searchFleet answers the query from the fleet's streams, printing as the
// local search does.
func (c *searchCmd) searchFleet(stdio Stdio, q *search.Query, p *search.Printer) error {
	nc, err := fleet.Connect(fleet.ConnConfig{
		URLs: c.Fleet, Credentials: c.FleetCreds, NKeySeed: c.FleetNKey, TLSCA: c.FleetCA, TLSCert: c.FleetCert, TLSKey: c.FleetKey, Name: "contid search",
	}, nats.MaxReconnects(0), nats.RetryOnFailedConnect(false))
	if err != nil {
		return &exitError{2, fmt.Errorf("search: %w", err)}
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return &exitError{2, fmt.Errorf("search: %w", err)}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opt := fleet.SearchOptions{Prefix: c.FleetPrefix, Hosts: c.FleetHost, Skew: c.FleetSkew}
	print := func(_ string, ev *search.Event) error { return p.Print(ev) }
	var st fleet.SearchStats
	if c.Follow {
		st, err = fleet.Follow(ctx, js, q, opt, time.Second, print, p.Flush)
	} else {
		st, err = fleet.Search(ctx, js, q, opt, print)
	}
	if ferr := p.Flush(); err == nil {
		err = ferr
	}
	if c.Stats {
		fmt.Fprintf(stdio.Err, "contid: %d streams, %d messages read, %d events, %d copies, %d malformed, %d matched\n",
			st.Streams, st.Messages, st.Events, st.Duplicates, st.Malformed, st.Matched)
	} else if st.Malformed > 0 {
		fmt.Fprintf(stdio.Err, "contid: skipped %d malformed messages or events\n", st.Malformed)
	}
	if err != nil {
		return &exitError{2, fmt.Errorf("search: %w", err)}
	}
	if st.Matched == 0 {
		fmt.Fprintln(stdio.Err, "<no matches>")
		return &exitError{1, quiet}
	}
	return nil
}
