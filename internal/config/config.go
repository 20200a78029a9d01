// Package config holds the daemon's configuration: embedded defaults
// (default.toml), a TOML file that overrides them key by key, and
// validation. Unknown keys are errors, so a typo never silently keeps a
// default. The package is pure apart from Load reading its file.
package config

import (
	"bytes"
	_ "embed"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/contid/contid/internal/auditlog"
)

//go:embed default.toml
var defaults []byte

// DefaultText returns the embedded default configuration file.
func DefaultText() []byte { return bytes.Clone(defaults) }

// Config is the daemon's configuration.
type Config struct {
	LogDir     string `toml:"log_dir"`
	Socket     string `toml:"socket"`
	PinDir     string `toml:"pin_dir"`
	Source     string `toml:"source"`
	LogLevel   string `toml:"log_level"`
	NSSyscalls bool   `toml:"ns_syscalls"`
	Log        Log    `toml:"log"`
}

// Log configures the host log like auditd.conf does audit.log.
type Log struct {
	MaxLogFile       int64                `toml:"max_log_file"` // MiB
	NumLogs          int                  `toml:"num_logs"`
	MaxLogFileAction auditlog.Action      `toml:"max_log_file_action"`
	Flush            auditlog.FlushPolicy `toml:"flush"`
	Freq             int                  `toml:"freq"`
}

// Default returns the embedded defaults.
func Default() Config {
	c, err := Parse(nil, "defaults")
	if err != nil {
		panic("config: embedded defaults do not parse: " + err.Error())
	}
	return c
}

// Parse applies the TOML document b over the embedded defaults.
func Parse(b []byte, name string) (Config, error) {
	var c Config
	if _, err := toml.Decode(string(defaults), &c); err != nil {
		return c, fmt.Errorf("config: defaults: %w", err)
	}
	md, err := toml.Decode(string(b), &c)
	if err != nil {
		return Config{}, fmt.Errorf("config: %s: %w", name, err)
	}
	if extra := md.Undecoded(); len(extra) > 0 {
		keys := make([]string, len(extra))
		for i, k := range extra {
			keys[i] = k.String()
		}
		return Config{}, fmt.Errorf("config: %s: unknown keys: %s", name, strings.Join(keys, ", "))
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("config: %s: %w", name, err)
	}
	return c, nil
}

// Load reads the file at path over the defaults; an empty path means the
// defaults alone.
func Load(path string) (Config, error) {
	if path == "" {
		return Default(), nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return Parse(b, path)
}

// Validate checks every value.
func (c Config) Validate() error {
	for k, p := range map[string]string{"log_dir": c.LogDir, "socket": c.Socket, "pin_dir": c.PinDir} {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("%s %q must be an absolute path", k, p)
		}
	}
	if _, err := c.Level(); err != nil {
		return err
	}
	switch c.Source {
	case "auto", "ebpf", "proc-connector":
	default:
		return fmt.Errorf("source %q must be auto, ebpf or proc-connector", c.Source)
	}
	switch {
	case c.Log.MaxLogFile < 0 || c.Log.MaxLogFile > 1<<20:
		return fmt.Errorf("log.max_log_file %d must be 0–1048576 MiB", c.Log.MaxLogFile)
	case c.Log.NumLogs < 1 || c.Log.NumLogs > 999:
		return fmt.Errorf("log.num_logs %d must be 1–999", c.Log.NumLogs)
	case c.Log.Freq < 1 || c.Log.Freq > 1<<20:
		return fmt.Errorf("log.freq %d must be 1–1048576", c.Log.Freq)
	}
	return nil
}

// Level returns the slog level of log_level.
func (c Config) Level() (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return 0, fmt.Errorf("log_level %q must be debug, info, warn or error", c.LogLevel)
	}
	return l, nil
}

// HostLog returns the writer configuration of DIR/audit.log.
func (c Config) HostLog() auditlog.Config {
	return auditlog.Config{
		Path:      filepath.Join(c.LogDir, "audit.log"),
		MaxBytes:  c.Log.MaxLogFile << 20,
		NumLogs:   c.Log.NumLogs,
		MaxAction: c.Log.MaxLogFileAction,
		Flush:     c.Log.Flush,
		Freq:      c.Log.Freq,
	}
}

// Text writes the configuration as a TOML file.
func (c Config) Text() []byte {
	var b bytes.Buffer
	toml.NewEncoder(&b).Encode(c)
	return b.Bytes()
}
