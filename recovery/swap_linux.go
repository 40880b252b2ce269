//go:build linux

package recovery

import "golang.org/x/sys/unix"

// exchange swaps the directories a and b atomically (renameat2 with
// RENAME_EXCHANGE): at every moment each path holds one whole directory.
func exchange(a, b string) error {
	return unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
}
