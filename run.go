package runnel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/runnel-dev/runnel/internal/config"
	"github.com/runnel-dev/runnel/internal/plan"
	"github.com/runnel-dev/runnel/internal/runner"
)

// Config holds the settings of a run; Main fills it from the command-line
// flags and RUNNEL_* environment variables (see the --help text).
type Config = config.Config

// MaxWorkersPerProcess is the largest Config.WorkersPerProcess (-w) a run
// accepts: workers talk in pairs, so a run's cost grows with the square of
// its workers, and workers beyond the cores add no parallelism.
const MaxWorkersPerProcess = config.MaxWorkersPerProcess

// DefaultConfig is one worker, one process, 10-second epochs and no
// recovery.
func DefaultConfig() Config { return config.Default() }

// ErrInterrupted is wrapped by the error Run returns after a graceful stop
// (WithStop, or SIGINT/SIGTERM under Main).
var ErrInterrupted = runner.ErrInterrupted

// InterruptedError says where a stopped run ended and which epoch the next
// run resumes from.
type InterruptedError = runner.InterruptedError

// FlowGraph describes a flow's steps and the streams between them; get it
// with Dataflow.Graph. Its JSON form is what --print-flow json prints and
// the /dataflow endpoint serves; Mermaid and DOT render it for humans.
type FlowGraph = plan.Graph

// FlowGraphStep is one step of a FlowGraph.
type FlowGraphStep = plan.GraphStep

// FlowGraphEdge is one stream of a FlowGraph, from a step's output to
// another step's input.
type FlowGraphEdge = plan.GraphEdge

// Clock is a run's time source; see WithClock.
type Clock = runner.Clock

// RunOption changes how Run runs a flow. Options are made by the With…
// functions of this package only.
type RunOption interface{ apply(*runner.Options) }

type runOption func(*runner.Options)

func (f runOption) apply(o *runner.Options) { f(o) }

// WithStop stops the run gracefully when stop is closed: every worker
// closes the same epoch, the epoch's snapshots are committed and sinks
// flushed, and Run returns an *InterruptedError. Nothing after that epoch
// is emitted, so a resumed run replays nothing. A stop is not an end of
// input: OnEOF hooks, the *Final operators, Collect, final-mode joins and
// open windows emit nothing and keep their state for the next run, which
// then emits exactly what one uninterrupted run would. A stop that comes
// after every worker's input ended stops nothing: Run returns nil. The
// default is no stop channel (cancel ctx to abort at once instead).
func WithStop(stop <-chan struct{}) RunOption {
	return runOption(func(o *runner.Options) { o.Stop = stop })
}

// WithClock replaces the wall clock, for tests. The default is the wall
// clock.
func WithClock(c Clock) RunOption { return runOption(func(o *runner.Options) { o.Clock = c }) }

// WithOutput sets where Run writes notices and the --recovery-plan report.
// The default is to discard them (Main uses standard output).
func WithOutput(w io.Writer) RunOption { return runOption(func(o *runner.Options) { o.Out = w }) }

// WithMaxInFlight sets how many items a worker may have sent to other
// workers and not seen handled before it stops reading input. The default
// is 65536. Lower it to bound memory for very large items.
func WithMaxInFlight(items int) RunOption {
	return runOption(func(o *runner.Options) { o.MaxOutstanding = int64(items) })
}

// WithMaxUncommittedEpochs sets how many epochs a worker may have closed
// that are not yet committed before it stops closing epochs and reading
// input (like Flink's maximum of concurrent checkpoints). When the recovery
// store is slower than the snapshot interval, this bounds what waits in
// memory, and the epochs that queued up while the store was busy are
// written together. The default is 2; values below 1 mean the default.
func WithMaxUncommittedEpochs(n int) RunOption {
	return runOption(func(o *runner.Options) { o.MaxUncommitted = n })
}

// WithAPIListener serves the operations endpoints (Prometheus /metrics,
// /dataflow, the web view at /; see docs/operations.md) on ln, a listener
// the caller opened, instead of on cfg.APIAddr. Run closes it when it
// returns. Use it to pick the address yourself (port 0 in tests) or with
// socket activation. The default is cfg.APIAddr, or no endpoints.
func WithAPIListener(ln net.Listener) RunOption {
	return runOption(func(o *runner.Options) { o.APIListener = ln })
}

// WithMetricsGatherer adds the metrics of g (a *prometheus.Registry with
// your own collectors, say) to /metrics. The default is Prometheus's
// default registry, so collectors registered with prometheus.MustRegister
// are served without this option.
func WithMetricsGatherer(g prometheus.Gatherer) RunOption {
	return runOption(func(o *runner.Options) { o.Gatherer = g })
}

// WithLogger sends the run's log lines to l: one when it starts (flow,
// workers, recovery directory, resume epoch), one per committed epoch at
// debug level, and one when it ends (finished, stopped, or failed with the
// step, worker and key or partition). The default is no log lines; Main
// logs to standard error as --log-format and --log-level say.
func WithLogger(l *slog.Logger) RunOption {
	return runOption(func(o *runner.Options) { o.Logger = l })
}

// ParseConfig parses Runnel's standard flags (and their environment
// fallbacks) from args as Main does, for programs that run a flow and then
// do more work. It returns the positional arguments left over; a bad flag
// is an error naming it.
func ParseConfig(program string, args []string) (Config, []string, error) {
	return config.Parse(program, args, os.Getenv)
}

// Run runs flow with cfg until its input ends, a step fails, ctx is
// cancelled (an abort: nothing more is committed), or a WithStop channel
// closes (a graceful stop). A failure names the step id path, and the key
// or partition where it applies. With cfg.RecoveryDir set, Run resumes from
// the recovery data there and commits snapshots as it goes.
func Run(ctx context.Context, flow *Dataflow, cfg Config, opts ...RunOption) error {
	if flow == nil {
		return errors.New("runnel.Run: the flow is nil")
	}
	var o runner.Options
	for _, opt := range opts {
		opt.apply(&o)
	}
	return runner.Run(ctx, flow.p, cfg, o)
}

// Main runs flow as a program: it parses the flags (see Config; --help
// explains each), runs the flow and exits. The flow takes no positional
// arguments; use MainFunc for a flow built from them. Options describe the
// program in its --help text (WithUsage, WithExample).
//
// Exit status:
//   - 0: the input ended and everything was written.
//   - 1: the run failed: a step failed (the message names it; see
//     StepError), the flow did not build (a duplicate step id, say), or
//     the recovery data refused it. With --log-level debug a panic's
//     stack is logged too.
//   - 2: the command line is wrong: a bad flag or environment variable,
//     or MainFunc's build function returned an error (it is meant to
//     reject bad positional arguments).
//   - 130: a graceful stop on SIGINT or SIGTERM; a second signal aborts at
//     once (exit 1).
//
// "go run" hides these: it prints "exit status N" and itself exits 1.
// Build the program (go build) to see the real exit status.
func Main(flow *Dataflow, opts ...MainOption) {
	os.Exit(mainWith(os.Args, os.Getenv, os.Stdout, os.Stderr, func(args []string) (*Dataflow, error) {
		if len(args) > 0 {
			return nil, fmt.Errorf("unexpected arguments %q: this program takes none", args)
		}
		return flow, nil
	}, program(false, opts)))
}

// MainFunc is Main for a flow built from the positional arguments left
// after the flags, such as input values or file names. An error from build
// is printed and exits 2, as a usage error; describe the arguments with
// WithUsage so that --help shows them.
func MainFunc(build func(args []string) (*Dataflow, error), opts ...MainOption) {
	os.Exit(mainWith(os.Args, os.Getenv, os.Stdout, os.Stderr, build, program(true, opts)))
}

// MainOption describes a flow program for the --help text that Main and
// MainFunc print. Options are made by WithUsage and WithExample.
type MainOption interface{ applyMain(*config.Program) }

type mainOption func(*config.Program)

func (f mainOption) applyMain(p *config.Program) { f(p) }

// WithUsage sets the positional arguments shown in the usage line
// ("[FILE]", "N...") and a description of what the program does, printed
// under it. Either may be empty. Without it, --help shows "[args...]" for
// MainFunc and no arguments for Main, and no description.
func WithUsage(args, about string) MainOption {
	return mainOption(func(p *config.Program) { p.Args, p.About = args, about })
}

// WithExample adds an example command (the full command line, starting with
// the program name) and a comment explaining it to --help, before the
// recovery example every flow shares. Repeat it for more examples.
func WithExample(comment, command string) MainOption {
	return mainOption(func(p *config.Program) {
		p.Examples = append(p.Examples, config.Example{Comment: comment, Command: command})
	})
}

func program(takesArgs bool, opts []MainOption) config.Program {
	p := config.Program{TakesArgs: takesArgs}
	for _, o := range opts {
		o.applyMain(&p)
	}
	return p
}

func mainWith(argv []string, getenv func(string) string, stdout, stderr io.Writer, build func([]string) (*Dataflow, error), about config.Program) int {
	prog := filepath.Base(argv[0])
	// Catch signals first: a SIGTERM that arrives while the flags are
	// parsed and the flow is built then stops the run cleanly instead of
	// killing the process.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	cfg, args, err := config.Parse(prog, argv[1:], getenv)
	if errors.Is(err, config.ErrHelp) {
		fmt.Fprint(stdout, config.UsageFor(prog, about))
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\nRun %s --help for the flags.\n", prog, err, prog)
		return 2
	}
	flow, err := build(args)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return 2
	}
	if cfg.PrintFlow != "" {
		if err := flow.Validate(); err != nil {
			fmt.Fprintf(stderr, "%s: dataflow %q: %v\n", prog, flow.ID(), err)
			return 1
		}
		g := flow.Graph()
		switch cfg.PrintFlow {
		case "mermaid":
			fmt.Fprint(stdout, g.Mermaid())
		case "dot":
			fmt.Fprint(stdout, g.DOT())
		default:
			fmt.Fprint(stdout, g.JSON())
		}
		return 0
	}
	logger := newLogger(stderr, cfg)
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	stop := make(chan struct{})
	done := make(chan struct{})
	defer close(done)
	go func() {
		n := 0
		for {
			select {
			case s := <-sigs:
				n++
				if n == 1 {
					logger.Warn("stopping at the next epoch boundary (signal again to abort at once)", "signal", s.String())
					close(stop)
				} else {
					cancel(fmt.Errorf("second signal %v", s))
					return
				}
			case <-done:
				return
			}
		}
	}()
	opts := []RunOption{WithStop(stop), WithOutput(stdout), WithLogger(logger)}
	if cfg.Progress && isTerminal(stderr) {
		opts = append(opts, runOption(func(o *runner.Options) { o.Progress = stderr }))
	}
	err = Run(ctx, flow, cfg, opts...)
	if err != nil && cfg.RecoveryPlan {
		fmt.Fprintf(stderr, "%s: %v\n", prog, err) // a plan's refusal is output, not a log line
	}
	// Otherwise Run has logged how it ended, with the step of a failure.
	var stopped *InterruptedError
	switch {
	case errors.As(err, &stopped):
		return 130
	case err != nil:
		return 1
	}
	return 0
}

// newLogger makes the logger of --log-format and --log-level, writing to w
// (standard error: standard output carries only the flow's output).
func newLogger(w io.Writer, cfg Config) *slog.Logger {
	// Warn by default: a run that goes as planned prints nothing but its
	// output, as Bytewax's does (the recovery tutorial's transcript stays
	// exact on a terminal); a stop, a failure or dropped state still show.
	level := slog.LevelWarn
	switch cfg.LogLevel {
	case "debug":
		level = slog.LevelDebug
	case "info":
		level = slog.LevelInfo
	case "error":
		level = slog.LevelError
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
