package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/contid/contid/internal/config"
	"github.com/contid/contid/internal/sink/search"
)

// searchCmd is `contid search`: ausearch's criteria over contid's logs.
type searchCmd struct {
	Contid   []string `name:"contid" sep:"none" placeholder:"ID" help:"Events of container ID or of a container nested in it (repeatable)."`
	Exact    bool     `help:"With --contid, only events whose innermost container is ID."`
	Start    string   `name:"start" aliases:"ts" placeholder:"DATE [TIME]" help:"-ts: events at or after: MM/DD/YY[YY] [HH:MM[:SS]], HH:MM[:SS], now, recent, boot, today, yesterday, this-week, week-ago, this-month, this-year."`
	End      string   `name:"end" aliases:"te" placeholder:"DATE [TIME]" help:"-te: events at or before (same forms; a missing time is now's time of day, as in ausearch)."`
	Message  []string `name:"message" short:"m" sep:"none" placeholder:"TYPE" help:"Record type, name or number, comma-separated list allowed (CONTAINER_ID, NS_CHANGE, SYSCALL, 2901)."`
	PID      []string `name:"pid" short:"p" sep:"none" help:"Process id."`
	PPID     []string `name:"ppid" aliases:"pp" sep:"none" help:"-pp: parent process id."`
	UID      []string `name:"uid" aliases:"ui" sep:"none" help:"-ui: user id or name."`
	AUID     []string `name:"loginuid" aliases:"ua" sep:"none" help:"-ua: audit (login) user id or name."`
	Key      []string `name:"key" short:"k" sep:"none" help:"Rule key."`
	Exe      []string `name:"executable" short:"x" sep:"none" help:"Executable path (exe=)."`
	Syscall  []string `name:"syscall" aliases:"sc" sep:"none" help:"-sc: syscall name or number (x86_64)."`
	Success  string   `name:"success" aliases:"sv" enum:",yes,no" default:"" help:"-sv: yes or no."`
	Event    []string `name:"event" short:"a" sep:"none" placeholder:"SERIAL" help:"Event serial number."`
	Input    string   `name:"input" aliases:"if" type:"path" placeholder:"FILE|DIR" help:"-if: a log file, or a directory's audit.log and its rotations (default: the daemon's log_dir)."`
	Config   string   `type:"path" help:"Take log_dir from this daemon configuration file."`
	Interp   bool     `name:"interpret" short:"i" help:"Interpret records as ausearch -i does."`
	JSON     bool     `name:"json" help:"One JSON object per event."`
	UTC      bool     `name:"utc" help:"With -i, print times in UTC."`
	NoIndex  bool     `name:"no-index" help:"Scan every byte; neither read nor write the index."`
	ReadOnly bool     `name:"read-only-index" help:"Use the index but never write it."`
	Stats    bool     `help:"Print what was read and skipped to standard error."`
	Follow   bool     `short:"f" help:"Go on printing matches as they are written to the current log (following rotation), or with --fleet as the streams store them, until interrupted."`

	Fleet       string        `placeholder:"URL" help:"Search the fleet's NATS JetStream streams instead of logs (comma-separated server URLs; docs/fleet.md)."`
	FleetHost   []string      `name:"fleet-host" sep:"none" placeholder:"HOST" help:"With --fleet, only this host's stream (repeatable; default every host)."`
	FleetPrefix string        `name:"fleet-prefix" default:"CONTID" help:"With --fleet, the streams' name prefix (fleet.stream_prefix)."`
	FleetCreds  string        `name:"fleet-creds" type:"path" placeholder:"FILE" help:"With --fleet, a NATS .creds file (user JWT and nkey seed)."`
	FleetNKey   string        `name:"fleet-nkey" type:"path" placeholder:"FILE" help:"With --fleet, a file holding a user nkey seed."`
	FleetCA     string        `name:"fleet-tls-ca" type:"path" placeholder:"FILE" help:"With --fleet, the CA of the servers' TLS certificates."`
	FleetCert   string        `name:"fleet-tls-cert" type:"path" placeholder:"FILE" help:"With --fleet, a TLS client certificate (with --fleet-tls-key)."`
	FleetKey    string        `name:"fleet-tls-key" type:"path" placeholder:"FILE" help:"With --fleet, the TLS client key."`
	FleetSkew   time.Duration `name:"fleet-skew" default:"5m" help:"With --fleet and -ts, how far a host's clock may run ahead of the servers'."`
}

func (c *searchCmd) Run(stdio Stdio) error {
	if c.Interp && c.JSON {
		return &exitError{2, errors.New("search: -i and --json exclude each other")}
	}
	if c.Fleet != "" && (c.Input != "" || c.NoIndex || c.ReadOnly) {
		return &exitError{2, errors.New("search: --fleet reads streams: not with -if, --no-index or --read-only-index")}
	}
	crit := search.Criteria{
		Contids: c.Contid, Exact: c.Exact, Start: c.Start, End: c.End, Types: c.Message,
		PIDs: c.PID, PPIDs: c.PPID, UIDs: c.UID, AUIDs: c.AUID, Keys: c.Key, Exes: c.Exe,
		Syscalls: c.Syscall, Success: c.Success, Serials: c.Event,
	}
	q, err := crit.Build(search.Clock{Now: time.Now(), Boot: bootTime(), Loc: time.Local})
	if err != nil {
		return &exitError{2, fmt.Errorf("search: %w", err)}
	}
	format := search.Raw
	switch {
	case c.Interp:
		format = search.Interpreted
	case c.JSON:
		format = search.JSON
	}
	loc := time.Local
	if c.UTC {
		loc = time.UTC
	}
	p := search.NewPrinter(stdio.Out, format, loc)
	if c.Fleet != "" {
		return c.searchFleet(stdio, &q, p)
	}
	files, err := inputFiles(c.Input, c.Config)
	if err != nil {
		return &exitError{2, err}
	}
	past := files
	if c.Follow {
		past = files[:len(files)-1] // the current log is read by the follower
	}
	st, err := search.Search(past, &q, search.Options{NoIndex: c.NoIndex, ReadOnly: c.ReadOnly}, p.Print)
	if ferr := p.Flush(); err == nil {
		err = ferr
	}
	reportSkips(stdio, st, c.Stats)
	if err != nil {
		return &exitError{2, err}
	}
	if c.Follow {
		fl, err := search.NewFollower(files[len(files)-1], &q, 0, p.Print)
		if err != nil {
			return &exitError{2, err}
		}
		defer fl.Close()
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if err := search.Follow(ctx, fl, 200*time.Millisecond, 2*time.Second, p.Flush); err != nil {
			return &exitError{2, err}
		}
		p.Flush()
		st.Matched += fl.Matched
	}
	if st.Matched == 0 {
		fmt.Fprintln(stdio.Err, "<no matches>")
		return &exitError{1, quiet}
	}
	return nil
}

// inputFiles returns the log files of -if, or of the daemon's log_dir.
func inputFiles(input, cfgPath string) ([]string, error) {
	if input == "" {
		cfg, err := config.Load(cfgPath)
		if err != nil {
			return nil, err
		}
		input = cfg.LogDir
	}
	return search.Files(input)
}

func reportSkips(stdio Stdio, st search.Stats, verbose bool) {
	if st.Malformed > 0 || st.Torn > 0 {
		fmt.Fprintf(stdio.Err, "contid: skipped %d malformed lines and %d torn last lines\n", st.Malformed, st.Torn)
	}
	if verbose {
		fmt.Fprintf(stdio.Err, "contid: %d files, %d bytes, %d read (%.2f%%), %d events read, %d matched, %d indexed files, %d index files written\n",
			st.Files, st.Bytes, st.BytesRead, 100*float64(st.BytesRead)/float64(max(st.Bytes, 1)), st.Events, st.Matched, st.Indexed, st.Rebuilt)
	}
}

// bootTime is now minus the uptime, for -ts boot.
func bootTime() time.Time {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return time.Time{}
	}
	var up float64
	if _, err := fmt.Sscanf(string(b), "%f", &up); err != nil {
		return time.Time{}
	}
	return time.Now().Add(-time.Duration(up * float64(time.Second)))
}

// ausearchFlags are ausearch's multi-letter flags with one dash; kong
// takes them with two.
var ausearchFlags = map[string]bool{"-ts": true, "-te": true, "-if": true, "-pp": true, "-ui": true, "-ua": true, "-sc": true, "-sv": true}

// ausearchArgs rewrites the arguments of search and report so that they
// read as ausearch's: "-ts" becomes "--ts", and a time of day after a
// -ts/-te date is joined to it ("-ts 12/04/26 14:00:00").
func ausearchArgs(args []string) []string {
	if len(args) == 0 || (args[0] != "search" && args[0] != "report" && args[0] != "index") {
		return args
	}
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...)
		}
		if ausearchFlags[a] {
			a = "-" + a
		}
		out = append(out, a)
		switch a {
		case "--ts", "--te", "--start", "--end":
			if i+2 < len(args) && !strings.HasPrefix(args[i+1], "-") && search.IsTimeOfDay(args[i+2]) && !search.IsTimeOfDay(args[i+1]) {
				out = append(out, args[i+1]+" "+args[i+2])
				i += 2
			}
		}
	}
	return out
}

// indexCmd is `contid index`: the search index's maintenance.
type indexCmd struct {
	Rebuild bool   `required:"" help:"Discard the sidecars of the logs and build them again."`
	Input   string `name:"input" aliases:"if" type:"path" placeholder:"FILE|DIR" help:"-if: a log file, or a directory's audit.log and its rotations (default: the daemon's log_dir)."`
	Config  string `type:"path" help:"Take log_dir from this daemon configuration file."`
}

func (c *indexCmd) Run(stdio Stdio) error {
	files, err := inputFiles(c.Input, c.Config)
	if err != nil {
		return &exitError{2, err}
	}
	n, err := search.Rebuild(files, 0)
	if err != nil {
		return &exitError{2, err}
	}
	fmt.Fprintf(stdio.Out, "indexed %d of %d files\n", n, len(files))
	if n < len(files) {
		return &exitError{1, fmt.Errorf("index: %d files could not be indexed (the directory beside them must be writable, and owned by root or by you)", len(files)-n)}
	}
	return nil
}
