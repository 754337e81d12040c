package checkpoint

import (
	"github.com/gatehouse/gatehouse/internal/access"
	"github.com/gatehouse/gatehouse/internal/masking"
)

// recordOutcome copies the session recording of an outcome into a statement
// event's detail. The engine took the sample from the rows the client was
// sent, already masked by the statement's plan; every value (parameters,
// sample cells, notices, the error) still passes the entity detectors here
// — all of them, whatever kinds the plan scans results for (a plan's
// narrower list is about what the client may see, not what the audit may
// keep) — so no card number, e-mail address or secret reaches the audit
// store even from a column the policy leaves unmasked.
//
// redact is set for a statement that may carry values of masked columns
// (Decision.RecordText): its parameters are recorded as redactedValue, and
// quoted values in its error and notices (PostgreSQL quotes the offending
// value: invalid input syntax for type integer: "…", Key (ssn)=(…)) are
// replaced too.
func recordOutcome(det *statementDetail, o *access.Outcome, redact bool) {
	if len(o.Params) == 0 && len(o.Sample) == 0 && len(o.Notices) == 0 && len(o.Columns) == 0 && o.Error == "" {
		return
	}
	kinds := masking.AllEntities()
	mask := func(v string) string {
		out, _ := masking.MaskEntities(v, kinds)
		return out
	}
	text := mask // errors and notices
	if redact {
		text = func(v string) string { return mask(redactQuoted(v)) }
	}
	det.Columns, det.SampleTruncated = o.Columns, o.SampleTruncated
	if o.Error != "" {
		det.Error = text(o.Error)
	}
	if len(o.Params) > 0 {
		det.Params = make([]string, len(o.Params))
		for i, p := range o.Params {
			if redact {
				det.Params[i] = redactedValue
			} else {
				det.Params[i] = mask(p)
			}
		}
	}
	if len(o.Notices) > 0 {
		det.Notices = make([]string, len(o.Notices))
		for i, n := range o.Notices {
			det.Notices[i] = text(n)
		}
	}
	if len(o.Sample) > 0 {
		det.Sample = make([][]*string, len(o.Sample))
		for i, row := range o.Sample {
			out := make([]*string, len(row))
			for j, v := range row {
				if v != nil {
					m := mask(*v)
					out[j] = &m
				}
			}
			det.Sample[i] = out
		}
	}
}
