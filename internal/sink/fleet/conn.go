package fleet

import (
	"fmt"

	"github.com/nats-io/nats.go"
)

// ConnConfig says how to reach the servers. Secrets come from files only:
// a NATS .creds file (the user's JWT and nkey seed) and TLS files.
type ConnConfig struct {
	URLs        string // comma-separated
	Credentials string // .creds file (user JWT and nkey seed), "" for none
	NKeySeed    string // file of a user nkey seed (servers with nkey users), "" for none
	TLSCA       string // CA of the servers' certificates, "" for the system's
	TLSCert     string // client certificate and key, when the servers ask
	TLSKey      string
	Name        string // the connection's name on the servers
	// Host, when set, makes the replies to this connection come under
	// _INBOX_<Host>., so that the servers can let a host subscribe to its
	// own replies only (docs/fleet.md).
	Host string
}

// Connect connects to the servers and keeps reconnecting for good: the
// spool holds what comes meanwhile. With RetryOnFailedConnect, servers
// that are down at start are no error either.
func Connect(c ConnConfig, opts ...nats.Option) (*nats.Conn, error) {
	o := []nats.Option{nats.Name(c.Name), nats.MaxReconnects(-1), nats.RetryOnFailedConnect(true)}
	if c.Credentials != "" {
		o = append(o, nats.UserCredentials(c.Credentials))
	}
	if c.NKeySeed != "" {
		opt, err := nats.NkeyOptionFromSeed(c.NKeySeed)
		if err != nil {
			return nil, fmt.Errorf("fleet: nkey seed: %w", err)
		}
		o = append(o, opt)
	}
	if c.Host != "" {
		o = append(o, nats.CustomInboxPrefix(InboxPrefix(c.Host)))
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

// InboxPrefix is the prefix of the replies to host's connection.
func InboxPrefix(host string) string { return "_INBOX_" + host }
