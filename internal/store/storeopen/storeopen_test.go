package storeopen

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/internal/pgtest"
	"github.com/gatehouse/gatehouse/internal/store/postgres"
	"github.com/gatehouse/gatehouse/internal/store/sqlite"
)

func TestOpenSQLite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s, err := Open(t.Context(), "", dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, ok := s.(*sqlite.Store); !ok {
		t.Fatalf("got %T, want *sqlite.Store", s)
	}
	if _, err := os.Stat(filepath.Join(dir, sqlite.FileName)); err != nil {
		t.Fatal(err)
	}
}

func TestOpenPostgres(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	db := srv.CreateDB(t)
	for _, scheme := range []string{"postgres://", "postgresql://"} {
		dsn := scheme + strings.TrimPrefix(srv.DSN(db), "postgres://")
		s, err := Open(t.Context(), dsn, "")
		if err != nil {
			t.Fatalf("%s: %v", scheme, err)
		}
		if _, ok := s.(*postgres.Store); !ok {
			t.Fatalf("got %T, want *postgres.Store", s)
		}
		if err := s.Ping(t.Context()); err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
}

func TestOpenErrors(t *testing.T) {
	for _, dsn := range []string{"mysql://u:pw-xyzzy@h/db", "sqlite:///tmp/x.db", "host=localhost password=xyzzy"} {
		_, err := Open(t.Context(), dsn, t.TempDir())
		if err == nil {
			t.Errorf("%q accepted", dsn)
			continue
		}
		if strings.Contains(err.Error(), "xyzzy") {
			t.Errorf("error reveals the DSN: %v", err)
		}
	}
	if _, err := Open(t.Context(), "", ""); err == nil {
		t.Error("empty dsn and data dir accepted")
	}
}
