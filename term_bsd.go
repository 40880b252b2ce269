//go:build darwin || freebsd || netbsd || openbsd || dragonfly

package runnel

import "golang.org/x/sys/unix"

const ioctlGetTermios = unix.TIOCGETA
