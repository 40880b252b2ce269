package runnel_test

import (
	"os/exec"
	"strings"
	"testing"
)

// go doc shows the fields of the root package's data types, because they
// are real types of this package, not aliases of internal ones.
func TestGoDocShowsFields(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go doc")
	}
	for sym, wants := range map[string][]string{
		"KV":  {"type KV[K Key, V any] struct {", "\tKey K\n", "\tValue V\n", "func (kv KV[K, V]) String() string"},
		"Key": {"~string | ~int"},
		"Dataflow": {"type Dataflow struct {", "func NewDataflow(id string) *Dataflow", "func (d *Dataflow) ID() string", "func (d *Dataflow) Err() error",
			"func (d *Dataflow) Validate() error", "func (d *Dataflow) Graph() FlowGraph"},
		"Stream":    {"type Stream[T any] struct {", "func (s Stream[T]) StepID() string"},
		"StepError": {"\tStep string\n", "\tWorker int\n", "\tKey string\n", "\tInput, Partition, Position string\n", "\tErr error\n", "\tStack []byte\n", "func (e *StepError) Unwrap() error"},
	} {
		out, err := exec.Command("go", "doc", "github.com/runnel-dev/runnel", sym).CombinedOutput()
		if err != nil {
			t.Fatalf("go doc %s: %v\n%s", sym, err, out)
		}
		for _, want := range wants {
			if !strings.Contains(string(out), want) {
				t.Errorf("go doc %s does not show %q:\n%s", sym, want, out)
			}
		}
		// The plan behind the public types stays internal.
		for _, leak := range []string{"internal/", "plan.", "engine.", "Steps()", "Port()"} {
			if strings.Contains(string(out), leak) {
				t.Errorf("go doc %s shows %q, an internal detail:\n%s", sym, leak, out)
			}
		}
	}
}
