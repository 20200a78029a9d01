package fleet

import (
	"fmt"

	"github.com/nats-io/nats.go"
)

// ConnConfig says how to reach the servers. Secrets come from files only:
// a NATS .creds file (the user's JWT and nkey seed) and TLS files.
type ConnConfig struct {
	URLs        string // comma-separated
	Credentials string // .creds file, "" for none
	TLSCA       string // CA of the servers' certificates, "" for the system's
	TLSCert     string // client certificate and key, when the servers ask
	TLSKey      string
	Name        string // the connection's name on the servers
}

// Connect connects to the servers and keeps reconnecting for good: the
// spool holds what comes meanwhile. With RetryOnFailedConnect, servers
// that are down at start are no error either.
func Connect(c ConnConfig, opts ...nats.Option) (*nats.Conn, error) {
	o := []nats.Option{nats.Name(c.Name), nats.MaxReconnects(-1), nats.RetryOnFailedConnect(true)}
	if c.Credentials != "" {
		o = append(o, nats.UserCredentials(c.Credentials))
	}
	if c.TLSCA != "" {
		o = append(o, nats.RootCAs(c.TLSCA))
	}
	if c.TLSCert != "" {
		o = append(o, nats.ClientCert(c.TLSCert, c.TLSKey))
	}
	nc, err := nats.Connect(c.URLs, append(o, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("fleet: connect %s: %w", c.URLs, err)
	}
	return nc, nil
}
