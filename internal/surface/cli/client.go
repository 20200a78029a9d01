package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/contid/contid/internal/surface/api"
)

// defaultSocket is clientFlags.Socket's default (kong takes it as a tag).
const defaultSocket = "/run/contid/contid.sock"

// clientFlags are shared by the commands that talk to the daemon.
type clientFlags struct {
	Socket string `help:"The daemon's API socket." env:"CONTID_SOCKET" default:"/run/contid/contid.sock"`
	JSON   bool   `name:"json" help:"Print JSON."`
}

func (f *clientFlags) client() *api.Client { return api.NewClient(f.Socket) }

func ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func chainText(c []uint64) string {
	if len(c) == 0 {
		return "unset"
	}
	parts := make([]string, len(c))
	for i, id := range c {
		parts[i] = strconv.FormatUint(id, 10)
	}
	return strings.Join(parts, ",^")
}

type setCmd struct {
	clientFlags
	PID    int32  `arg:"" help:"Process (a TID names its thread group)."`
	Contid string `arg:"" help:"Contid, an unsigned 64-bit decimal number."`
}

// Run registers for the shell that ran contid, as writing
// /proc/PID/audit_containerid from that shell would in the kernel design.
func (c *setCmd) Run(stdio Stdio) error {
	cx, cancel := ctx()
	defer cancel()
	t, err := c.client().SetContid(cx, api.SetRequest{PID: c.PID, Contid: c.Contid, ForParent: true})
	if err != nil {
		return fmt.Errorf("set %d %s: %w", c.PID, c.Contid, err)
	}
	if c.JSON {
		return printJSON(stdio.Out, t)
	}
	fmt.Fprintf(stdio.Out, "%d %s\n", t.PID, chainText(t.Chain))
	return nil
}

type getCmd struct {
	clientFlags
	PID   int32 `arg:"" help:"Process or thread."`
	Chain bool  `help:"Print the whole chain (4,^2,^1)."`
}

func (c *getCmd) Run(stdio Stdio) error {
	cx, cancel := ctx()
	defer cancel()
	t, err := c.client().Task(cx, c.PID)
	if err != nil {
		return fmt.Errorf("get %d: %w", c.PID, err)
	}
	switch {
	case c.JSON:
		return printJSON(stdio.Out, t)
	case len(t.Chain) == 0:
		fmt.Fprintln(stdio.Out, "unset")
	case c.Chain:
		fmt.Fprintln(stdio.Out, chainText(t.Chain))
	default:
		fmt.Fprintln(stdio.Out, t.Chain[0])
	}
	return nil
}

type capcontidCmd struct {
	clientFlags
	PID   int32  `arg:"" help:"Process to grant (1) or revoke (0) capcontid."`
	Value string `arg:"" help:"1 or 0."`
}

func (c *capcontidCmd) Run(stdio Stdio) error {
	cx, cancel := ctx()
	defer cancel()
	t, err := c.client().SetCapcontid(cx, api.CapRequest{PID: c.PID, Value: c.Value, ForParent: true})
	if err != nil {
		return fmt.Errorf("capcontid %d %s: %w", c.PID, c.Value, err)
	}
	if c.JSON {
		return printJSON(stdio.Out, t)
	}
	fmt.Fprintf(stdio.Out, "%d capcontid=%v\n", t.PID, t.Capcontid)
	return nil
}

type psCmd struct {
	clientFlags
	All bool `short:"a" help:"Show uncontained processes too (default: only those with a contid and their ancestors)."`
}

func (c *psCmd) Run(stdio Stdio) error {
	cx, cancel := ctx()
	defer cancel()
	tasks, err := c.client().Tasks(cx)
	if err != nil {
		return fmt.Errorf("ps: %w", err)
	}
	var procs []api.Task
	for _, t := range tasks {
		if t.PID == t.TGID {
			procs = append(procs, t)
		}
	}
	if c.JSON {
		return printJSON(stdio.Out, procs)
	}
	writeTree(stdio.Out, procs, c.All)
	return nil
}

// writeTree prints processes as a tree: PID, chain, command.
func writeTree(w io.Writer, procs []api.Task, all bool) {
	byPID := make(map[int32]api.Task, len(procs))
	kids := make(map[int32][]int32)
	for _, p := range procs {
		byPID[p.PID] = p
	}
	show := make(map[int32]bool)
	for _, p := range procs {
		if all || len(p.Chain) > 0 {
			for q, ok := p, true; ok && !show[q.PID]; q, ok = byPID[q.PPID] {
				show[q.PID] = true
			}
		}
	}
	var roots []int32
	for _, p := range procs {
		if !show[p.PID] {
			continue
		}
		if _, ok := byPID[p.PPID]; ok && show[p.PPID] {
			kids[p.PPID] = append(kids[p.PPID], p.PID)
		} else {
			roots = append(roots, p.PID)
		}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PID\tCONTID\tCOMMAND")
	var walk func(pid int32, depth int)
	walk = func(pid int32, depth int) {
		p := byPID[pid]
		ch := "-"
		if len(p.Chain) > 0 {
			ch = chainText(p.Chain)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s%s\n", p.PID, ch, strings.Repeat("  ", depth), p.Comm)
		sort.Slice(kids[pid], func(i, j int) bool { return kids[pid][i] < kids[pid][j] })
		for _, k := range kids[pid] {
			walk(k, depth+1)
		}
	}
	sort.Slice(roots, func(i, j int) bool { return roots[i] < roots[j] })
	for _, r := range roots {
		walk(r, 0)
	}
	tw.Flush()
}

type containersCmd struct {
	clientFlags
}

func (c *containersCmd) Run(stdio Stdio) error {
	cx, cancel := ctx()
	defer cancel()
	cs, err := c.client().Containers(cx)
	if err != nil {
		return fmt.Errorf("containers: %w", err)
	}
	if c.JSON {
		return printJSON(stdio.Out, cs)
	}
	tw := tabwriter.NewWriter(stdio.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CONTID\tCHAIN\tNAME\tOWNER\tTASKS\tNESTED\tNETNS")
	for _, co := range cs {
		name := co.Name
		if name == "" {
			name = "-"
		}
		netns := strings.Join(co.Netns, ",")
		if netns == "" {
			netns = "-"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%d\t%s\n", co.Contid, chainText(co.Chain), name, co.OwnerPID, co.Tasks, co.Children, netns)
	}
	return tw.Flush()
}

type statusCmd struct {
	clientFlags
}

func (c *statusCmd) Run(stdio Stdio) error {
	cx, cancel := ctx()
	defer cancel()
	s, err := c.client().Status(cx)
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	if c.JSON {
		return printJSON(stdio.Out, s)
	}
	fmt.Fprintf(stdio.Out, "source: %s\ntasks: %d\n", s.Source, s.Tasks)
	keys := make([]string, 0, len(s.Counters))
	for k := range s.Counters {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(stdio.Out, "%s: %d\n", k, s.Counters[k])
	}
	return nil
}
