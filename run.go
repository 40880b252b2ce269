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
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/runnel-dev/runnel/internal/config"
	"github.com/runnel-dev/runnel/internal/plan"
	"github.com/runnel-dev/runnel/internal/runner"
)

// Config holds the settings of a run; Main fills it from the command-line
// flags and RUNNEL_* environment variables (see the --help text), and
// programs that call Run start from DefaultConfig. Run refuses a Config
// that Validate refuses.
type Config struct {
	// WorkersPerProcess is the number of workers in this process (-w,
	// --workers-per-process, RUNNEL_WORKERS_PER_PROCESS). At least 1 and
	// at most [MaxWorkersPerProcess]; default 1. In group mode every
	// member process runs this many workers.
	WorkersPerProcess int

	// Group is the name of the application in group mode (--group APP,
	// RUNNEL_GROUP): every process started with the same Group and Brokers
	// is a member of the Kafka consumer group APP, and the group protocol
	// decides which member reads which input partitions. It also prefixes
	// the application's internal topics (APP.meta, APP.<step>.repartition,
	// APP.<step>.changelog), so it may hold only the characters of a Kafka
	// topic name (letters, digits, '.', '_', '-'), at most
	// 128 of them. Empty (the default) runs the flow in this
	// process alone. Needs Brokers; refused with RecoveryDir, because group
	// mode keeps state in Kafka changelog topics.
	Group string

	// Brokers are the host:port addresses of Kafka brokers to bootstrap
	// from (--brokers H:P[,H:P], RUNNEL_BROKERS; repeat the flag or
	// separate addresses with ","). Required with Group. Without Group,
	// Runnel does not use them; a program may (examples/kafka reads them
	// for its source and sink).
	Brokers []string

	// KeyGroups is the number of key groups of a group-mode application
	// (--key-groups N, RUNNEL_KEY_GROUPS): keys hash into this many groups,
	// and it is the partition count of the repartition and changelog
	// topics, so the most members a keyed step can spread over. 0 (the
	// default) means: the largest input topic's partition count when the
	// application first starts, and afterwards what it recorded. At most
	// 65536; needs Group. It cannot change once the application
	// has started.
	KeyGroups int

	// GroupSessionTimeout is how long the group waits for a silent member
	// before it gives the member's partitions to the others
	// (--group-session-timeout T, RUNNEL_GROUP_SESSION_TIMEOUT; 0, the
	// default, means 10s; needs Group). The broker must allow it
	// (group.min.session.timeout.ms). Members heartbeat ten times per
	// timeout.
	GroupSessionTimeout time.Duration

	// GroupTransactionTimeout is the broker's limit for a member's open
	// transaction (--group-transaction-timeout T,
	// RUNNEL_GROUP_TRANSACTION_TIMEOUT; 0, the default, means the larger
	// of 10s and three epochs; needs Group). A killed member's last
	// transaction blocks its partitions until it times out, so it bounds
	// the time to take them over; it must exceed the snapshot interval.
	GroupTransactionTimeout time.Duration

	// FromRecovery seeds a new group-mode application from the recovery
	// directory of a stopped one-process run (--from-recovery DIR, flag
	// only): every keyed step's committed state is written to its
	// changelog topic and the Kafka sources' positions are committed as
	// the group's offsets; then the program exits without running the
	// flow. Needs Group; refused when the group has committed offsets or
	// live members. See docs/scaling.md.
	FromRecovery string

	// RecoveryDir is the directory of recovery partitions, created with
	// `runnel recovery init DIR N` (-r, --recovery-directory,
	// RUNNEL_RECOVERY_DIRECTORY). Empty (the default) disables recovery:
	// nothing is written and nothing is resumed.
	RecoveryDir string

	// SnapshotInterval is the epoch length: how much system time passes
	// between snapshots of all state (-s, --snapshot-interval,
	// RUNNEL_SNAPSHOT_INTERVAL). Must be greater than 0. Default 10s; on the
	// command line it is required with -r.
	SnapshotInterval time.Duration

	// BackupInterval is how long superseded snapshots are kept behind the
	// last committed epoch, so that a backup of the recovery directory taken
	// up to this long ago can still resume (-b, --backup-interval,
	// RUNNEL_BACKUP_INTERVAL). At least 0; default 0. Only meaningful with
	// RecoveryDir; on the command line it is required with -r and refused
	// without it.
	BackupInterval time.Duration

	// DropState lists step ids whose stored state is discarded on purpose
	// (--drop-state STEP, repeatable or comma-separated). A run refuses to
	// start when recovery data holds state for a step that is gone or whose
	// state type changed; naming the step here drops that state instead.
	// Needs RecoveryDir.
	DropState []string

	// RecoveryPlan asks for the recovery plan (what would be resumed, from
	// which epoch, and what would be dropped) to be printed instead of
	// running the flow (--recovery-plan). Needs RecoveryDir.
	RecoveryPlan bool

	// PrintFlow asks for the flow's graph to be printed on standard output
	// instead of running it (--print-flow mermaid|dot|json). Empty (the
	// default) runs the flow.
	PrintFlow string

	// APIAddr is the host:port where the run serves Prometheus metrics
	// (/metrics), the flow's graph (/dataflow) and the live web view (/)
	// (--api-addr, RUNNEL_API_ADDR). An empty host listens on every
	// interface; port 0 picks a free port (logged at start). Empty (the
	// default) serves nothing.
	APIAddr string

	// APIPprof also serves net/http/pprof under /debug/pprof/ on APIAddr
	// (--api-pprof, RUNNEL_API_PPROF). Needs APIAddr.
	APIPprof bool

	// LogFormat is how log lines on standard error look: "text" (key=value;
	// the default, also when empty) or "json" (--log-format,
	// RUNNEL_LOG_FORMAT).
	LogFormat string

	// LogLevel is the least severe level logged: "debug" (adds a line per
	// committed epoch), "info" (the default: start and end of the run),
	// "warn" or "error" (--log-level, RUNNEL_LOG_LEVEL). Empty means warn.
	LogLevel string

	// Progress shows a status line on standard error while the flow runs,
	// when standard error is a terminal (--progress).
	Progress bool
}

// Validate checks the settings as Run does before it starts, naming the
// first field (by its flag) that is out of range or missing.
func (c Config) Validate() error { return config.Config(c).Validate() }

// MaxWorkersPerProcess is the largest Config.WorkersPerProcess (-w) a run
// accepts: workers talk in pairs, so a run's cost grows with the square of
// its workers, and workers beyond the cores add no parallelism.
const MaxWorkersPerProcess = 1024

// The two limits are one: a difference does not compile (a negative
// constant does not convert to uint).
const _ = uint(MaxWorkersPerProcess-config.MaxWorkersPerProcess) + uint(config.MaxWorkersPerProcess-MaxWorkersPerProcess)

// DefaultConfig is one worker, one process, 10-second epochs and no
// recovery.
func DefaultConfig() Config { return Config(config.Default()) }

// ErrInterrupted is wrapped by the error Run returns after a graceful stop
// (WithStop, or SIGINT/SIGTERM under Main).
var ErrInterrupted = errors.New("interrupted")

// InterruptedError is the error Run returns (possibly wrapped) after a
// graceful stop: every worker closed the same epoch and it was committed.
// Get it with errors.As; errors.Is(err, ErrInterrupted) also holds.
type InterruptedError struct {
	// Resume is the epoch the next run starts from (it replays nothing
	// before it); 0 when the run had no recovery directory, so the next
	// run starts from the beginning.
	Resume Epoch
}

// Error says the run stopped cleanly and where the next one resumes.
func (e *InterruptedError) Error() string {
	return (&runner.InterruptedError{Resume: e.Resume}).Error()
}

// Unwrap returns ErrInterrupted.
func (e *InterruptedError) Unwrap() error { return ErrInterrupted }

func init() {
	runner.ErrInterrupted = ErrInterrupted
	runner.InterruptedAsHook = func(e *runner.InterruptedError, target any) bool {
		p, ok := target.(**InterruptedError)
		if ok {
			*p = &InterruptedError{Resume: e.Resume}
		}
		return ok
	}
}

// FlowGraph describes a flow's steps and the streams between them; get it
// with Dataflow.Graph. Its JSON form is what --print-flow json prints and
// the /dataflow endpoint serves (a documented interface, see
// docs/operations.md: fields are only ever added); Mermaid and DOT render
// it for humans.
type FlowGraph struct {
	// Flow is the flow's id.
	Flow string `json:"flow"`
	// Steps are the steps in the order they were added, each after its
	// inputs.
	Steps []FlowGraphStep `json:"steps"`
	// Edges are the streams between steps.
	Edges []FlowGraphEdge `json:"edges"`
}

// FlowGraphStep is one step of a FlowGraph.
type FlowGraphStep struct {
	ID       string   `json:"id"`     // full id, "flow.step"
	Name     string   `json:"name"`   // id without the flow prefix
	Kind     string   `json:"kind"`   // operator name, "stateful_map"
	Inputs   []string `json:"inputs"` // full ids of upstream steps, in input order
	Outputs  int      `json:"outputs"`
	Input    bool     `json:"input,omitempty"`    // reads a source
	Output   bool     `json:"output,omitempty"`   // writes a sink
	Stateful bool     `json:"stateful,omitempty"` // keeps recoverable state
}

// FlowGraphEdge is one stream of a FlowGraph, from output FromPort of step
// From to input ToPort of step To (ports count from 0).
type FlowGraphEdge struct {
	From     string `json:"from"`
	FromPort int    `json:"from_port"`
	To       string `json:"to"`
	ToPort   int    `json:"to_port"`
}

func publicGraph(g plan.Graph) FlowGraph {
	p := FlowGraph{Flow: g.Flow, Steps: make([]FlowGraphStep, len(g.Steps)), Edges: make([]FlowGraphEdge, len(g.Edges))}
	for i, s := range g.Steps {
		p.Steps[i] = FlowGraphStep(s)
	}
	for i, e := range g.Edges {
		p.Edges[i] = FlowGraphEdge(e)
	}
	return p
}

func (g FlowGraph) plan() plan.Graph {
	p := plan.Graph{Flow: g.Flow, Steps: make([]plan.GraphStep, len(g.Steps)), Edges: make([]plan.GraphEdge, len(g.Edges))}
	for i, s := range g.Steps {
		p.Steps[i] = plan.GraphStep(s)
	}
	for i, e := range g.Edges {
		p.Edges[i] = plan.GraphEdge(e)
	}
	return p
}

// JSON is the graph as indented JSON, ending with a newline.
func (g FlowGraph) JSON() string { return g.plan().JSON() }

// Mermaid is the graph as a Mermaid flowchart, for Markdown.
func (g FlowGraph) Mermaid() string { return g.plan().Mermaid() }

// DOT is the graph in Graphviz's DOT language.
func (g FlowGraph) DOT() string { return g.plan().DOT() }

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
	c, rest, err := config.Parse(program, args, os.Getenv)
	return Config(c), rest, err
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
	err := runner.Run(ctx, flow.p, config.Config(cfg), o)
	if ie, ok := err.(*runner.InterruptedError); ok {
		return &InterruptedError{Resume: ie.Resume}
	}
	return err
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
	parsed, args, err := config.Parse(prog, argv[1:], getenv)
	cfg := Config(parsed)
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
	if err != nil && (cfg.RecoveryPlan || cfg.FromRecovery != "") {
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
