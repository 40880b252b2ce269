//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package runnel

import "io"

// isTerminal reports false where Runnel cannot tell: --progress then shows
// nothing.
func isTerminal(io.Writer) bool { return false }
