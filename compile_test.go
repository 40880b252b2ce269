package runnel_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Type mismatches are compile errors: each program in testdata/compilefail
// must fail to build with the message shown. Before sinks carried their
// item type in their method set, a wrong sink compiled and panicked with an
// interface conversion inside the engine at run time.
func TestCompileErrors(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go build")
	}
	for _, tc := range []struct{ dir, want string }{
		{"wrongsink", "in call to op.Output, type runnel.Sink[runnel.KV[string, int]] of stdio.NewSink[runnel.KV[string, int]]() does not match inferred type runnel.Sink[runnel.KV[string, float64]] for runnel.Sink[T]"},
		{"wrongsinkfunc", "in call to op.OutputTo, type func() runnel.Sink[runnel.KV[string, int]] of stdio.NewSink[runnel.KV[string, int]] does not match inferred type func() runnel.Sink[runnel.KV[string, float64]] for func() runnel.Sink[T]"},
		{"wrongclock", "in call to window.CountWindow, type window.Clock[int] of clock does not match inferred type window.Clock[string] for window.Clock[X]"},
		{"wrongchain", "in call to op.Map, type func(x int) int of func(x int) int {…} does not match inferred type func(string) Y for func(X) Y"},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			out, err := exec.Command("go", "build", "-o", os.DevNull, "./testdata/compilefail/"+tc.dir).CombinedOutput()
			if err == nil {
				t.Fatalf("testdata/compilefail/%s compiled; want the error %q", tc.dir, tc.want)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("go build output:\n%s\nwant it to contain %q", out, tc.want)
			}
		})
	}
}
