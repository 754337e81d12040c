package postgres

import (
	"context"
	"slices"
	"strings"
	"time"
)

// funcEntry records whether a function name may resolve to a function
// defined in the database (see UserFunctions) and when that was read.
type funcEntry struct {
	user   bool
	loaded time.Time
}

// UserFunctions implements engine.Catalog. Answers are cached like relation
// names (catalogTTL; DDL seen on any session clears them), so a function
// created outside the gateway is seen within catalogTTL.
func (c *catalog) UserFunctions(ctx context.Context, names []string) ([]string, error) {
	var out, missing []string
	now := time.Now()
	c.mu.Lock()
	for _, n := range names {
		if e, ok := c.funcs[n]; ok && now.Sub(e.loaded) <= catalogTTL {
			if e.user && !slices.Contains(out, n) {
				out = append(out, n)
			}
		} else if !slices.Contains(missing, n) {
			missing = append(missing, n)
		}
	}
	c.mu.Unlock()
	if len(missing) == 0 {
		return out, nil
	}
	gen := c.gen.Load()
	plain := make([]string, len(missing))
	for i, n := range missing {
		_, plain[i] = splitFunc(n)
	}
	list, params := inList(plain)
	// C and internal functions cannot run SQL by themselves (short of SPI
	// in an extension's C code, which is out of reach either way); every
	// other language can.
	rows, err := c.query(ctx, "SELECT DISTINCT p.proname, n.nspname FROM pg_catalog.pg_proc p "+
		"JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace "+
		"JOIN pg_catalog.pg_language l ON l.oid = p.prolang "+
		"WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND l.lanname NOT IN ('c', 'internal') "+
		"AND p.proname IN ("+list+")", params...)
	if err != nil {
		return nil, err
	}
	now = time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	keep := c.gen.Load() == gen
	if keep && len(c.funcs)+len(missing) > maxCachedNames {
		c.funcs = map[string]funcEntry{}
	}
	for _, n := range missing {
		schema, name := splitFunc(n)
		user := false
		for _, r := range rows {
			if string(r[0]) == name && (schema == "" || string(r[1]) == schema) {
				user = true
				break
			}
		}
		if keep {
			c.funcs[n] = funcEntry{user: user, loaded: now}
		}
		if user {
			out = append(out, n)
		}
	}
	return out, nil
}

// splitFunc splits a function name as the grammar gives it ("f",
// "schema.f", "db.schema.f") into its schema ("" when not given) and name.
func splitFunc(n string) (schema, name string) {
	parts := strings.Split(n, ".")
	name = parts[len(parts)-1]
	if len(parts) > 1 {
		schema = parts[len(parts)-2]
	}
	return schema, name
}
