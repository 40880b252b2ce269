// Package tuning holds the thresholds of Runnel's background work, so that
// its own tests can lower them to exercise in a short run what a long one
// does. Programs never change them.
package tuning

import "sync/atomic"

// CompactMin, when above 0, replaces the minimum sizes below which the
// recovery store does not compact a partition's change log (65536 rows,
// 16 MiB or 1024 batches): compaction then waits only for the log to double.
var CompactMin atomic.Int64
