package engine

import "context"

// Catalog answers what statement text alone cannot: which relations a
// statement names are views (or materialized views), what is behind them,
// and which base-table columns their output columns carry. Engines that can
// read their target's catalog bind it to checkpoints that use one
// (CatalogBinder), so policies and masking see through views.
type Catalog interface {
	// Views describes the views among the named relations, keyed by the
	// name as given. A name that is not a view is absent. A name without
	// a schema stands for every relation of that name in any schema (the
	// session's search_path is not known), so several views may answer
	// it. An error means the catalog could not be read: callers fail
	// closed.
	Views(ctx context.Context, names []Relation) (map[Relation][]View, error)

	// UserFunctions returns those of names (functions as the grammar names
	// them, possibly schema-qualified) that may resolve to a function
	// defined in the database rather than built in: some function of that
	// name outside pg_catalog and information_schema, written in a
	// language that can run queries (SQL, PL/pgSQL, …; not C or internal).
	// Such a function can read a masked column and return it in a result
	// field that carries no source column. An error means the catalog could
	// not be read: callers fail closed.
	UserFunctions(ctx context.Context, names []string) ([]string, error)
}

// CatalogBinder is a Checkpoint that can use a target's Catalog: the engine
// calls WithCatalog once per session and uses the checkpoint it returns.
type CatalogBinder interface {
	WithCatalog(Catalog) Checkpoint
}

// View is a view or materialized view, resolved through nested views down
// to base tables.
type View struct {
	Schema, Name string
	// Behind are the relations the view reads, through nested views
	// (views included), schema-qualified: writing through an
	// auto-updatable view writes them, reading it reads them.
	Behind []Relation
	// Columns are the output columns by name, in order.
	Columns []ViewColumn
	// Functions are the functions the definition calls, through nested
	// views: reading the view calls them.
	Functions []string
}

// Relation is a relation name; Schema is "" when not given.
type Relation struct{ Schema, Name string }

// ColumnRef is a schema-qualified base-table column.
type ColumnRef struct{ Schema, Table, Column string }

// ViewColumn is one output column of a view.
type ViewColumn struct {
	Name string
	// Source is the base-table column the output passes through unchanged;
	// nil for a computed value.
	Source *ColumnRef
	// From are the base-table columns the value may carry (just Source
	// for a pass-through). When the definition cannot be traced, every
	// column of every table behind the view.
	From []ColumnRef
}
