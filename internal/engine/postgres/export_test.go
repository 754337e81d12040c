package postgres

import (
	"context"

	"github.com/gatehouse/gatehouse/internal/access"
	"github.com/gatehouse/gatehouse/internal/engine"
)

// CatalogForTest exposes the per-target catalog to the external tests,
// which own the shared test server.
type CatalogForTest struct{ *catalog }

func NewCatalogForTest(up engine.Upstream) CatalogForTest {
	return CatalogForTest{newCatalog(up)}
}

// Method resolves a result field (table OID, attnum) as RowDescription
// gives it and returns the masking method the plan gives it ("" = none).
func (c CatalogForTest) Method(oid uint32, attnum int16, m *access.MaskPlan) (string, error) {
	names, err := c.resolve(context.Background(), []field{{tableOID: oid, attnum: attnum}})
	if err != nil {
		return "", err
	}
	return string(columnMethod(names[0], m)), nil
}

func (c CatalogForTest) Invalidate() { c.invalidate() }

// SetPortalsHookForTest has f told each session's portal count after every
// Bind; nil removes it.
func SetPortalsHookForTest(f func(n int)) {
	if f == nil {
		portalsHook.Store(nil)
		return
	}
	portalsHook.Store(&f)
}

// ProbeError exposes probeError (syntax.go).
var ProbeError = probeError
