//go:build !unix

package recovery

import "os"

// lockFile does nothing where flock is not available: there, keeping one
// run per recovery directory is up to the user.
func lockFile(string) (*os.File, error) { return nil, nil }

// writable cannot be answered without writing where access(2) is missing;
// SQLite reports the error when the run first writes.
func writable(string) error { return nil }
