package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/contid/contid/internal/config"
	"github.com/contid/contid/internal/daemon"
)

type daemonCmd struct {
	Config      string `help:"TOML configuration file; the embedded defaults apply without one." type:"existingfile"`
	LogDir      string `help:"Directory of audit.log (overrides log_dir)."`
	Socket      string `help:"API socket path (overrides socket)." env:"CONTID_SOCKET"`
	PinDir      string `help:"bpffs directory of pinned state (overrides pin_dir)."`
	LogLevel    string `help:"debug, info, warn or error (overrides log_level)."`
	Source      string `help:"auto, ebpf or proc-connector (overrides source)."`
	PrintConfig bool   `help:"Print the configuration in force and exit."`
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
	return daemon.Run(context.Background(), cfg, c.Config, log, daemon.Options{})
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
	}{{c.LogDir, &cfg.LogDir}, {c.Socket, &cfg.Socket}, {c.PinDir, &cfg.PinDir}, {c.LogLevel, &cfg.LogLevel}, {c.Source, &cfg.Source}} {
		if o.flag != "" {
			*o.dst = o.flag
		}
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("config: flags: %w", err)
	}
	return cfg, nil
}
