package fleet

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/contid/contid/internal/testing/testwait"
)

// pki writes a CA and, signed by it, a certificate and key for 127.0.0.1
// (server) or a client, as PEM files in dir; it returns their paths.
type pki struct {
	dir    string
	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey
	CA     string
}

func newPKI(t *testing.T, name string) *pki {
	t.Helper()
	p := &pki{dir: t.TempDir()}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	p.caCert, _ = x509.ParseCertificate(der)
	p.caKey = key
	p.CA = p.write(t, name+"-ca.pem", "CERTIFICATE", der)
	return p
}

func (p *pki) write(t *testing.T, file, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(p.dir, file)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// issue returns the paths of a certificate and key the CA signed.
func (p *pki) issue(t *testing.T, name string, server bool) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &k.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return p.write(t, name+".pem", "CERTIFICATE", der), p.write(t, name+"-key.pem", "EC PRIVATE KEY", kder)
}

// TestTLS: with servers that require TLS and a client certificate, Connect
// with the configured CA, certificate and key files gets through and a
// message goes round; without the client certificate, or trusting another
// CA than the one that signed the server, it does not.
func TestTLS(t *testing.T) {
	ca := newPKI(t, "fleet")
	srvCert, srvKey := ca.issue(t, "server", true)
	cliCert, cliKey := ca.issue(t, "host-a", false)
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: srvCert, KeyFile: srvKey, CaFile: ca.CA, Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	c := startCluster(t, 1, func(o *server.Options) {
		o.TLSConfig, o.TLS, o.TLSVerify = tc, true, true
	})
	once := []nats.Option{nats.RetryOnFailedConnect(false), nats.MaxReconnects(0)}

	nc, err := Connect(ConnConfig{URLs: c.urls(), TLSCA: ca.CA, TLSCert: cliCert, TLSKey: cliKey, Name: "tls"}, once...)
	if err != nil {
		t.Fatalf("with the configured files: %v", err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync("contid.tls")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("contid.tls", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if m, err := sub.NextMsg(testwait.Idle()); err != nil || string(m.Data) != "x" {
		t.Fatalf("round trip over TLS: %v %v", m, err)
	}
	if !nc.TLSRequired() {
		t.Fatal("connection is not TLS")
	}

	if nc, err := Connect(ConnConfig{URLs: c.urls(), TLSCA: ca.CA, Name: "no client cert"}, once...); err == nil {
		nc.Close()
		t.Fatal("connected without a client certificate")
	}
	other := newPKI(t, "other")
	if nc, err := Connect(ConnConfig{URLs: c.urls(), TLSCA: other.CA, TLSCert: cliCert, TLSKey: cliKey, Name: "wrong CA"}, once...); err == nil {
		nc.Close()
		t.Fatal("connected trusting a CA that did not sign the server")
	}
}
