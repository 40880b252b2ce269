//go:build !unix

package recovery

import "time"

// cpuTime is not measured here.
func cpuTime() time.Duration { return 0 }
