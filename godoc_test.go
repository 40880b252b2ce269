package runnel_test

import (
	"os/exec"
	"strings"
	"testing"
)

// go doc shows the fields and methods of the root package's types, and the
// methods a connector implements, because they are real types of this
// package, not aliases of internal ones; and it shows nothing internal.
func TestGoDocShowsFields(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go doc")
	}
	for sym, wants := range map[string][]string{
		"KV":  {"type KV[K Key, V any] struct {", "\tKey K\n", "\tValue V\n", "func (kv KV[K, V]) String() string"},
		"Key": {"~string | ~int"},
		"Dataflow": {"type Dataflow struct {", "func NewDataflow(id string) *Dataflow", "func (d *Dataflow) ID() string", "func (d *Dataflow) Err() error",
			"func (d *Dataflow) Validate() error", "func (d *Dataflow) Graph() FlowGraph"},
		"Stream": {"type Stream[T any] struct {", "func (s Stream[T]) StepID() string"},
		"Config": {"type Config struct {", "\tWorkersPerProcess int\n", "\tRecoveryDir string\n", "\tSnapshotInterval time.Duration\n",
			"\tBackupInterval time.Duration\n", "\tDropState []string\n", "func DefaultConfig() Config", "func (c Config) Validate() error"},
		"InterruptedError":      {"type InterruptedError struct {", "\tResume Epoch\n", "func (e *InterruptedError) Unwrap() error"},
		"Sink":                  {"type Sink[T any] interface {", "func DynamicOutput[T any](sink DynamicSink[T]) Sink[T]"},
		"Source":                {"type Source[T any] interface {", "func PartitionedInput[T, S any](src PartitionedSource[T, S]) Source[T]"},
		"SinkPartition":         {"\tWriteBatch(items []T) error\n", "\tClose() error\n"},
		"StatefulSinkPartition": {"\tSinkPartition[T]\n", "\tSnapshot() (S, error)\n"},
		"PartitionedSink": {"\tListParts(ctx context.Context) ([]string, error)\n", "\tPartFor(item T) int\n",
			"\tBuildPart(bc BuildContext, part string, resume *S) (StatefulSinkPartition[T, S], error)\n"},
		"DynamicSink":             {"\tBuild(bc BuildContext) (SinkPartition[T], error)\n"},
		"TwoPhaseSink":            {"\tBuild(bc BuildContext, resume []S) (TwoPhaseSinkPartition[T, S], error)\n"},
		"TwoPhaseSinkPartition":   {"\tPreCommit(e Epoch) (S, error)\n", "\tCommitted(e Epoch) error\n"},
		"SourcePartition":         {"\tNextBatch() ([]T, error)\n", "\tNextAwake() time.Time\n", "\tClose() error\n"},
		"StatefulSourcePartition": {"\tSnapshot() (S, error)\n"},
		"PartitionedSource": {"\tListParts(ctx context.Context) ([]string, error)\n",
			"\tBuildPart(bc BuildContext, part string, resume *S) (StatefulSourcePartition[T, S], error)\n"},
		"DynamicSource":  {"\tBuild(bc BuildContext) (SourcePartition[T], error)\n"},
		"SourceProgress": {"\tProgress() (done, total int64)\n"},
		"BuildContext":   {"\tContext context.Context\n", "\tStep string\n", "\tWorker, Workers int\n", "\tClock Clock\n"},
		"Clock":          {"\tNow() time.Time\n", "\tAt(t time.Time) <-chan time.Time\n"},
		"StepError":      {"\tStep string\n", "\tWorker int\n", "\tKey string\n", "\tInput, Partition, Position string\n", "\tErr error\n", "\tStack []byte\n", "func (e *StepError) Unwrap() error"},
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

// The whole of the root package's documentation names no internal package:
// a user never has to read one to use or extend Runnel.
func TestGoDocShowsNothingInternal(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go doc")
	}
	out, err := exec.Command("go", "doc", "-all", "github.com/runnel-dev/runnel").CombinedOutput()
	if err != nil {
		t.Fatalf("go doc -all: %v\n%s", err, out)
	}
	for _, pkg := range []string{"internal/", "plan.", "engine.", "runner.", "config.", "codec.", "keyed."} {
		for i, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, pkg) {
				t.Errorf("go doc -all line %d names %q: %s", i+1, pkg, line)
			}
		}
	}
}
