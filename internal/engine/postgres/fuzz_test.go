package postgres

import "github.com/gatehouse/gatehouse/internal/pgtest"

// SharedServer returns the PostgreSQL server shared by the test binary (nil
// when none runs). The external test package, which owns TestMain, sets it.
var SharedServer = func() *pgtest.Server { return nil }
