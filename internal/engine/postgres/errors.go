package postgres

import (
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/gatehouse/gatehouse/internal/engine"
)

// SQLSTATE codes gatehouse sends. Appendix A of the PostgreSQL manual.
const (
	codeInvalidPassword      = "28P01" // bad or expired token
	codeInvalidAuthSpec      = "28000" // no access, plaintext refused
	codeInvalidCatalog       = "3D000" // unknown connection (database)
	codeInsufficientPriv     = "42501" // denied by policy
	codeInvalidStatementName = "26000" // the describe the gateway injects to raise a Parse denial
	codeProtocolViolation    = "08P01"
	codeConnectionFailure    = "08006"
	codeCannotConnect        = "08001"
	codeFeatureNotSupported  = "0A000"
	codeInternal             = "XX000"
	codeAdminShutdown        = "57P01"
	codeProgramLimit         = "54000"
)

// openErrorCode maps an engine.Error class to a SQLSTATE.
func openErrorCode(err error) string {
	switch engine.CodeOf(err) {
	case engine.CodeBadToken:
		return codeInvalidPassword
	case engine.CodeNoAccess, engine.CodePlaintext:
		return codeInvalidAuthSpec
	case engine.CodeUnknownTarget:
		return codeInvalidCatalog
	case engine.CodeUnavailable:
		return codeCannotConnect
	}
	return codeInternal
}

// errorResponse encodes an ErrorResponse. severity is ERROR or FATAL.
func errorResponse(severity, code, msg, hint string) []byte {
	b, _ := (&pgproto3.ErrorResponse{
		Severity:            severity,
		SeverityUnlocalized: severity,
		Code:                code,
		Message:             msg,
		Hint:                hint,
	}).Encode(nil)
	return b
}
