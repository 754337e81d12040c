package postgres

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gatehouse/gatehouse/internal/engine"
	"github.com/gatehouse/gatehouse/internal/rawconn"
)

// startup parameters that describe the connection itself rather than session
// settings; the gateway decides them, never the client.
var reservedParams = map[string]bool{"user": true, "database": true, "replication": true}

// dialUpstream connects and authenticates to the target with the gateway's
// own credentials (pgconn handles trust, cleartext, md5 and SCRAM-SHA-256 and
// TLS), keeping the client's session parameters (application_name, options,
// DateStyle…), and hands back the raw connection to relay on.
func dialUpstream(ctx context.Context, u engine.Upstream, clientParams map[string]string) (*pgconn.HijackedConn, error) {
	pc, err := connectUpstream(ctx, u, clientParams)
	if err != nil {
		return nil, err
	}
	// pgconn may have started its background reader during connect (when a
	// write took over 15 ms, e.g. under load); that goroutine can still be
	// blocked in Read on the socket and would swallow the first bytes of the
	// relayed session. SyncConn stops it and drains pgconn's buffers; only
	// then is the raw conn ours alone.
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	err = pc.SyncConn(sctx)
	cancel()
	if err != nil {
		pc.Close(ctx)
		return nil, err
	}
	hc, err := pc.Hijack()
	if err != nil {
		pc.Close(ctx)
		return nil, err
	}
	return hc, nil
}

// connectUpstream opens an authenticated pgconn to the target.
func connectUpstream(ctx context.Context, u engine.Upstream, clientParams map[string]string) (*pgconn.PgConn, error) {
	host, portStr, err := net.SplitHostPort(u.Address)
	if err != nil {
		return nil, fmt.Errorf("upstream address %q: %w", u.Address, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("upstream port %q: %w", portStr, err)
	}
	// An empty connection string would read PG* environment variables; a
	// minimal explicit one keeps the gateway's environment out of it.
	cfg, err := pgconn.ParseConfig("sslmode=disable")
	if err != nil {
		return nil, err
	}
	cfg.Host, cfg.Port = host, uint16(port)
	cfg.User, cfg.Database, cfg.Password = u.Username, u.Database, u.Password
	cfg.TLSConfig = u.TLS // nil for disable
	cfg.DialFunc = dialTCP
	cfg.Fallbacks = nil
	cfg.ConnectTimeout = 15 * time.Second
	cfg.RuntimeParams = map[string]string{}
	for k, v := range clientParams {
		if !reservedParams[k] {
			cfg.RuntimeParams[k] = v
		}
	}
	return pgconn.ConnectConfig(ctx, cfg)
}

// upstreamDialer is pgconn's default dialer (keep-alive every 5 minutes).
var upstreamDialer = &net.Dialer{KeepAlive: 5 * time.Minute}

// dialTCP dials the target's TCP connection with raw system calls for the
// relay (package rawconn); pgconn runs TLS on top when the connection asks
// for it.
func dialTCP(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := upstreamDialer.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return rawconn.Wrap(c), nil
}
