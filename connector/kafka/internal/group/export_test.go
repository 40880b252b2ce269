package group

import (
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// SetPurgeEvery changes how often members purge repartition records, and
// returns a function that restores it.
func SetPurgeEvery(d time.Duration) (restore func()) {
	old := purgeEvery
	purgeEvery = d
	return func() { purgeEvery = old }
}

// SetClientOpts makes every member started from then on call next for
// extra Kafka client options, and returns a function that restores the
// default.
func SetClientOpts(next func() []kgo.Opt) (restore func()) {
	old := testClientOpts
	testClientOpts = next
	return func() { testClientOpts = old }
}
