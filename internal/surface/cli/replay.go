package cli

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/contid/contid/internal/sink/trace"
)

type replayCmd struct {
	Interpret bool   `short:"i" help:"Interpret: record names and local times, like ausearch -i."`
	JSON      bool   `name:"json" help:"Write one JSON object per record."`
	UTC       bool   `help:"With -i, print times in UTC."`
	Trace     string `arg:"" help:"Trace file (JSON lines, see docs/trace.md); - reads standard input."`
}

func (c *replayCmd) Run(stdio Stdio) error {
	if c.Interpret && c.JSON {
		return fmt.Errorf("replay: -i and --json exclude each other")
	}
	opt := trace.Options{Location: time.Local}
	switch {
	case c.Interpret:
		opt.Format = trace.Interpreted
	case c.JSON:
		opt.Format = trace.JSON
	}
	if c.UTC {
		opt.Location = time.UTC
	}
	var in io.Reader = stdio.In
	name := "stdin"
	if c.Trace != "-" {
		f, err := os.Open(c.Trace)
		if err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		defer f.Close()
		in, name = f, c.Trace
	}
	res, err := trace.Run(in, name, stdio.Out, opt)
	if err != nil {
		return fmt.Errorf("replay: %w (%d inputs applied before it)", err, res.Inputs)
	}
	return nil
}
