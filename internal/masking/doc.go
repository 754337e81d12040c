// Package masking rewrites PostgreSQL result values so that a client sees a
// masked value that still decodes as the column's type, and finds sensitive
// entities (card numbers, e-mail addresses, secrets, …) inside free text.
//
// Three entry points:
//
//   - Apply masks one field value with a Method (redact, last4, hash, null,
//     email-domain), in the text or binary wire format of its type OID.
//   - RewriteDataRow rewrites a DataRow message body according to a list of
//     FieldPlan entries, copying the other fields through without allocating.
//   - Detect and MaskEntities find and mask entities in unstructured text.
//
// The package is a leaf: it knows the PostgreSQL wire encodings of a few
// dozen types, but nothing about sessions, policies or the engine. See
// README.md for the per-type behaviour of every method and the measured
// precision and recall of the detectors.
package masking
