package adminapi

import (
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/access"
	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/store"
)

// ConnectionRequest is the body of POST /api/v1/connections.
type ConnectionRequest struct {
	Name     string   `json:"name"`
	Type     string   `json:"type"`               // "postgres"; "" means postgres
	Address  string   `json:"address"`            // host:port; the port defaults to 5432
	Database string   `json:"database,omitempty"` // upstream database; "" = Name
	Username string   `json:"username"`
	Password string   `json:"password,omitempty"` // sealed before storing; "" = no password (e.g. trust auth)
	TLS      string   `json:"tls,omitempty"`      // disable | require | verify-full; "" = disable on loopback, else require
	TLSCA    string   `json:"tls_ca,omitempty"`   // PEM or "file:/path" for verify-full; "" = system roots
	Access   []string `json:"access"`             // principal selectors allowed to connect; empty = nobody
}

// Connection is how the API shows a stored connection. It never carries the
// password, only whether one is set.
type Connection struct {
	Name        string    `json:"name"`
	Type        string    `json:"type"`
	Address     string    `json:"address"`
	Database    string    `json:"database"`
	Username    string    `json:"username"`
	PasswordSet bool      `json:"password_set"`
	TLS         string    `json:"tls"`
	TLSCA       string    `json:"tls_ca,omitempty"`
	Access      []string  `json:"access"`
	Source      string    `json:"source"` // "config" or "api"
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// ConnectionList is the response of GET /api/v1/connections.
type ConnectionList struct {
	Connections []Connection `json:"connections"`
}

func viewConnection(c store.Connection) Connection {
	acc := c.Access
	if acc == nil {
		acc = []string{}
	}
	return Connection{
		Name: c.Name, Type: c.Type, Address: c.Address, Database: c.Database, Username: c.Username,
		PasswordSet: len(c.Secret) > 0, TLS: c.TLSMode, TLSCA: c.TLSCA, Access: acc,
		Source: c.Source, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
	}
}

// Sources of a connection.
const (
	SourceConfig = "config"
	SourceAPI    = "api"
)

// Limits on connection fields. Names follow PostgreSQL's 63-byte identifier
// limit so a connection name can always be used as a dbname.
const (
	maxNameLen     = 63
	maxFieldLen    = 255
	maxPasswordLen = 1024
	maxCALen       = 128 << 10
	maxSelectors   = 256
)

// ValidName reports whether s is a valid connection name: 1–63 characters
// of [A-Za-z0-9_-].
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > maxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Validate checks a connection request the way the config loader checks a
// configured connection, filling in the same defaults (type postgres,
// port 5432, database = name, tls disable on loopback and require elsewhere).
// The error names the field and says what is wrong.
func (c *ConnectionRequest) Validate() error {
	if !ValidName(c.Name) {
		return fmt.Errorf("name %q is invalid: use 1-%d characters of A-Z, a-z, 0-9, _ and -", c.Name, maxNameLen)
	}
	if c.Type == "" {
		c.Type = "postgres"
	}
	if c.Type != "postgres" {
		return fmt.Errorf("type %q is not supported: use postgres", c.Type)
	}
	if c.Address != "" && (!strings.Contains(c.Address, ":") || strings.HasSuffix(c.Address, "]")) {
		c.Address += ":5432" // "db.internal" or "[::1]": no port given
	}
	if err := validAddress(c.Address); err != nil {
		return err
	}
	if c.Database == "" {
		c.Database = c.Name
	}
	if err := validField("database", c.Database); err != nil {
		return err
	}
	if err := validField("username", c.Username); err != nil {
		return err
	}
	if len(c.Password) > maxPasswordLen {
		return fmt.Errorf("password is longer than %d bytes", maxPasswordLen)
	}
	if strings.IndexByte(c.Password, 0) >= 0 {
		return errors.New("password must not contain a NUL byte") // the PG wire protocol cannot carry it
	}
	switch c.TLS {
	case "":
		c.TLS = defaultTLSMode(c.Address)
	case "disable", "require", "verify-full":
	default:
		return fmt.Errorf("tls %q is invalid: use disable, require or verify-full", c.TLS)
	}
	if c.TLSCA != "" {
		if c.TLS != "verify-full" {
			return errors.New("tls_ca is only used with tls verify-full")
		}
		if err := validCA(c.TLSCA); err != nil {
			return err
		}
	}
	if len(c.Access) > maxSelectors {
		return fmt.Errorf("access has more than %d selectors", maxSelectors)
	}
	for _, s := range c.Access {
		if !access.ValidSelector(s) {
			return fmt.Errorf(`access selector %q is invalid: use "group:NAME", "sub:SUBJECT", "client:ID" or "*"`, s)
		}
	}
	return nil
}

// defaultTLSMode mirrors config.DefaultTLSMode: local development databases
// rarely have certificates and loopback traffic never leaves the host.
func defaultTLSMode(address string) string {
	host, _, _ := net.SplitHostPort(address)
	if strings.EqualFold(host, "localhost") {
		return "disable"
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return "disable"
	}
	return "require"
}

func validAddress(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil || host == "" {
		return fmt.Errorf("address %q is invalid: use host:port", a)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("address %q has an invalid port: use 1-65535", a)
	}
	if len(a) > maxFieldLen || strings.ContainsAny(host, " \t\r\n/") {
		return fmt.Errorf("address %q is invalid: use host:port", a)
	}
	return nil
}

func validField(name, v string) error {
	if v == "" {
		return fmt.Errorf("%s is required", name)
	}
	if len(v) > maxFieldLen || strings.ContainsAny(v, "\x00\r\n") {
		return fmt.Errorf("%s is invalid: at most %d bytes, no NUL or line breaks", name, maxFieldLen)
	}
	return nil
}

func validCA(ca string) error {
	if len(ca) > maxCALen {
		return fmt.Errorf("tls_ca is larger than %d bytes", maxCALen)
	}
	if path, ok := strings.CutPrefix(ca, "file:"); ok {
		if path == "" {
			return errors.New("tls_ca file: reference has no path")
		}
		return nil
	}
	block, _ := pem.Decode([]byte(ca))
	if block == nil || block.Type != "CERTIFICATE" {
		return errors.New(`tls_ca must be a PEM CERTIFICATE block or a "file:/path" reference`)
	}
	return nil
}

// SealAAD is the additional authenticated data a connection's password is
// sealed with. The gateway opens it with the same value, so a ciphertext
// copied to another connection's row does not decrypt.
func SealAAD(name string) []byte { return []byte("connection:" + name) }

func (s *server) listConnections(w http.ResponseWriter, r *http.Request) {
	cs, err := s.o.Store.ListConnections(r.Context())
	if err != nil {
		s.internal(w, r, "list connections", err)
		return
	}
	out := ConnectionList{Connections: make([]Connection, 0, len(cs))}
	for _, c := range cs {
		out.Connections = append(out.Connections, viewConnection(c))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) getConnection(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	c, err := s.o.Store.GetConnection(r.Context(), name)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("connection %q does not exist", name))
		return
	}
	if err != nil {
		s.internal(w, r, "get connection", err)
		return
	}
	writeJSON(w, http.StatusOK, viewConnection(c))
}

func (s *server) createConnection(w http.ResponseWriter, r *http.Request) {
	var req ConnectionRequest
	if err := decodeJSON(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	if err := req.Validate(); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_connection", err.Error())
		return
	}
	ctx := r.Context()
	old, err := s.o.Store.GetConnection(ctx, req.Name)
	replaced := err == nil
	switch {
	case replaced && old.Source == SourceConfig:
		writeError(w, http.StatusConflict, "conflict", fmt.Sprintf(
			"connection %q is defined in the config file; change it there (API changes would be lost on the next reload)", req.Name))
		return
	case err != nil && !errors.Is(err, store.ErrNotFound):
		s.internal(w, r, "get connection", err)
		return
	}
	now := s.now().UTC()
	c := store.Connection{
		Name: req.Name, Type: req.Type, Address: req.Address, Database: req.Database,
		Username: req.Username, TLSMode: req.TLS, TLSCA: req.TLSCA, Access: req.Access,
		Source: SourceAPI, CreatedAt: now, UpdatedAt: now,
	}
	if replaced {
		c.CreatedAt = old.CreatedAt
	}
	if req.Password != "" {
		if s.o.Sealer == nil {
			writeError(w, http.StatusServiceUnavailable, "no_credential_key",
				"gatehouse has no credential encryption key configured, so it cannot store a password")
			return
		}
		c.Secret, err = s.o.Sealer.Seal([]byte(req.Password), SealAAD(req.Name))
		if err != nil {
			s.internal(w, r, "seal password", err)
			return
		}
	}
	if err := s.o.Store.PutConnection(ctx, c); err != nil {
		s.internal(w, r, "put connection", err)
		return
	}
	action := "connection.create"
	if replaced {
		action = "connection.replace"
	}
	s.record(r, action, c.Name, map[string]any{
		"address": c.Address, "database": c.Database, "username": c.Username, "tls": c.TLSMode,
		"access": c.Access, "password_set": len(c.Secret) > 0, "replaced": replaced,
	})
	s.changed()
	status := http.StatusCreated
	if replaced {
		status = http.StatusOK
	}
	w.Header().Set("Location", APIPrefix+"/connections/"+c.Name)
	writeJSON(w, status, viewConnection(c))
}

func (s *server) deleteConnection(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	ctx := r.Context()
	c, err := s.o.Store.GetConnection(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("connection %q does not exist", name))
		return
	}
	if err != nil {
		s.internal(w, r, "get connection", err)
		return
	}
	if c.Source == SourceConfig {
		writeError(w, http.StatusConflict, "conflict", fmt.Sprintf(
			"connection %q is defined in the config file; remove it there", name))
		return
	}
	err = s.o.Store.DeleteConnection(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("connection %q does not exist", name))
		return
	}
	if err != nil {
		s.internal(w, r, "delete connection", err)
		return
	}
	s.record(r, "connection.delete", name, nil)
	s.changed()
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) changed() {
	if s.o.OnConnectionsChanged != nil {
		s.o.OnConnectionsChanged()
	}
}

// record emits an admin audit event for a change made by the caller. detail
// must never hold a secret.
func (s *server) record(r *http.Request, action, connection string, detail map[string]any) {
	if s.o.Audit == nil {
		return
	}
	p := principalFrom(r.Context())
	d := map[string]any{"action": action}
	for k, v := range detail {
		d[k] = v
	}
	if p.ClientID != "" {
		d["client_id"] = p.ClientID
	}
	if len(p.Act) > 0 {
		d["act"] = p.Act
	}
	raw, err := json.Marshal(d)
	if err != nil {
		raw = nil
	}
	s.o.Audit(audit.Event{
		Time:       s.now().UTC(),
		Type:       audit.TypeAdmin,
		Issuer:     p.Issuer,
		Subject:    p.Subject,
		Connection: connection,
		Decision:   access.Allow.String(),
		Reason:     action + " by sub:" + p.Subject,
		Detail:     raw,
	})
}

// internal logs a server-side failure and answers 500 without its details,
// which may name internal hosts or files.
func (s *server) internal(w http.ResponseWriter, r *http.Request, what string, err error) {
	s.log.ErrorContext(r.Context(), "admin api failure", slog.String("op", what), slog.String("error", err.Error()))
	writeError(w, http.StatusInternalServerError, "internal", "gatehouse failed to "+what+"; see the server log")
}
