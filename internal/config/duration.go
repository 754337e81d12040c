package config

import "time"

// String formats like time.Duration ("5m0s"), so durations read the same in
// error messages as in JSON.
func (d Duration) String() string { return time.Duration(d).String() }
