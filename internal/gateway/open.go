package gateway

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/gatehouse/gatehouse/internal/access"
	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/engine"
	"github.com/gatehouse/gatehouse/internal/identity"
	"github.com/gatehouse/gatehouse/internal/store"
)

var _ engine.Opener = (*Gateway)(nil)

// sessionOpened is the Detail of session.opened / session.refused events.
type sessionDetail struct {
	Protocol        string         `json:"protocol"`
	ClientAddr      string         `json:"client_addr"`
	ClientUser      string         `json:"client_user,omitempty"`
	ApplicationName string         `json:"application_name,omitempty"`
	TLS             bool           `json:"tls"`
	Groups          []string       `json:"groups,omitempty"`
	ClientID        string         `json:"client_id,omitempty"`
	Act             []access.Actor `json:"act,omitempty"`
	DurationMS      float64        `json:"duration_ms,omitempty"` // session.closed
	Error           string         `json:"error,omitempty"`       // session.closed: why it ended
}

// Open implements engine.Opener: verify the token, resolve the connection,
// check the access list, decrypt the upstream secret. The order matters: an
// unauthenticated caller learns nothing about which connections exist.
func (g *Gateway) Open(ctx context.Context, req engine.OpenRequest) (*engine.Opened, error) {
	start := time.Now()
	det := &sessionDetail{Protocol: req.Protocol, ClientAddr: addrString(req.ClientAddr), ClientUser: req.ClientUser,
		ApplicationName: req.Params["application_name"], TLS: req.TLS}
	refuse := func(p *access.Principal, err *engine.Error) (*engine.Opened, error) {
		g.metrics.Sessions.WithLabelValues(req.Protocol, "refused").Inc()
		e := audit.Event{Type: audit.TypeSessionRefused, Connection: req.Target, Decision: "deny", Reason: err.Message, DetailValue: det}
		if p != nil {
			e.Issuer, e.Subject = p.Issuer, p.Subject
		}
		g.audit.Append(e)
		g.log.Info("session refused", "protocol", req.Protocol, "connection", req.Target, "client", det.ClientAddr, "reason", err.Message)
		return nil, err
	}
	p, err := g.verifier.Verify(ctx, req.Token)
	if err != nil {
		var te *identity.TokenError
		if errors.As(err, &te) && te.Unavailable() {
			return refuse(nil, &engine.Error{Code: engine.CodeUnavailable, Message: "cannot verify the token right now: " + te.Reason, Err: err})
		}
		msg := "invalid token"
		if errors.As(err, &te) {
			msg = "invalid token: " + te.Reason
		}
		return refuse(nil, &engine.Error{Code: engine.CodeBadToken, Message: msg, Err: err})
	}
	det.Groups, det.ClientID, det.Act = p.Groups, p.ClientID, p.Act
	conn, err := g.store.GetConnection(ctx, req.Target)
	if errors.Is(err, store.ErrNotFound) || (err == nil && conn.Type != req.Protocol) {
		return refuse(p, engine.Errorf(engine.CodeUnknownTarget, "connection %q does not exist", req.Target))
	}
	if err != nil {
		return refuse(p, &engine.Error{Code: engine.CodeInternal, Message: "gatehouse could not read its connection store", Err: err})
	}
	if !p.MatchesAny(conn.Access) && !g.grantAllows(p, conn.Name, conn.Access) {
		return refuse(p, engine.Errorf(engine.CodeNoAccess, "%s is not allowed to use connection %q", describe(p), conn.Name))
	}
	up, err := g.upstream(conn)
	if err != nil {
		g.log.Error("connection unusable", "connection", conn.Name, "err", err)
		return refuse(p, &engine.Error{Code: engine.CodeInternal, Message: fmt.Sprintf("connection %q is misconfigured on the gateway; the operator can see why in the log", conn.Name), Err: err})
	}
	sess := &access.Session{ID: newID(), Principal: p, Target: access.Target{Name: conn.Name, Type: conn.Type},
		ClientAddr: det.ClientAddr, ClientUser: req.ClientUser, ApplicationName: det.ApplicationName, TLS: req.TLS, StartedAt: start}
	g.audit.Append(audit.Event{Type: audit.TypeSessionOpened, SessionID: sess.ID, Issuer: p.Issuer, Subject: p.Subject,
		Connection: conn.Name, Decision: "allow", DetailValue: det})
	g.metrics.Sessions.WithLabelValues(req.Protocol, "opened").Inc()
	g.metrics.SessionsActive.WithLabelValues(req.Protocol).Inc()
	g.metrics.HandshakeSeconds.WithLabelValues(req.Protocol).Observe(time.Since(start).Seconds())
	g.log.Info("session opened", "session", sess.ID, "subject", p.Subject, "connection", conn.Name, "client", det.ClientAddr, "tls", req.TLS)
	return &engine.Opened{Session: sess, Upstream: up, Checkpoint: g.cp, Close: func(err error) {
		g.metrics.SessionsActive.WithLabelValues(req.Protocol).Dec()
		g.cp.EndSession(sess.ID)
		cd := &sessionDetail{Protocol: req.Protocol, ClientAddr: det.ClientAddr, DurationMS: float64(time.Since(start).Microseconds()) / 1000}
		if err != nil {
			cd.Error = err.Error()
		}
		g.audit.Append(audit.Event{Type: audit.TypeSessionClosed, SessionID: sess.ID, Issuer: p.Issuer, Subject: p.Subject,
			Connection: conn.Name, DetailValue: cd})
		g.log.Info("session closed", "session", sess.ID, "reason", cd.Error)
	}}, nil
}

// upstream builds the dial parameters for a stored connection, decrypting
// its secret. The plaintext lives only in the returned value.
func (g *Gateway) upstream(c store.Connection) (engine.Upstream, error) {
	u := engine.Upstream{Address: c.Address, Database: c.Database, Username: c.Username, TLSMode: c.TLSMode}
	if len(c.Secret) > 0 {
		pw, err := g.box.Open(c.Secret, secretAAD(c.Name))
		if err != nil {
			return u, fmt.Errorf("decrypting the password of connection %q: %w", c.Name, err)
		}
		u.Password = string(pw)
	}
	host, _, err := net.SplitHostPort(c.Address)
	if err != nil {
		return u, err
	}
	switch c.TLSMode {
	case "", "disable":
		u.TLSMode = "disable"
	case "require":
		// Encrypted but unauthenticated, as libpq's sslmode=require.
		u.TLS = &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}
	case "verify-full":
		u.TLS = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
		if c.TLSCA != "" {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM([]byte(c.TLSCA)) {
				return u, fmt.Errorf("connection %q: tls_ca holds no PEM certificate", c.Name)
			}
			u.TLS.RootCAs = pool
		}
	default:
		return u, fmt.Errorf("connection %q: unknown tls mode %q", c.Name, c.TLSMode)
	}
	return u, nil
}

// secretAAD binds a sealed password to its connection (the admin API seals
// with the same value).
func secretAAD(name string) []byte { return []byte("connection:" + name) }

func describe(p *access.Principal) string {
	return fmt.Sprintf("subject %q (groups %v)", p.Subject, p.Groups)
}

func newID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}
