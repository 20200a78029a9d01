package cli

import (
	"strings"
	"testing"
)

// TestDaemonMetricsFlags: --metrics-listen overrides metrics.listen, and a
// non-loopback address needs --metrics-allow-remote.
func TestDaemonMetricsFlags(t *testing.T) {
	c := daemonCmd{MetricsListen: "0.0.0.0:9464"}
	if _, err := c.load(); err == nil || !strings.Contains(err.Error(), "not a loopback address") {
		t.Fatalf("0.0.0.0 without --metrics-allow-remote: %v", err)
	}
	c.MetricsAllowRemote = true
	cfg, err := c.load()
	if err != nil || cfg.Metrics.Listen != "0.0.0.0:9464" || !cfg.Metrics.AllowRemote {
		t.Fatalf("with --metrics-allow-remote: %+v %v", cfg.Metrics, err)
	}
	c = daemonCmd{MetricsListen: "/run/contid/metrics.sock"}
	if cfg, err := c.load(); err != nil || cfg.Metrics.Listen != "/run/contid/metrics.sock" {
		t.Fatalf("socket path: %+v %v", cfg.Metrics, err)
	}
}
