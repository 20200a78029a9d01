package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"

	"github.com/contid/contid/internal/config"
	"github.com/contid/contid/internal/wiring/daemon"
)

type daemonCmd struct {
	Config      string `help:"TOML configuration file; the embedded defaults apply without one." type:"existingfile"`
	LogDir      string `help:"Directory of audit.log (overrides log_dir)."`
	Socket      string `help:"API socket path (overrides socket)." env:"CONTID_SOCKET"`
	PinDir      string `help:"bpffs directory of pinned state (overrides pin_dir)."`
	LogLevel    string `help:"debug, info, warn or error (overrides log_level)."`
	Source      string `help:"auto, ebpf or proc-connector (overrides source)."`
	Audit       string `help:"Where kernel audit records come from: auto, primary, listener, plugin or off (overrides audit.mode)."`
	AuditRules  string `help:"Audit rules (auditctl syntax, rule lines only) loaded over netlink at start and deleted at stop; primary mode (overrides audit.rules)." type:"existingfile"`
	Filter      string `help:"contid filtering and routing rules (overrides audit.filter)." type:"existingfile"`
	Takeover    bool   `help:"Primary mode: stop a registered audit daemon and take its place (sets audit.takeover)."`
	JSON        bool   `name:"json-log" help:"Also write DIR/audit.json, one JSON object per event (sets audit.json)."`
	PrintConfig bool   `help:"Print the configuration in force and exit."`
	CPUProfile  string `name:"cpu-profile" hidden:"" help:"Write a Go CPU profile to this file until the daemon stops (benchmarks)."`
	Record      string `help:"Write a trace of every input the engine applies to this file (mode 0600); contid replay FILE then reproduces the daemon's own records (docs/trace.md)."`

	MetricsListen      string `help:"Serve Prometheus metrics (GET /metrics) on a loopback host:port or an absolute unix socket path (overrides metrics.listen; off by default)."`
	MetricsAllowRemote bool   `help:"Allow a metrics address that is not loopback; the counters reveal the host's and its containers' activity (sets metrics.allow_remote)."`
}

// audispCmd runs the daemon as auditd's plugin: records on stdin.
type audispCmd struct {
	daemonCmd `embed:""`
}

func (c *audispCmd) Run(stdio Stdio) error {
	c.Audit = "plugin"
	return c.daemonCmd.Run(stdio)
}

func (c *daemonCmd) Run(stdio Stdio) error {
	cfg, err := c.load()
	if err != nil {
		return err
	}
	if c.PrintConfig {
		_, err := stdio.Out.Write(cfg.Text())
		return err
	}
	level, _ := cfg.Level()
	log := slog.New(slog.NewTextHandler(stdio.Err, &slog.HandlerOptions{Level: level}))
	if os.Geteuid() != 0 {
		return fmt.Errorf("daemon: must run as root (eBPF, kernel audit, bpffs)")
	}
	if c.CPUProfile != "" {
		f, err := os.Create(c.CPUProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	return daemon.Run(context.Background(), cfg, c.Config, log, daemon.Options{Stdin: stdio.In, Record: abs(c.Record)})
}

// load applies defaults, then the file, then flags.
func (c *daemonCmd) load() (config.Config, error) {
	cfg, err := config.Load(c.Config)
	if err != nil {
		return cfg, err
	}
	for _, o := range []struct {
		flag string
		dst  *string
	}{
		{c.LogDir, &cfg.LogDir}, {c.Socket, &cfg.Socket}, {c.PinDir, &cfg.PinDir}, {c.LogLevel, &cfg.LogLevel},
		{c.Source, &cfg.Source}, {c.Audit, &cfg.Audit.Mode}, {abs(c.AuditRules), &cfg.Audit.Rules}, {abs(c.Filter), &cfg.Audit.Filter},
		{c.MetricsListen, &cfg.Metrics.Listen},
	} {
		if o.flag != "" {
			*o.dst = o.flag
		}
	}
	cfg.Audit.Takeover = cfg.Audit.Takeover || c.Takeover
	cfg.Audit.JSON = cfg.Audit.JSON || c.JSON
	cfg.Metrics.AllowRemote = cfg.Metrics.AllowRemote || c.MetricsAllowRemote
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("config: flags: %w", err)
	}
	return cfg, nil
}

// abs makes a path given on the command line absolute ("" stays "").
func abs(p string) string {
	if p == "" {
		return p
	}
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
