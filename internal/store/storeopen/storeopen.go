// Package storeopen picks and opens a store backend from configuration.
//
// It lives apart from package store because the backends import store for
// its types; putting Open in store would make an import cycle. The choice of
// backends is explicit here (no init-time registry), as in the rest of
// gatehouse.
package storeopen

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/postgres"
	"github.com/gatehouse/gatehouse/internal/store/sqlite"
)

// Open opens the store named by dsn and applies pending migrations:
//
//   - "" opens the embedded SQLite store, dataDir/gatehouse.db (dataDir is
//     created with mode 0700);
//   - "postgres://…" or "postgresql://…" opens PostgreSQL;
//   - anything else is an error.
//
// Errors never contain the DSN's password: an unsupported DSN is reported
// by its scheme only, since a keyword-form string ("host=… password=…") has
// no URL structure to redact.
func Open(ctx context.Context, dsn, dataDir string) (store.Store, error) {
	switch {
	case dsn == "":
		if dataDir == "" {
			return nil, errors.New("store: no database URL and no data directory: set one of them")
		}
		s, err := sqlite.OpenDir(ctx, dataDir)
		if err != nil {
			return nil, err // not s: a nil *sqlite.Store in a non-nil interface
		}
		return s, nil
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		s, err := postgres.Open(ctx, dsn)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	scheme, _, ok := strings.Cut(dsn, "://")
	if !ok || strings.ContainsAny(scheme, " =@:/") {
		scheme = "(not a URL)"
	}
	return nil, fmt.Errorf("store: unsupported database URL (scheme %q): leave it empty for the embedded SQLite store in the data directory, or give a postgres:// URL", scheme)
}
