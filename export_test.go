package runnel

import "io"

// MainWith lets the external tests drive Main with their own arguments,
// environment and output streams (and MainFunc's options).
func MainWith(argv []string, getenv func(string) string, stdout, stderr io.Writer, build func([]string) (*Dataflow, error), opts ...MainOption) int {
	return mainWith(argv, getenv, stdout, stderr, build, program(true, opts))
}
