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
func recordOutcome(det *statementDetail, d access.Decision, o *access.Outcome) {
	if len(o.Params) == 0 && len(o.Sample) == 0 && len(o.Notices) == 0 && len(o.Columns) == 0 && o.Error == "" {
		return
	}
	kinds := masking.AllEntities()
	mask := func(v string) string {
		out, _ := masking.MaskEntities(v, kinds)
		return out
	}
	det.Columns, det.SampleTruncated = o.Columns, o.SampleTruncated
	if o.Error != "" {
		det.Error = mask(o.Error)
	}
	if len(o.Params) > 0 {
		det.Params = make([]string, len(o.Params))
		for i, p := range o.Params {
			det.Params[i] = mask(p)
		}
	}
	if len(o.Notices) > 0 {
		det.Notices = make([]string, len(o.Notices))
		for i, n := range o.Notices {
			det.Notices[i] = mask(n)
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
