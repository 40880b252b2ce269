package runnel_test

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/runneltest"
)

// A TryMap that fails names the step, the item, and the input partition and
// position of the batch it came from; errors.As finds a *runnel.StepError.
func TestStepErrorNamesItemAndInput(t *testing.T) {
	flow := runnel.NewDataflow("sum")
	lines := op.Input("inp", flow, runneltest.NewSource([]string{"1", "2", "12x", "4"}, runneltest.BatchSize(3)))
	nums := op.TryMap("parse", lines, func(s string) (int, error) { return strconv.Atoi(s) })
	op.Output("out", nums, runneltest.NewSink[int]())
	err := runnel.Run(context.Background(), flow, runneltest.Config(1, time.Hour, ""))
	var se *runnel.StepError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v (%T), want a *runnel.StepError", err, err)
	}
	if se.Step != "sum.parse" || se.Worker != 0 || se.Input != "sum.inp" || se.Partition != "list" || se.Position != "3" || se.Stack != nil {
		t.Errorf("StepError = %+v", *se)
	}
	want := `step sum.parse (worker 0, input sum.inp partition "list" in the batch ending at position 3): item '12x': strconv.Atoi: parsing "12x": invalid syntax`
	if se.Error() != want || !strings.Contains(err.Error(), want) {
		t.Errorf("message:\n got %s\nwant %s", err, want)
	}
	if !errors.Is(err, strconv.ErrSyntax) {
		t.Error("errors.Is does not reach the cause")
	}
}

// A panic is reported in one line; the stack is kept on the error for debug
// logging, not in the message.
func TestPanicMessageHasNoStack(t *testing.T) {
	flow := runnel.NewDataflow("p")
	s := op.Input("inp", flow, runneltest.NewSource([]int{1, 2, 0}))
	s = op.Map("div", s, func(x int) int { return 10 / x })
	op.Output("out", s, runneltest.NewSink[int]())
	err := runnel.Run(context.Background(), flow, runneltest.Config(1, time.Hour, ""))
	var se *runnel.StepError
	if !errors.As(err, &se) || !errors.Is(err, runnel.ErrPanic) {
		t.Fatalf("err = %v, want a StepError wrapping ErrPanic", err)
	}
	if strings.Contains(err.Error(), "goroutine") || strings.Contains(err.Error(), "\n") {
		t.Errorf("message holds a stack:\n%s", err)
	}
	if !strings.Contains(err.Error(), "step p.div (worker 0") || !strings.Contains(err.Error(), "integer divide by zero") {
		t.Errorf("message = %s", err)
	}
	if !strings.Contains(string(se.Stack), "goroutine") {
		t.Errorf("Stack = %q, want the panic's stack", se.Stack)
	}
}

// A keyed step's failure names the key: a panic in StatefulMap, and
// Context.Fail in Stateful (which is not a panic and has no stack).
func TestKeyedFailureNamesKey(t *testing.T) {
	t.Run("panic", func(t *testing.T) {
		flow := runnel.NewDataflow("k")
		s := op.Input("inp", flow, runneltest.NewSource([]string{"a", "b", "boom"}))
		keyed := op.KeyOn("key", s, func(x string) string { return "user-" + x })
		out := op.StatefulMap("count", keyed, func(n int, _ bool, x string) (int, bool, int) {
			if x == "boom" {
				panic("bad item")
			}
			return n + 1, true, n + 1
		})
		op.Output("out", out, runneltest.NewSink[runnel.KV[string, int]]())
		// Two workers: the panic happens behind an exchange, so no input
		// is named, but the key is.
		err := runnel.Run(context.Background(), flow, runneltest.Config(2, time.Hour, ""))
		var se *runnel.StepError
		if !errors.As(err, &se) || se.Key != "user-boom" || se.Step != "k.count" || !errors.Is(err, runnel.ErrPanic) {
			t.Fatalf("err = %v, want a panic in k.count naming key user-boom", err)
		}
		if !strings.Contains(err.Error(), `key "user-boom"`) {
			t.Errorf("message = %s", err)
		}
	})
	t.Run("Context.Fail", func(t *testing.T) {
		flow := runnel.NewDataflow("k")
		s := op.Input("inp", flow, runneltest.NewSource([]int{1, 2, -3}))
		keyed := op.KeyOn("key", s, func(x int) int { return x % 2 })
		errNegative := errors.New("negative amount")
		out := op.Stateful("balance", keyed, func(c *op.Context[int, int], sum int, _ bool, x int) (int, bool) {
			if x < 0 {
				c.Fail(errNegative)
			}
			c.Emit(sum + x)
			return sum + x, true
		})
		op.Output("out", out, runneltest.NewSink[runnel.KV[int, int]]())
		err := runnel.Run(context.Background(), flow, runneltest.Config(1, time.Hour, ""))
		var se *runnel.StepError
		if !errors.As(err, &se) || se.Key != "-1" || !errors.Is(err, errNegative) || errors.Is(err, runnel.ErrPanic) || se.Stack != nil {
			t.Fatalf("err = %v, want k.balance failing with errNegative on key -1, not a panic", err)
		}
		want := `step k.balance (worker 0, key "-1", input k.inp partition "list" in the batch ending at position 3): negative amount`
		if se.Error() != want {
			t.Errorf("message:\n got %s\nwant %s", se.Error(), want)
		}
	})
}

// A build error is reported alone, without a spurious "no output step".
func TestBuildErrorWithoutSpuriousNoOutput(t *testing.T) {
	flow := runnel.NewDataflow("b")
	s := op.Input("inp", flow, runneltest.NewSource([]int{1}))
	op.Output("out", s, nil)
	err := runnel.Run(context.Background(), flow, runneltest.Config(1, time.Hour, ""))
	if err == nil || !strings.Contains(err.Error(), "step b.out: the sink is nil") {
		t.Fatalf("err = %v, want the nil sink named", err)
	}
	if strings.Contains(err.Error(), "no output step") {
		t.Errorf("err = %v, has a spurious \"no output step\"", err)
	}
	// The same for a nil sink constructor given to OutputTo.
	flow = runnel.NewDataflow("b")
	s = op.Input("inp", flow, runneltest.NewSource([]int{1}))
	op.OutputTo("out", s, nil)
	err = runnel.Run(context.Background(), flow, runneltest.Config(1, time.Hour, ""))
	if err == nil || !strings.Contains(err.Error(), "step b.out: the sink constructor is nil") || strings.Contains(err.Error(), "no output step") {
		t.Fatalf("err = %v, want the nil sink constructor named alone", err)
	}
	// A flow that really has no output still says so.
	flow = runnel.NewDataflow("b")
	op.Input("inp", flow, runneltest.NewSource([]int{1}))
	err = runnel.Run(context.Background(), flow, runneltest.Config(1, time.Hour, ""))
	if err == nil || !strings.Contains(err.Error(), "no output step") {
		t.Errorf("err = %v, want \"no output step\"", err)
	}
}

// Main logs a failure in one line, and a panic's stack only at debug
// level; a failed run exits 1.
func TestMainLogsStackOnlyWhenDebugging(t *testing.T) {
	build := func([]string) (*runnel.Dataflow, error) {
		flow := runnel.NewDataflow("p")
		s := op.Input("inp", flow, runneltest.NewSource([]int{0}))
		s = op.Map("div", s, func(x int) int { return 1 / x })
		op.Output("out", s, runneltest.NewSink[int]())
		return flow, nil
	}
	for _, level := range []string{"info", "debug"} {
		var out, errb bytes.Buffer
		code := runnel.MainWith([]string{"prog", "--log-level", level}, nil, &out, &errb, build)
		logs := errb.String()
		if code != 1 || !strings.Contains(logs, "step p.div (worker 0") || !strings.Contains(logs, "integer divide by zero") {
			t.Fatalf("--log-level %s: exit %d, stderr:\n%s", level, code, logs)
		}
		if hasStack := strings.Contains(logs, "stack of the panic"); hasStack != (level == "debug") {
			t.Errorf("--log-level %s: stack logged = %v:\n%s", level, hasStack, logs)
		}
	}
}
