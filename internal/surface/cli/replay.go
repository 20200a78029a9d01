package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/contid/contid/internal/wiring/replay"
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
	opt := replay.Options{Location: time.Local}
	switch {
	case c.Interpret:
		opt.Format = replay.Interpreted
	case c.JSON:
		opt.Format = replay.JSON
	}
	if c.UTC {
		opt.Location = time.UTC
	}
	var in io.ReadSeeker
	name := "stdin"
	if c.Trace == "-" {
		b, err := io.ReadAll(stdio.In) // read twice: is it a run with kernel audit?
		if err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		in = bytes.NewReader(b)
	} else {
		f, err := os.Open(c.Trace)
		if err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		defer f.Close()
		in, name = f, c.Trace
	}
	res, err := replay.Run(in, name, stdio.Out, opt)
	if err != nil {
		return fmt.Errorf("replay: %w (%d inputs applied before it)", err, res.Inputs)
	}
	return nil
}
