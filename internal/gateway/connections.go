package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse/gatehouse/internal/store"
)

// syncConnections makes the store's config-sourced connections equal to the
// config file's: upsert each (password sealed), delete ones no longer in the
// file. Connections created through the API are left alone, unless the file
// now defines one of the same name, in which case the file wins.
func (g *Gateway) syncConnections(ctx context.Context) error {
	existing, err := g.store.ListConnections(ctx)
	if err != nil {
		return fmt.Errorf("store: listing connections: %w", err)
	}
	inFile := map[string]bool{}
	now := time.Now().UTC()
	for _, c := range g.cfg.Connections {
		inFile[c.Name] = true
		sc := store.Connection{Name: c.Name, Type: c.Type, Address: c.Address, Database: c.Database, Username: c.Username,
			TLSMode: c.TLS, Access: c.Access, Source: "config", CreatedAt: now, UpdatedAt: now}
		if c.TLSCA != "" {
			ca, err := c.TLSCA.Resolve()
			if err != nil {
				return fmt.Errorf("connections %s: tls_ca: %w", c.Name, err)
			}
			sc.TLSCA = ca
		}
		if c.Password != "" {
			pw, err := c.Password.Resolve()
			if err != nil {
				return fmt.Errorf("connections %s: password: %w", c.Name, err)
			}
			if sc.Secret, err = g.box.Seal([]byte(pw), secretAAD(c.Name)); err != nil {
				return err
			}
		}
		if err := g.store.PutConnection(ctx, sc); err != nil {
			return fmt.Errorf("store: saving connection %s: %w", c.Name, err)
		}
	}
	for _, c := range existing {
		if c.Source == "config" && !inFile[c.Name] {
			if err := g.store.DeleteConnection(ctx, c.Name); err != nil {
				return fmt.Errorf("store: removing connection %s: %w", c.Name, err)
			}
			g.log.Info("removed connection no longer in the config file", "connection", c.Name)
		}
	}
	return nil
}

// accessCache holds each connection's access list for the per-statement
// check, so the data path never waits on the store. It is refreshed when the
// admin API changes connections and periodically (other gateway nodes may
// share the store).
type accessCache struct {
	st  store.Store
	log *slog.Logger
	mu  sync.RWMutex
	m   map[string][]string
	// version changes with any access list, so decisions reused by
	// prepared statements are made again (checkpoint.WithAccessVersion).
	version atomic.Uint64
}

func newAccessCache(st store.Store, log *slog.Logger) *accessCache {
	c := &accessCache{st: st, log: log, m: map[string][]string{}}
	go func() {
		for range time.Tick(10 * time.Second) {
			if err := c.refresh(context.Background()); err != nil {
				log.Error("refreshing access lists", "err", err)
			}
		}
	}()
	return c
}

func (c *accessCache) refresh(ctx context.Context) error {
	conns, err := c.st.ListConnections(ctx)
	if err != nil {
		return err
	}
	m := make(map[string][]string, len(conns))
	for _, cn := range conns {
		m[cn.Name] = cn.Access
	}
	c.mu.Lock()
	if !maps.EqualFunc(c.m, m, slices.Equal) {
		c.version.Add(1)
	}
	c.m = m
	c.mu.Unlock()
	return nil
}

func (c *accessCache) lookup(name string) ([]string, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	sel, ok := c.m[name]
	return sel, ok
}
