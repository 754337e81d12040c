// Package gateway wires gatehouse together: it loads the configured
// connections into the store, builds the identity verifier (and the dev
// issuer), the audit log, the checkpoint and the protocol engines, and runs
// the listeners and the admin API. It is the only package that knows every
// engine; the list is explicit below, with no init-time registry.
package gateway

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/internal/adminapi"
	"github.com/gatehouse/gatehouse/internal/approval"
	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/audit/chain"
	"github.com/gatehouse/gatehouse/internal/audit/journal"
	"github.com/gatehouse/gatehouse/internal/auditsink"
	"github.com/gatehouse/gatehouse/internal/checkpoint"
	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/internal/credential"
	"github.com/gatehouse/gatehouse/internal/engine"
	"github.com/gatehouse/gatehouse/internal/engine/postgres"
	"github.com/gatehouse/gatehouse/internal/identity"
	"github.com/gatehouse/gatehouse/internal/metrics"
	"github.com/gatehouse/gatehouse/internal/policy"
	"github.com/gatehouse/gatehouse/internal/rawconn"
	"github.com/gatehouse/gatehouse/internal/sqlinspect"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/storeopen"
	"github.com/gatehouse/gatehouse/internal/webhook"
)

// Options configure a gateway.
type Options struct {
	Config *config.Config
	// Dev turns on the dev issuer, a generated TLS certificate and a
	// generated secret key when none is configured. Never in production.
	Dev    bool
	Logger *slog.Logger // nil = slog.Default()
	// AcceptAuditBreak starts the gateway although the audit chain's
	// startup check failed, opening a new chain segment with a signed
	// marker of the break (serve --audit-accept-break).
	AcceptAuditBreak bool
}

// Gateway is a running gatehouse.
type Gateway struct {
	cfg       *config.Config
	dev       bool
	log       *slog.Logger
	store     store.Store
	box       *credential.Box
	maskKey   []byte // keys the "hash" masking method; derived from the secret key
	verifier  *identity.Verifier
	devIss    *identity.DevIssuer
	audit     *audit.Log
	journal   *journal.Journal  // nil = audit.durability off
	sinks     *auditsink.Fanout // audit.sinks; fed after the store accepts events
	auditPub  ed25519.PublicKey // nil = checkpoints are not signed
	auditKey  ed25519.PrivateKey
	auditNode string
	// acceptAuditBreak is Options.AcceptAuditBreak.
	acceptAuditBreak bool
	// stopRetention stops the audit.retention loop; nil when none runs.
	stopRetention func()
	// pruneMu: prunes take it exclusively, audit exports shared, so an
	// export is never cut by a prune between its markers and its events.
	pruneMu     sync.RWMutex
	metrics     *metrics.Metrics
	cp          *checkpoint.Checkpoint
	acl         *accessCache
	policies    *policy.Reloadable // nil when no policies are configured
	approvals   *approval.Service
	grants      *approval.Grants
	reviewHooks []*webhook.Notifier
	basePol     *policy.Set // the policies of gatehouse.yaml (kept across reloads)
	tls         *tls.Config
	apiTLS      bool
	handler     http.Handler

	engines   []listenerEngine
	listeners []net.Listener
	apiSrv    *http.Server
	addrs     map[string]string

	sessCtx    context.Context // cancelled to end live sessions at shutdown
	sessCancel context.CancelFunc
	sessions   sync.WaitGroup
	stopOnce   sync.Once
}

type listenerEngine struct {
	addr string
	eng  engine.Engine
}

// New builds a gateway from its configuration. Nothing listens until Start.
func New(ctx context.Context, o Options) (_ *Gateway, err error) {
	cfg := o.Config
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	g := &Gateway{cfg: cfg, dev: o.Dev, log: log, addrs: map[string]string{}, acceptAuditBreak: o.AcceptAuditBreak}
	defer func() {
		if err != nil {
			g.closeStorage()
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data_dir %s: %w", cfg.DataDir, err)
	}
	if err := resolveSecrets(cfg, o.Dev); err != nil {
		return nil, err
	}
	if err := g.loadKey(); err != nil {
		return nil, err
	}
	if err := g.loadTLS(); err != nil {
		return nil, err
	}
	var dsn string // "" = SQLite in data_dir
	if cfg.Store != "" {
		if dsn, err = cfg.Store.Resolve(); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	if g.store, err = storeopen.Open(ctx, dsn, cfg.DataDir); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if err := g.openAudit(ctx); err != nil {
		return nil, err
	}
	g.metrics = metrics.New(g.audit)
	if err := g.metrics.Registry.Register(g.sinks.Collector()); err != nil {
		return nil, fmt.Errorf("audit.sinks: metrics: %w", err)
	}
	if err := g.startRetention(); err != nil {
		return nil, fmt.Errorf("audit.retention: %w", err)
	}
	if err := g.syncConnections(ctx); err != nil {
		return nil, err
	}
	g.acl = newAccessCache(g.store, log)
	if err := g.acl.refresh(ctx); err != nil {
		return nil, err
	}
	g.cp = checkpoint.New(g.audit, g.acl.lookup, g.metrics).WithAccessVersion(g.acl.version.Load)
	if g.journal != nil {
		g.cp.WithJournal(g.journal, int64(cfg.Audit.JournalMaxPending), log.With("component", "audit"))
		g.metrics.RegisterDurable(g.cp)
	}
	if err := g.loadPolicies(ctx); err != nil {
		return nil, err
	}
	if err := g.buildApprovals(ctx); err != nil {
		return nil, err
	}
	if err := g.buildIdentity(); err != nil {
		return nil, err
	}
	g.sessCtx, g.sessCancel = context.WithCancel(context.Background())
	if cfg.Listen.Postgres != "" {
		g.engines = append(g.engines, listenerEngine{addr: cfg.Listen.Postgres, eng: postgres.New(postgres.Config{
			Opener:               g,
			TLS:                  g.tls,
			AllowPlaintextRemote: cfg.Postgres.AllowPlaintextRemote,
			MaxMessageSize:       int(cfg.Postgres.MaxMessageSize),
			MaskKey:              g.maskKey,
			Recording:            postgres.Recording{Rows: cfg.Audit.Recording.Rows, Bytes: int(cfg.Audit.Recording.Bytes)},
			Logger:               log,
		})})
	}
	var devHandler http.Handler
	if g.devIss != nil {
		devHandler = g.devIss
	}
	g.handler = adminapi.New(adminapi.Options{
		Store: g.store, Verifier: g.verifier, Sealer: g.box, Admins: cfg.Admins,
		DevIssuer: devHandler, Metrics: g.metrics.Handler(), Ready: g.ready,
		Audit: g.audit.Append, Logger: log,
		ReloadPolicies: g.ReloadPolicies,
		Reviews:        g.approvals,
		Grants:         g.grants,
		AuditPublicKey: g.auditPub,
		AuditHeads:     func() []audit.Head { return []audit.Head{g.audit.Head()} },
		PruneAudit:     g.pruneAuditFunc(),
		HoldPrunes: func() func() {
			g.pruneMu.RLock()
			return g.pruneMu.RUnlock
		},

		OnConnectionsChanged: func() {
			if err := g.acl.refresh(context.Background()); err != nil {
				log.Error("refreshing access lists", "err", err)
			}
		},
	})
	return g, nil
}

// resolveSecrets checks every secret reference up front so a missing env
// var fails at startup, naming the key. In dev mode a missing secret_key is
// fine: loadKey generates one.
func resolveSecrets(cfg *config.Config, dev bool) error {
	err := cfg.ResolveSecrets()
	if err == nil || !dev {
		return err
	}
	var keep []error
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		var ce *config.Error
		if errors.As(e, &ce) && ce.Key == "secret_key" {
			continue
		}
		keep = append(keep, e)
	}
	return errors.Join(keep...)
}

// loadPolicies compiles the policies of gatehouse.yaml and of the policies
// file. Statement facts come from libpg_query, whose first use takes seconds:
// warm it now rather than on a client's first statement.
func (g *Gateway) loadPolicies(ctx context.Context) error {
	if g.cfg.Policies == nil && g.cfg.PoliciesFile == "" {
		return nil
	}
	base, err := policy.Parse(g.cfg.Path, g.cfg.Policies)
	if err != nil {
		return err
	}
	set := base
	if g.cfg.PoliciesFile != "" {
		fs, err := policy.ParseFile(g.cfg.PoliciesFile)
		if err != nil {
			return err
		}
		if set, err = policy.Merge(base, fs); err != nil {
			return err
		}
	}
	if err := g.checkPolicyConnections(ctx, set); err != nil {
		return err
	}
	sqlinspect.Warm()
	g.basePol = base
	g.policies = policy.NewReloadable(set)
	g.cp.WithPolicies(g.policies, nil)
	g.log.Info("policies loaded", "policies", set.Names())
	return nil
}

func (g *Gateway) checkPolicyConnections(ctx context.Context, set *policy.Set) error {
	conns, err := g.store.ListConnections(ctx)
	if err != nil {
		return err
	}
	known := map[string]bool{}
	for _, c := range conns {
		known[c.Name] = true
	}
	return set.CheckConnections(func(n string) bool { return known[n] })
}

// ReloadPolicies re-reads the policies file (SIGHUP, POST
// /api/v1/policies/reload). Live sessions use the new policies from their
// next statement; on any error the current policies stay in force.
func (g *Gateway) ReloadPolicies() error {
	if g.policies == nil || g.cfg.PoliciesFile == "" {
		return errors.New("no policies_file is configured, so there is nothing to reload (policies in gatehouse.yaml need a restart)")
	}
	fs, err := policy.ParseFile(g.cfg.PoliciesFile)
	if err != nil {
		g.audit.Append(audit.Event{Type: audit.TypeAdmin, Decision: "deny", Reason: "policy reload failed: " + err.Error()})
		return err
	}
	set, err := policy.Merge(g.basePol, fs)
	if err == nil {
		err = g.checkPolicyConnections(context.Background(), set)
	}
	if err != nil {
		g.audit.Append(audit.Event{Type: audit.TypeAdmin, Decision: "deny", Reason: "policy reload failed: " + err.Error()})
		return err
	}
	g.policies.Store(set)
	g.audit.Append(audit.Event{Type: audit.TypeAdmin, Decision: "allow", Reason: "policies reloaded: " + strings.Join(set.Names(), ", ")})
	g.log.Info("policies reloaded", "policies", set.Names())
	return nil
}

// auditStateFile is the audit chain's local state file in data_dir: the
// newest checkpoint this node signed, which the startup check compares the
// store with.
const auditStateFile = "audit-chain-state.json"

// openAudit starts the audit Log on this node's hash chain, resuming it
// from the store, with the checkpoint signing key.
func (g *Gateway) openAudit(ctx context.Context) error {
	a := g.cfg.Audit
	node := a.Node
	if node == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			return fmt.Errorf("audit.node is not set and the host name is unknown (%v): set audit.node", err)
		}
		node = h
	}
	var key ed25519.PrivateKey
	switch {
	case a.SigningKey != "":
		v, err := a.SigningKey.Resolve()
		if err == nil {
			key, err = chain.ParsePrivateKey([]byte(v))
		}
		if err != nil {
			return fmt.Errorf("audit.signing_key: %w", err)
		}
	case g.dev:
		path := filepath.Join(g.cfg.DataDir, "audit-signing.key")
		var err error
		if key, err = chain.LoadOrCreateKeyFile(path); err != nil {
			return fmt.Errorf("dev audit signing key: %w", err)
		}
		g.log.Warn("DEV MODE: audit checkpoints are signed with a generated key in " + path + ", next to the store it vouches for; configure audit.signing_key in production")
	default:
		g.log.Warn("audit.signing_key is not configured: the audit chain is written but no checkpoint is signed, so deleting its newest events goes unnoticed; see docs/audit.md")
	}
	if a.Retention > 0 && key == nil {
		return errors.New("audit.retention needs audit.signing_key: pruning writes a signed prune marker so the remaining chain stays verifiable")
	}
	g.auditKey, g.auditNode = key, node
	var err error
	if g.sinks, err = g.buildAuditSinks(); err != nil {
		return err
	}
	var recovered journal.Recovery
	var stored func([]uint64)
	if a.Durability == config.DurabilityJournal {
		if g.journal, recovered, err = g.openJournal(); err != nil {
			return err
		}
		stored = g.ackJournal
	}
	g.audit, err = audit.Open(ctx, g.store, audit.Options{Node: node, QueueSize: a.QueueSize, Logger: g.log.With("component", "audit"),
		SigningKey: key, CheckpointEvery: a.CheckpointEvery, CheckpointInterval: time.Duration(a.CheckpointInterval),
		Stored: stored, OnStored: g.sinks.Send,
		StateFile: filepath.Join(g.cfg.DataDir, auditStateFile), AcceptBreak: g.acceptAuditBreak})
	if err != nil {
		return err
	}
	if err := g.recoverJournal(ctx, node, recovered); err != nil {
		return err
	}
	h := g.audit.Head()
	attrs := []any{"node", node, "resumed_at_node_seq", h.NodeSeq}
	if key != nil {
		g.auditPub = key.Public().(ed25519.PublicKey)
		attrs = append(attrs, "key_id", chain.KeyID(g.auditPub))
	}
	g.log.Info("audit chain", attrs...)
	return nil
}

// loadKey loads the key that encrypts upstream secrets at rest.
func (g *Gateway) loadKey() error {
	ref := string(g.cfg.SecretKey)
	key, err := credential.LoadKey(ref)
	if err != nil && g.dev {
		path := filepath.Join(g.cfg.DataDir, "secret.key")
		g.log.Warn("DEV MODE: no secret key configured (" + err.Error() + "); using a generated key in " + path + ". Set GATEHOUSE_SECRET_KEY in production.")
		key, err = credential.LoadOrCreateKeyFile(path)
	}
	if err != nil {
		return fmt.Errorf("secret_key: %w (set GATEHOUSE_SECRET_KEY to 32 random bytes, base64-encoded, e.g. `openssl rand -base64 32`)", err)
	}
	// A separate key for masking pseudonyms, so hashes never relate to the
	// encryption key and stay stable across restarts.
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("gatehouse masking key v1"))
	g.maskKey = mac.Sum(nil)
	g.box, err = credential.NewBox(key)
	return err
}

// loadTLS loads the configured certificate, or in dev mode generates one.
func (g *Gateway) loadTLS() error {
	t := g.cfg.TLS
	if t.Enabled() {
		cert, err := t.Cert.Resolve()
		if err != nil {
			return fmt.Errorf("tls.cert: %w", err)
		}
		key, err := t.Key.Resolve()
		if err != nil {
			return fmt.Errorf("tls.key: %w", err)
		}
		pair, err := tls.X509KeyPair([]byte(cert), []byte(key))
		if err != nil {
			return fmt.Errorf("tls: cert/key: %w", err)
		}
		g.tls = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
		g.apiTLS = true
		return nil
	}
	if !g.dev {
		return nil
	}
	pair, err := loadOrCreateDevCert(g.cfg.DataDir)
	if err != nil {
		return fmt.Errorf("dev TLS certificate: %w", err)
	}
	g.log.Warn("DEV MODE: PostgreSQL TLS uses a generated self-signed certificate in " + g.cfg.DataDir + "; configure tls.cert/tls.key in production")
	g.tls = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	return nil
}

func (g *Gateway) buildIdentity() error {
	var issuers []identity.IssuerConfig
	for _, is := range g.cfg.Identity.Issuers {
		issuers = append(issuers, identity.IssuerConfig{URL: is.URL, Audience: is.Audience,
			GroupsClaim: is.GroupsClaim, ClientIDClaim: is.ClientIDClaim})
	}
	g.verifier = identity.NewVerifier(issuers, identity.Options{})
	if !g.cfg.Identity.DevIssuer && !g.dev {
		return nil
	}
	key, err := identity.LoadOrCreateDevKey(filepath.Join(g.cfg.DataDir, "dev-issuer.key"))
	if err != nil {
		return fmt.Errorf("dev issuer key: %w", err)
	}
	var clients []identity.DevClient
	for _, c := range g.cfg.Identity.DevClients {
		sec, err := c.Secret.Resolve()
		if err != nil {
			return fmt.Errorf("identity.dev_clients %s: %w", c.ID, err)
		}
		clients = append(clients, identity.DevClient{ID: c.ID, Secret: sec, Groups: c.Groups})
	}
	iss := g.cfg.BaseURL(g.apiTLS) + "/dev"
	g.devIss, err = identity.NewDevIssuer(iss, key, identity.DevOptions{Audience: g.cfg.Identity.Audience, Clients: clients})
	if err != nil {
		return err
	}
	g.verifier.AddStaticIssuer(g.devIss.Config(), g.devIss.Keys)
	g.log.Warn("DEV MODE: the built-in dev OIDC issuer is ON at " + iss + ": any local process can mint tokens for any subject. Never enable it in production.")
	return nil
}

func (g *Gateway) ready(ctx context.Context) error {
	if err := g.store.Ping(ctx); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if err := g.audit.Healthy(); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if err := g.cp.DurableErr(); err != nil {
		return fmt.Errorf("statements are refused: %w", err)
	}
	return nil
}

// Handler is the admin API / health / metrics / dev issuer handler.
func (g *Gateway) Handler() http.Handler { return g.handler }

// Addr returns the bound address of a listener ("api", "postgres") after Start.
func (g *Gateway) Addr(name string) string { return g.addrs[name] }

// Start binds every listener and serves in the background.
func (g *Gateway) Start() error {
	apiL, err := net.Listen("tcp", g.cfg.Listen.API)
	if err != nil {
		return fmt.Errorf("listen.api %s: %w", g.cfg.Listen.API, err)
	}
	g.listeners = append(g.listeners, apiL)
	g.addrs["api"] = apiL.Addr().String()
	for _, le := range g.engines {
		l, err := net.Listen("tcp", le.addr)
		if err != nil {
			g.closeListeners()
			return fmt.Errorf("listen.%s %s: %w", le.eng.Protocol(), le.addr, err)
		}
		g.listeners = append(g.listeners, l)
		g.addrs[le.eng.Protocol()] = l.Addr().String()
		go g.accept(l, le.eng)
		g.log.Info("listening", "protocol", le.eng.Protocol(), "addr", l.Addr().String(), "tls", g.tls != nil)
	}
	g.apiSrv = &http.Server{Handler: g.handler, ReadHeaderTimeout: 10 * time.Second}
	if g.apiTLS {
		g.apiSrv.TLSConfig = g.tls
		go g.apiSrv.ServeTLS(apiL, "", "")
	} else {
		go g.apiSrv.Serve(apiL)
	}
	g.log.Info("listening", "protocol", "http", "addr", apiL.Addr().String(), "url", g.cfg.BaseURL(g.apiTLS))
	return nil
}

func (g *Gateway) accept(l net.Listener, eng engine.Engine) {
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			g.log.Error("accept", "protocol", eng.Protocol(), "err", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetNoDelay(true)
			tc.SetKeepAlive(true)
		}
		// Raw system calls on the data path (TLS, when the client asks for
		// it, runs on top): see package rawconn.
		c = rawconn.Wrap(c)
		g.sessions.Add(1)
		go func() {
			defer g.sessions.Done()
			eng.Serve(g.sessCtx, c)
		}()
	}
}

func (g *Gateway) closeListeners() {
	for _, l := range g.listeners {
		l.Close()
	}
}

// Shutdown stops accepting, lets live sessions finish until ctx ends, then
// ends them with an admin-shutdown error, flushes the audit log and closes
// the store.
func (g *Gateway) Shutdown(ctx context.Context) error {
	var err error
	g.stopOnce.Do(func() {
		g.closeListeners()
		done := make(chan struct{})
		go func() { g.sessions.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			g.log.Warn("drain timeout: ending live sessions")
			g.sessCancel()
			<-done
		}
		g.sessCancel()
		if g.apiSrv != nil {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			g.apiSrv.Shutdown(sctx)
			cancel()
		}
		err = g.closeStorage()
	})
	return err
}

func (g *Gateway) closeStorage() error {
	var errs []error
	for _, n := range g.reviewHooks {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := n.Close(ctx); err != nil {
			g.log.Warn("webhook notifications still queued at shutdown", "webhook", n.Name(), "err", err)
		}
		cancel()
	}
	if g.stopRetention != nil {
		g.stopRetention()
	}
	if g.audit != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		errs = append(errs, g.audit.Close(ctx))
		cancel()
	}
	if g.journal != nil {
		// After the audit log drained: with every decision acknowledged,
		// the journal deletes its segment.
		errs = append(errs, g.journal.Close())
	}
	errs = append(errs, g.closeAuditSinks())
	if g.store != nil {
		errs = append(errs, g.store.Close())
	}
	return errors.Join(errs...)
}
