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
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/contid/contid/internal/sink/auditlog"
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
	// MaxContainersPerOwner bounds the live containers one orchestrator
	// without CAP_AUDIT_CONTROL owns (engine.Config.MaxPerOwner); 0: none.
	MaxContainersPerOwner int        `toml:"max_containers_per_owner"`
	Log                   Log        `toml:"log"`
	Audit                 Audit      `toml:"audit"`
	Containers            Containers `toml:"containers"`

	Metrics Metrics `toml:"metrics"`
	Fleet   Fleet   `toml:"fleet"`

	// SearchIndex keeps the host log's search index while writing it.
	SearchIndex bool `toml:"search_index"`
}

// Containers configures the per-container logs: each one's limits, and how
// many logs of dropped containers are kept.
type Containers struct {
	Log
	// KeepDropped is how many dropped containers' log directories are
	// kept (DIR/containers/dropped/<contid>-<drop time>); the oldest
	// beyond it are removed. 0 removes a container's log at its drop.
	KeepDropped int `toml:"keep_dropped"`
	// KeepDroppedDays removes them once dropped this many days ago
	// (event time); 0: no age limit.
	KeepDroppedDays int `toml:"keep_dropped_days"`
}

// Metrics configures the Prometheus endpoint (off by default).
type Metrics struct {
	// Listen is "" (off), host:port with a loopback IP or localhost, or
	// the absolute path of a unix socket (mode 0600).
	Listen string `toml:"listen"`
	// AllowRemote permits a TCP address that is not loopback. The counters
	// reveal the activity of the host and its containers (events, exec
	// rates, losses), so they stay local unless asked.
	AllowRemote bool `toml:"allow_remote"`
}

// Endpoint returns where the metrics are served: network "" when off,
// "unix" for a socket path, "tcp" for an address (localhost becomes
// 127.0.0.1). A non-loopback address is an error unless AllowRemote.
func (m Metrics) Endpoint() (network, address string, err error) {
	switch {
	case m.Listen == "":
		return "", "", nil
	case strings.HasPrefix(m.Listen, "/"):
		return "unix", filepath.Clean(m.Listen), nil
	}
	host, port, err := net.SplitHostPort(m.Listen)
	if err != nil {
		return "", "", fmt.Errorf("metrics.listen %q must be host:port or an absolute socket path: %w", m.Listen, err)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || (p == 0 && port != "0") {
		return "", "", fmt.Errorf("metrics.listen %q: port %q must be 0–65535", m.Listen, port)
	}
	if host == "localhost" {
		host = "127.0.0.1"
	}
	ip, err := netip.ParseAddr(host)
	if host != "" && err != nil {
		return "", "", fmt.Errorf("metrics.listen %q: host must be an IP address or localhost (a name would depend on the resolver at start)", m.Listen)
	}
	if (host == "" || !ip.IsLoopback()) && !m.AllowRemote {
		return "", "", fmt.Errorf("metrics.listen %q is not a loopback address: the counters reveal the host's and its containers' activity; "+
			"set metrics.allow_remote (--metrics-allow-remote) to serve them beyond this host", m.Listen)
	}
	return "tcp", net.JoinHostPort(host, port), nil
}

// Fleet configures the stream route to NATS JetStream (docs/fleet.md).
type Fleet struct {
	Route        string `toml:"route"`
	URLs         string `toml:"urls"` // comma-separated, as nats.Connect takes them
	Host         string `toml:"host"`
	StreamPrefix string `toml:"stream_prefix"`
	CreateStream bool   `toml:"create_stream"`
	Replicas     int    `toml:"replicas"` // of the stream create_stream makes
	Registry     bool   `toml:"registry"` // keep the host's containers in the registry bucket
	Credentials  string `toml:"credentials"`
	NKeySeed     string `toml:"nkey_seed"`
	TLSCA        string `toml:"tls_ca"`
	TLSCert      string `toml:"tls_cert"`
	TLSKey       string `toml:"tls_key"`
	SpoolDir     string `toml:"spool_dir"`
	SpoolMax     int64  `toml:"spool_max"` // MiB
	SpoolAction  string `toml:"spool_action"`
	SpoolFsync   bool   `toml:"spool_fsync"`
	SpoolCopy    bool   `toml:"spool_copy"`
	JSON         bool   `toml:"json"`
}

func (f Fleet) validate() error {
	if f.Route == "" {
		return nil
	}
	switch {
	case len(f.URLs) == 0:
		return fmt.Errorf("fleet.urls: the servers of fleet.route %q are missing", f.Route)
	case f.SpoolMax < 1 || f.SpoolMax > 1<<20:
		return fmt.Errorf("fleet.spool_max %d must be 1–1048576 MiB", f.SpoolMax)
	case f.StreamPrefix == "" || strings.ContainsAny(f.StreamPrefix, ".*> \t/\\"):
		return fmt.Errorf("fleet.stream_prefix %q must be a word without . * > / \\ or spaces", f.StreamPrefix)
	case (f.TLSCert == "") != (f.TLSKey == ""):
		return fmt.Errorf("fleet.tls_cert and fleet.tls_key go together")
	case f.Replicas < 1 || f.Replicas > 5:
		return fmt.Errorf("fleet.replicas %d must be 1–5", f.Replicas)
	}
	switch f.SpoolAction {
	case "block", "drop_oldest", "drop_new":
	default:
		return fmt.Errorf("fleet.spool_action %q must be block, drop_oldest or drop_new", f.SpoolAction)
	}
	for k, p := range map[string]string{"fleet.credentials": f.Credentials, "fleet.nkey_seed": f.NKeySeed, "fleet.tls_ca": f.TLSCA, "fleet.tls_cert": f.TLSCert, "fleet.tls_key": f.TLSKey, "fleet.spool_dir": f.SpoolDir} {
		if (p != "" || k == "fleet.spool_dir") && !filepath.IsAbs(p) {
			return fmt.Errorf("%s %q must be an absolute path", k, p)
		}
	}
	return nil
}

// Audit configures where kernel audit records come from and what is done
// with them (spec §5.3, §6).
type Audit struct {
	Mode            string `toml:"mode"`
	Takeover        bool   `toml:"takeover"`
	Rules           string `toml:"rules"`
	Filter          string `toml:"filter"`
	BacklogLimit    uint32 `toml:"backlog_limit"`
	BacklogWaitTime uint32 `toml:"backlog_wait_time"`
	JSON            bool   `toml:"json"`
	TimeoutMS       int    `toml:"timeout_ms"`
	MaxOpen         int    `toml:"max_open_container_logs"`
	BatchMS         int    `toml:"batch_ms"`
}

// Log configures the host log like auditd.conf does audit.log.
type Log struct {
	MaxLogFile       int64                `toml:"max_log_file"` // MiB
	NumLogs          int                  `toml:"num_logs"`
	MaxLogFileAction auditlog.Action      `toml:"max_log_file_action"`
	Flush            auditlog.FlushPolicy `toml:"flush"`
	Freq             int                  `toml:"freq"`
	DiskFullQueue    int64                `toml:"disk_full_queue"` // KiB; 0: none
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
	switch c.Audit.Mode {
	case "auto", "primary", "listener", "plugin", "off":
	default:
		return fmt.Errorf("audit.mode %q must be auto, primary, listener, plugin or off", c.Audit.Mode)
	}
	for k, p := range map[string]string{"audit.rules": c.Audit.Rules, "audit.filter": c.Audit.Filter} {
		if p != "" && !filepath.IsAbs(p) {
			return fmt.Errorf("%s %q must be an absolute path", k, p)
		}
	}
	switch {
	case c.Audit.TimeoutMS < 10 || c.Audit.TimeoutMS > 60000:
		return fmt.Errorf("audit.timeout_ms %d must be 10–60000", c.Audit.TimeoutMS)
	case c.Audit.BatchMS < 0 || c.Audit.BatchMS > 1000:
		return fmt.Errorf("audit.batch_ms %d must be 0–1000", c.Audit.BatchMS)
	case c.Audit.MaxOpen < 1 || c.Audit.MaxOpen > 65536:
		return fmt.Errorf("audit.max_open_container_logs %d must be 1–65536", c.Audit.MaxOpen)
	case c.Audit.BacklogLimit > 1<<24:
		return fmt.Errorf("audit.backlog_limit %d must be at most 16777216", c.Audit.BacklogLimit)
	}
	if _, _, err := c.Metrics.Endpoint(); err != nil {
		return err
	}
	switch {
	case c.MaxContainersPerOwner < 0 || c.MaxContainersPerOwner > 1<<20:
		return fmt.Errorf("max_containers_per_owner %d must be 0–1048576", c.MaxContainersPerOwner)
	case c.Containers.KeepDropped < 0 || c.Containers.KeepDropped > 1<<20:
		return fmt.Errorf("containers.keep_dropped %d must be 0–1048576", c.Containers.KeepDropped)
	case c.Containers.KeepDroppedDays < 0 || c.Containers.KeepDroppedDays > 36500:
		return fmt.Errorf("containers.keep_dropped_days %d must be 0–36500", c.Containers.KeepDroppedDays)
	}
	if err := c.Fleet.validate(); err != nil {
		return err
	}
	if err := c.Containers.validate("containers"); err != nil {
		return err
	}
	return c.Log.validate("log")
}

func (l Log) validate(sect string) error {
	switch {
	case l.MaxLogFile < 0 || l.MaxLogFile > 1<<20:
		return fmt.Errorf("%s.max_log_file %d must be 0–1048576 MiB", sect, l.MaxLogFile)
	case l.NumLogs < 1 || l.NumLogs > 999:
		return fmt.Errorf("%s.num_logs %d must be 1–999", sect, l.NumLogs)
	case l.Freq < 1 || l.Freq > 1<<20:
		return fmt.Errorf("%s.freq %d must be 1–1048576", sect, l.Freq)
	case l.DiskFullQueue < 0 || l.DiskFullQueue > 1<<20:
		return fmt.Errorf("%s.disk_full_queue %d must be 0–1048576 KiB", sect, l.DiskFullQueue)
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
func (c Config) HostLog() auditlog.Config { return c.Log.writer(filepath.Join(c.LogDir, "audit.log")) }

// JSONLog returns the writer configuration of DIR/audit.json (JSON lines),
// which follows the host log's limits.
func (c Config) JSONLog() auditlog.Config { return c.Log.writer(filepath.Join(c.LogDir, "audit.json")) }

// ContainersDir is DIR/containers, where the per-container logs are.
func (c Config) ContainersDir() string { return filepath.Join(c.LogDir, "containers") }

// ContainerLog returns the writer configuration of a container's own log,
// DIR/containers/<contid>/audit.log, under the [containers] limits.
func (c Config) ContainerLog(id uint64) auditlog.Config {
	return c.Containers.writer(filepath.Join(c.LogDir, "containers", strconv.FormatUint(id, 10), "audit.log"))
}

func (l Log) writer(path string) auditlog.Config {
	return auditlog.Config{
		Path:      path,
		MaxBytes:  l.MaxLogFile << 20,
		NumLogs:   l.NumLogs,
		MaxAction: l.MaxLogFileAction,
		Flush:     l.Flush,
		Freq:      l.Freq,
		// 0 here means no queue; auditlog's zero value is its default.
		QueueBytes: queueBytes(l.DiskFullQueue),
	}
}

// Text writes the configuration as a TOML file.
func (c Config) Text() []byte {
	var b bytes.Buffer
	toml.NewEncoder(&b).Encode(c)
	return b.Bytes()
}

func queueBytes(kib int64) int64 {
	if kib == 0 {
		return -1
	}
	return kib << 10
}
