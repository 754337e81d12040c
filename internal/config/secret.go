package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"strings"
)

// Secret is a reference to a secret value: "env:NAME" (an environment
// variable) or "file:/path" (a file's contents, one trailing newline
// removed). Some keys (store) also accept a literal value.
//
// A Secret never shows its value when printed, logged or marshalled: it
// shows the reference, or "[redacted]" for a literal.
type Secret string

// maxSecretFile bounds how much of a file: reference is read, so a mistaken
// path like /dev/zero fails instead of exhausting memory.
const maxSecretFile = 1 << 20

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Kind returns "env", "file", "literal", or "" for an unset secret.
func (s Secret) Kind() string {
	switch {
	case s == "":
		return ""
	case strings.HasPrefix(string(s), "env:"):
		return "env"
	case strings.HasPrefix(string(s), "file:"):
		return "file"
	}
	return "literal"
}

// IsRef reports whether s is an env: or file: reference.
func (s Secret) IsRef() bool {
	k := s.Kind()
	return k == "env" || k == "file"
}

// checkRef reports a syntax problem with a reference; it does not look at
// the environment or the file system.
func (s Secret) checkRef() error {
	switch s.Kind() {
	case "env":
		name := string(s[len("env:"):])
		if !envNameRE.MatchString(name) {
			return fmt.Errorf("env: reference needs a variable name of letters, digits and _ (got %q)", string(s))
		}
	case "file":
		if len(s) == len("file:") {
			return errors.New("file: reference needs a path")
		}
		if strings.ContainsRune(string(s), 0) {
			return errors.New("file: path contains a NUL byte")
		}
	}
	return nil
}

// Resolve returns the secret's value. An unset variable, an unreadable file
// and an empty value are errors whose text names the variable or file but
// never contains a secret.
func (s Secret) Resolve() (string, error) {
	if err := s.checkRef(); err != nil {
		return "", err
	}
	switch s.Kind() {
	case "":
		return "", errors.New("no value configured")
	case "env":
		name := string(s[len("env:"):])
		v, ok := os.LookupEnv(name)
		if !ok {
			return "", fmt.Errorf("env var %s is not set", name)
		}
		if v == "" {
			return "", fmt.Errorf("env var %s is set but empty", name)
		}
		return v, nil
	case "file":
		path := string(s[len("file:"):])
		f, err := os.Open(path)
		if err != nil {
			return "", fmt.Errorf("cannot read secret file: %w", err)
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
		if err != nil {
			return "", fmt.Errorf("cannot read secret file %s: %w", path, err)
		}
		if len(b) > maxSecretFile {
			return "", fmt.Errorf("secret file %s is larger than %d bytes", path, maxSecretFile)
		}
		// Editors and `echo` add a final newline that is never part of
		// the secret; anything else is kept exactly.
		b = bytes.TrimSuffix(b, []byte("\n"))
		b = bytes.TrimSuffix(b, []byte("\r"))
		if len(b) == 0 {
			return "", fmt.Errorf("secret file %s is empty", path)
		}
		return string(b), nil
	}
	return string(s), nil
}

// String shows the reference, "[redacted]" for a literal, "" when unset.
func (s Secret) String() string {
	if s.Kind() == "literal" {
		return "[redacted]"
	}
	return string(s)
}

// GoString keeps %#v from printing a literal.
func (s Secret) GoString() string { return fmt.Sprintf("config.Secret(%q)", s.String()) }

// LogValue keeps slog from printing a literal.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText keeps encoding/json and friends from printing a literal.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }
