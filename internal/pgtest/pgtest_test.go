package pgtest

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestStartSCRAM(t *testing.T) {
	s := Start(t, Options{})
	s.Exec(t, "postgres", "CREATE DATABASE orders")
	c, err := pgx.Connect(context.Background(), s.DSN("orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var m string
	if err := c.QueryRow(context.Background(), "select current_setting('password_encryption')").Scan(&m); err != nil || m != "scram-sha-256" {
		t.Fatalf("got %q %v", m, err)
	}
}
