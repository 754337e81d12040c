// Package sqlcommon holds what the SQLite and PostgreSQL stores share: value
// normalisation and the audit query builder, so both backends answer a
// Filter with the same SQL shape and pass one conformance suite.
package sqlcommon

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/audit"
)

// DefaultLimit is the number of events ListEvents returns when the filter
// gives no limit.
const DefaultLimit = 100

// Micro normalises t to what both backends store: UTC with microsecond
// precision.
func Micro(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// CeilMicro rounds t up to the next microsecond, so "at or after t" keeps
// its meaning for stored (truncated) times.
func CeilMicro(t time.Time) time.Time {
	m := Micro(t)
	if m.Before(t) {
		m = m.Add(time.Microsecond)
	}
	return m
}

// EncodeAccess stores an access list as a JSON array ("[]" when empty).
func EncodeAccess(a []string) (string, error) {
	if len(a) == 0 {
		return "[]", nil
	}
	b, err := json.Marshal(a)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// DecodeAccess reverses EncodeAccess; an empty list decodes to nil.
func DecodeAccess(s string) ([]string, error) {
	var a []string
	if err := json.Unmarshal([]byte(s), &a); err != nil {
		return nil, fmt.Errorf("stored access list is not a JSON array: %w", err)
	}
	if len(a) == 0 {
		return nil, nil
	}
	return a, nil
}

// NilIfEmpty maps empty byte slices to nil, so "no secret"/"no detail" is
// always stored as NULL.
func NilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// EventColumns is the column list of audit_events in Event field order.
const EventColumns = "seq, time, type, session_id, issuer, subject, connection, decision, reason, statement, detail, node, node_seq, prev_hash, hash"

// EventColumnCount is the number of EventColumns.
const EventColumnCount = 15

// PruneMarkerColumns is the column list of audit_prune_markers.
const PruneMarkerColumns = "id, node, node_seq, hash, time, key_id, signature"

// CheckpointColumns is the column list of audit_checkpoints.
const CheckpointColumns = "id, node, node_seq, hash, time, key_id, signature"

// ChainHeadQuery selects a node's last chained event (the partial unique
// index on (node, node_seq) answers it).
const ChainHeadQuery = "SELECT node_seq, hash FROM audit_events WHERE node = %s AND node_seq > 0 ORDER BY node_seq DESC LIMIT 1"

// CheckpointQuery builds the SELECT for f; ph renders the nth placeholder.
func CheckpointQuery(f audit.CheckpointFilter, ph func(n int) string) (string, []any) {
	args := []any{f.AfterID}
	q := "SELECT " + CheckpointColumns + " FROM audit_checkpoints WHERE id > " + ph(1)
	if f.Node != "" {
		args = append(args, f.Node)
		q += " AND node = " + ph(2)
	}
	if f.Newest {
		return q + " ORDER BY node_seq DESC LIMIT 1", args
	}
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	return q + " ORDER BY id LIMIT " + strconv.Itoa(limit), args
}

// EventQuery builds the SELECT for f. ph renders the nth (1-based)
// placeholder; timeArg converts a time to the backend's stored form.
// Without AfterSeq or Ascending rows come newest first (seq DESC) so LIMIT
// keeps the most recent N; otherwise they come oldest first, so a follower paging
// forward never skips events. Callers put them in ascending order with
// Ascending.
func EventQuery(f audit.Filter, ph func(n int) string, timeArg func(time.Time) any) (string, []any) {
	where, args := eventWhere(f, ph, timeArg)
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	var b strings.Builder
	b.WriteString("SELECT " + EventColumns + " FROM audit_events" + where)
	order := " ORDER BY seq DESC LIMIT "
	if ascending(f) {
		order = " ORDER BY seq ASC LIMIT "
	}
	b.WriteString(order + strconv.Itoa(limit))
	return b.String(), args
}

// eventWhere is the WHERE clause ("" for none) and arguments selecting f.
func eventWhere(f audit.Filter, ph func(n int) string, timeArg func(time.Time) any) (string, []any) {
	var where []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.Replace(cond, "?", ph(len(args)), 1))
	}
	if f.Principal != "" {
		add("subject = ?", f.Principal)
	}
	if f.Connection != "" {
		add("connection = ?", f.Connection)
	}
	if f.Decision != "" {
		add("decision = ?", f.Decision)
	}
	if f.Type != "" {
		add("type = ?", f.Type)
	}
	if f.SessionID != "" {
		add("session_id = ?", f.SessionID)
	}
	if f.Node != "" {
		add("node = ?", f.Node)
	}
	if !f.Since.IsZero() {
		add("time >= ?", timeArg(CeilMicro(f.Since)))
	}
	if f.AfterSeq > 0 {
		add("seq > ?", f.AfterSeq)
	}
	if f.BeforeSeq > 0 {
		add("seq < ?", f.BeforeSeq)
	}
	if !f.Before.IsZero() {
		add("time < ?", timeArg(CeilMicro(f.Before)))
	}
	if f.NodeSeqTo > 0 {
		add("node_seq <= ?", f.NodeSeqTo)
		where = append(where, "node_seq > 0")
	}
	if len(where) == 0 {
		return "", args
	}
	return " WHERE " + strings.Join(where, " AND "), args
}

// CountQuery builds the SELECT count(*) of the events f selects, ignoring
// f.Limit.
func CountQuery(f audit.Filter, ph func(n int) string, timeArg func(time.Time) any) (string, []any) {
	where, args := eventWhere(f, ph, timeArg)
	return "SELECT count(*) FROM audit_events" + where, args
}

// Ascending puts the rows of EventQuery(f) into ascending seq order.
func Ascending(f audit.Filter, ev []audit.Event) []audit.Event {
	if !ascending(f) {
		slices.Reverse(ev)
	}
	return ev
}

func ascending(f audit.Filter) bool { return f.AfterSeq > 0 || f.Ascending }
