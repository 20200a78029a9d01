// Package cli is contid's command line: one kong command struct per
// subcommand, each a thin layer over the packages that do the work.
package cli

import (
	"errors"
	"fmt"
	"io"

	"github.com/alecthomas/kong"
)

// Stdio is the command's standard streams.
type Stdio struct {
	In       io.Reader
	Out, Err io.Writer
}

// root is the command tree.
type root struct {
	Replay replayCmd `cmd:"" help:"Apply a trace of engine inputs and print the records it produces."`
}

// exitError carries a specific exit status.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

// Run parses args, runs the subcommand and returns the exit status.
func Run(args []string, stdio Stdio) int {
	var r root
	exited := -1
	parser, err := kong.New(&r,
		kong.Name("contid"),
		kong.Description("Audit container identifiers for Linux audit events."),
		kong.UsageOnError(),
		kong.Writers(stdio.Out, stdio.Err),
		kong.Exit(func(code int) { exited = code }),
		kong.BindTo(stdio, (*Stdio)(nil)),
	)
	if err != nil {
		fmt.Fprintf(stdio.Err, "contid: %v\n", err)
		return 2
	}
	ctx, err := parser.Parse(args)
	if exited >= 0 {
		return exited // --help and friends
	}
	if err != nil {
		fmt.Fprintf(stdio.Err, "contid: %v\n", err)
		return 2
	}
	ctx.Bind(stdio)
	if err := ctx.Run(); err != nil {
		fmt.Fprintf(stdio.Err, "contid: %v\n", err)
		var ee *exitError
		if errors.As(err, &ee) {
			return ee.code
		}
		return 1
	}
	return 0
}
