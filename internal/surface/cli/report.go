package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/contid/contid/internal/sink/search"
)

// reportCmd is `contid report`: per-container summaries, like aureport.
type reportCmd struct {
	Contid  []string `name:"contid" sep:"none" placeholder:"ID" help:"Report on container ID (its nested containers' events included); repeatable. Without it, one line per container."`
	Start   string   `name:"start" aliases:"ts" placeholder:"DATE [TIME]" help:"-ts: events at or after (as contid search)."`
	End     string   `name:"end" aliases:"te" placeholder:"DATE [TIME]" help:"-te: events at or before."`
	Input   string   `name:"input" aliases:"if" type:"path" placeholder:"FILE|DIR" help:"-if: a log file, or a directory's audit.log and its rotations (default: the daemon's log_dir)."`
	Config  string   `type:"path" help:"Take log_dir from this daemon configuration file."`
	JSON    bool     `name:"json" help:"JSON instead of text tables."`
	UTC     bool     `name:"utc" help:"Print times in UTC."`
	NoIndex bool     `name:"no-index" help:"Scan every byte; neither read nor write the index."`
}

func (c *reportCmd) Run(stdio Stdio) error {
	files, err := inputFiles(c.Input, c.Config)
	if err != nil {
		return &exitError{2, err}
	}
	crit := search.Criteria{Contids: c.Contid, Start: c.Start, End: c.End}
	q, err := crit.Build(search.Clock{Now: time.Now(), Boot: bootTime(), Loc: time.Local})
	if err != nil {
		return &exitError{2, fmt.Errorf("report: %w", err)}
	}
	rep := search.NewReport(q.Contids)
	opt := search.Options{NoIndex: c.NoIndex}
	st, err := search.Search(files, &q, opt, func(ev *search.Event) error { rep.Add(ev); return nil })
	if err != nil {
		return &exitError{2, err}
	}
	if len(q.Contids) > 0 { // the losses of the time range, which name no container
		lq := q.Losses()
		if _, err := search.Search(files, &lq, opt, func(ev *search.Event) error { rep.Add(ev); return nil }); err != nil {
			return &exitError{2, err}
		}
	}
	reportSkips(stdio, st, false)
	cs := rep.Containers()
	if c.JSON {
		if cs == nil {
			cs = []*search.ContainerReport{}
		}
		enc := json.NewEncoder(stdio.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(cs)
	}
	loc := time.Local
	if c.UTC {
		loc = time.UTC
	}
	if len(cs) == 0 {
		fmt.Fprintln(stdio.Err, "<no matches>")
		return &exitError{1, quiet}
	}
	if len(q.Contids) == 0 {
		summary(stdio.Out, cs, loc)
		return nil
	}
	for i, cr := range cs {
		if i > 0 {
			fmt.Fprintln(stdio.Out)
		}
		detail(stdio.Out, cr, loc)
	}
	return nil
}

func when(sec int64, loc *time.Location) string {
	return time.Unix(sec, 0).In(loc).Format("01/02/2006 15:04:05")
}

func summary(w io.Writer, cs []*search.ContainerReport, loc *time.Location) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "CONTID\tPARENT\tEVENTS\tEXECS\tFAILED\tNESTED\tFIRST\tLAST\tLIFETIME")
	for _, c := range cs {
		parent := "-"
		if c.Parent != nil {
			parent = c.Parent.String()
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\n", c.Contid, parent, c.Events, total(c.Exes), total(c.Failed),
			len(c.Nested), when(c.First, loc), when(c.Last, loc), lifeOps(c.Lifetime))
	}
	tw.Flush()
}

func lifeOps(l []search.LifeEvent) string {
	var ops []string
	for _, e := range l {
		op := e.Op
		if e.Result != "" && e.Result != "success" {
			op += "(" + e.Result + ")"
		}
		ops = append(ops, op)
	}
	if len(ops) == 0 {
		return "-"
	}
	return strings.Join(ops, ",")
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func detail(w io.Writer, c *search.ContainerReport, loc *time.Location) {
	fmt.Fprintf(w, "Container %d\n", c.Contid)
	parent := "none"
	if c.Parent != nil {
		parent = c.Parent.String()
	}
	nested := make([]string, len(c.Nested))
	for i, n := range c.Nested {
		nested[i] = n.String()
	}
	fmt.Fprintf(w, "  parent: %s   nested: %s\n", parent, orNone(strings.Join(nested, ",")))
	fmt.Fprintf(w, "  events: %d, %s – %s   losses in that range: %d\n", c.Events, when(c.First, loc), when(c.Last, loc), c.Losses)
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	if len(c.Lifetime) > 0 {
		fmt.Fprintln(tw, "  lifetime:\tTIME\tOP\tOPID\tEXE\tRES")
		for _, e := range c.Lifetime {
			fmt.Fprintf(tw, "\t%s\t%s\t%s\t%s\t%s\n", when(e.Time, loc), e.Op, e.PID, e.Exe, e.Result)
		}
	}
	tw.Flush()
	table(w, "executables started", c.Exes)
	table(w, "events by type", c.Types)
	table(w, "events by syscall", c.Syscalls)
	table(w, "events by key", c.Keys)
	table(w, "failed syscalls", c.Failed)
	if len(c.Names) > 0 {
		tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "  namespaces:\tHOW\tTYPE\tNS")
		for _, n := range c.Names {
			fmt.Fprintf(tw, "\t%s\t%s\t%s\n", n.How, n.Type, n.NS)
		}
		tw.Flush()
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// table prints counts, most first.
func table(w io.Writer, title string, m map[string]int) {
	if len(m) == 0 {
		return
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	fmt.Fprintf(w, "  %s:\n", title)
	for _, k := range keys {
		fmt.Fprintf(w, "    %7d  %s\n", m[k], k)
	}
}
