package group

import "time"

// SetPurgeEvery changes how often members purge repartition records, and
// returns a function that restores it.
func SetPurgeEvery(d time.Duration) (restore func()) {
	old := purgeEvery
	purgeEvery = d
	return func() { purgeEvery = old }
}
