//go:build unix

package recovery

import (
	"errors"
	"os"
	"syscall"
)

// lockFile takes an exclusive advisory lock on path (flock, independent of
// SQLite's own fcntl locks), held until the returned file is closed.
func lockFile(path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, ErrLocked
		}
		return nil, err
	}
	return f, nil
}

// writable reports whether this process may write path (access(2) with
// W_OK, which honours read-only mounts).
func writable(path string) error {
	return syscall.Access(path, 2 /* W_OK */)
}
