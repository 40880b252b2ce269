//go:build !linux

package recovery

import "errors"

// exchange needs an atomic exchange of two directories, which this system
// does not offer through Go; repartition is refused rather than done in two
// renames that a crash could leave half done.
func exchange(a, b string) error {
	return errors.New("repartition needs an atomic exchange of two directories (Linux renameat2), which this system lacks; " +
		"repartition a copy on Linux, or export with `runnel recovery dump`")
}
