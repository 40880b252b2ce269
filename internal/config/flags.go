package config

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// ErrHelp is returned by [Parse] when -h or --help is given before any
// positional argument. The caller prints [Usage] and exits 0. It wraps
// [pflag.ErrHelp], so errors.Is(err, pflag.ErrHelp) holds as well.
var ErrHelp = fmt.Errorf("help requested: %w", pflag.ErrHelp)

// Environment variables, the fallbacks of the flags.
const (
	envWorkers   = "RUNNEL_WORKERS_PER_PROCESS"
	envRecovery  = "RUNNEL_RECOVERY_DIRECTORY"
	envSnapshot  = "RUNNEL_SNAPSHOT_INTERVAL"
	envBackup    = "RUNNEL_BACKUP_INTERVAL"
	envAPI       = "RUNNEL_API_ADDR"
	envPprof     = "RUNNEL_API_PPROF"
	envLogFormat = "RUNNEL_LOG_FORMAT"
	envLogLevel  = "RUNNEL_LOG_LEVEL"
	envGroup     = "RUNNEL_GROUP"
	envBrokers   = "RUNNEL_BROKERS"
	envKeyGroups = "RUNNEL_KEY_GROUPS"
	envGST       = "RUNNEL_GROUP_SESSION_TIMEOUT"
	envGTT       = "RUNNEL_GROUP_TRANSACTION_TIMEOUT"
)

// flagEnv maps each flag's long name to its environment variable, in the
// order the fallbacks are read and their errors reported.
var flagEnv = []struct{ flag, env string }{
	{"workers-per-process", envWorkers},
	{"recovery-directory", envRecovery},
	{"snapshot-interval", envSnapshot},
	{"backup-interval", envBackup},
	{"api-addr", envAPI},
	{"api-pprof", envPprof},
	{"log-format", envLogFormat},
	{"log-level", envLogLevel},
	{"group", envGroup},
	{"brokers", envBrokers},
	{"key-groups", envKeyGroups},
	{"group-session-timeout", envGST},
	{"group-transaction-timeout", envGTT},
}

// EnvVars returns the environment variables that Parse reads, in flag
// order. Deployment manifests are checked against it, so that they cannot
// set a variable no flag reads.
func EnvVars() []string {
	vars := make([]string, len(flagEnv))
	for i, fe := range flagEnv {
		vars[i] = fe.env
	}
	return vars
}

// newFlagSet binds the flags to the fields of c.
func newFlagSet(program string, c *Config) *pflag.FlagSet {
	fs := pflag.NewFlagSet(program, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.SortFlags = false
	// Everything from the first positional argument on is positional, so
	// that `-r db/ -s 30 -b 0 0 1 2` passes 0 1 2 to the program.
	fs.SetInterspersed(false)

	fs.VarP(&intValue{p: &c.WorkersPerProcess, min: 1, max: MaxWorkersPerProcess, why: whyMaxWorkers}, "workers-per-process", "w",
		"number of workers in this process (1 to "+strconv.Itoa(MaxWorkersPerProcess)+")")
	fs.VarP(&dirValue{p: &c.RecoveryDir}, "recovery-directory", "r",
		"directory of recovery partitions")
	fs.VarP(&intervalValue{p: &c.SnapshotInterval, positive: true}, "snapshot-interval", "s",
		"epoch length: time between snapshots")
	fs.VarP(&intervalValue{p: &c.BackupInterval}, "backup-interval", "b",
		"how long superseded snapshots are kept")
	fs.Var(&stepsValue{p: &c.DropState}, "drop-state",
		"discard the stored state of this step")
	fs.Var(&dirValue{p: &c.FromRecovery}, "from-recovery",
		"seed a new group from a stopped run's recovery directory and exit")
	fs.BoolVar(&c.RecoveryPlan, "recovery-plan", false,
		"print the recovery plan and exit")
	fs.Var(&choiceValue{p: &c.PrintFlow, choices: []string{"mermaid", "dot", "json"}}, "print-flow",
		"print the flow's graph (mermaid, dot or json) and exit")
	fs.Var(&listenValue{p: &c.APIAddr}, "api-addr",
		"serve metrics, the graph and the web view on host:port")
	fs.BoolVar(&c.APIPprof, "api-pprof", false,
		"also serve net/http/pprof on --api-addr")
	fs.Var(&choiceValue{p: &c.LogFormat, choices: []string{"text", "json"}}, "log-format",
		"log lines as text or json")
	fs.Var(&choiceValue{p: &c.LogLevel, choices: []string{"debug", "info", "warn", "error"}}, "log-level",
		"least severe level logged")
	fs.BoolVar(&c.Progress, "progress", false,
		"show a status line on standard error when it is a terminal")
	fs.Var(&groupValue{p: &c.Group}, "group",
		"run as a member of the Kafka consumer group APP")
	fs.Var(&brokersValue{p: &c.Brokers}, "brokers",
		`Kafka brokers, "host:port,host:port"`)
	fs.Var(&intValue{p: &c.KeyGroups, min: 0, max: MaxKeyGroups, why: whyMaxKeyGroups}, "key-groups",
		"number of key groups of a group-mode application")
	fs.Var(&intervalValue{p: &c.GroupSessionTimeout}, "group-session-timeout",
		"group mode: how long a silent member keeps its partitions (default 10s)")
	fs.Var(&intervalValue{p: &c.GroupTransactionTimeout}, "group-transaction-timeout",
		"group mode: the broker's limit for a member's open transaction (default max(10s, 3 epochs))")
	return fs
}

// Parse parses the command-line arguments args (without the program name)
// into a Config, falling back to the environment through env (normally
// os.Getenv; nil means no environment) for each flag that is not given. A
// flag beats its variable, a variable beats the default, and an empty
// variable counts as unset.
//
// The flags accept the usual spellings: -w 2, -w2, -w=2, --workers-per-process 2
// and --workers-per-process=2. A repeated flag keeps its last value, except
// --brokers and --drop-state, which accumulate.
//
// Parsing stops at the first argument that is not a flag or at "--"; that
// argument and all after it are returned as positional arguments, for the
// flow program to use (for example as input). So in
//
//	myflow -r db/ -s 30 -b 0 0 1 2 3 4
//
// the positional arguments are 0 1 2 3 4. Arguments that look like flags,
// such as negative numbers, must follow "--": myflow -s 30 -- -1 -2.
//
// -h or --help makes Parse return [ErrHelp]; the caller prints [Usage].
// Otherwise the error, if any, names the flag or environment variable and
// the bad value. Bad values in the environment and broken rules (see
// [Config.Validate], plus: with -r, -s and -b must be given, by flag or
// variable) are all reported together, one per line. On error the returned
// Config and arguments are zero.
func Parse(program string, args []string, env func(string) string) (Config, []string, error) {
	c := Default()
	fs := newFlagSet(program, &c)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return Config{}, nil, ErrHelp
		}
		return Config{}, nil, flagError(err)
	}

	var errs []error
	var g given
	for _, fe := range flagEnv {
		f := fs.Lookup(fe.flag)
		if !f.Changed && env != nil {
			if v := env(fe.env); v != "" {
				// Set the value directly, not through fs.Set, so that
				// f.Changed keeps meaning "given on the command line".
				if err := f.Value.Set(v); err != nil {
					errs = append(errs, fmt.Errorf("%s: invalid value %q for -%s/--%s: %w",
						fe.env, v, f.Shorthand, f.Name, err))
				}
				setGiven(&g, fe.flag)
			}
		}
		if f.Changed {
			setGiven(&g, fe.flag)
		}
	}
	errs = append(errs, c.check(&g)...)
	if len(errs) > 0 {
		return Config{}, nil, errors.Join(errs...)
	}
	return c, fs.Args(), nil
}

func setGiven(g *given, flag string) {
	switch flag {
	case "snapshot-interval":
		g.snapshot = true
	case "backup-interval":
		g.backup = true
	}
}

// flagError rewrites pflag's errors into Runnel's wording: the flag first,
// then the bad value and why.
func flagError(err error) error {
	var ive *pflag.InvalidValueError
	if errors.As(err, &ive) {
		f := ive.GetFlag()
		name := "--" + f.Name
		if f.Shorthand != "" {
			name = "-" + f.Shorthand + "/" + name
		}
		return fmt.Errorf("%s: invalid value %q: %w", name, ive.GetValue(), errors.Unwrap(ive))
	}
	var nee *pflag.NotExistError
	if errors.As(err, &nee) {
		if short := nee.GetSpecifiedShortnames(); short != "" && isDecimal(short) {
			return fmt.Errorf("%w (to pass the negative number -%s as an argument, put -- before it)", err, short)
		}
	}
	return err
}

// intValue is an integer flag with a lower bound and, if max > 0, an
// upper one; why explains the upper bound.
type intValue struct {
	p   *int
	min int
	max int
	why string
}

func (v *intValue) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
			return errors.New("out of range")
		}
		return errors.New("not an integer")
	}
	if n < v.min {
		if v.min == 0 {
			return fmt.Errorf("must not be negative")
		}
		return fmt.Errorf("must be at least %d", v.min)
	}
	if v.max > 0 && n > v.max {
		return fmt.Errorf("must be at most %d (%s)", v.max, v.why)
	}
	*v.p = n
	return nil
}

func (v *intValue) String() string { return strconv.Itoa(*v.p) }
func (v *intValue) Type() string   { return "int" }

// intervalValue is an interval flag; see ParseInterval.
type intervalValue struct {
	p        *time.Duration
	positive bool // reject 0
}

func (v *intervalValue) Set(s string) error {
	d, err := ParseInterval(s)
	if err != nil {
		return err
	}
	if v.positive && d == 0 {
		return fmt.Errorf("must be greater than 0: %w", errSnapshotZero)
	}
	*v.p = d
	return nil
}

func (v *intervalValue) String() string { return v.p.String() }
func (v *intervalValue) Type() string   { return "interval" }

// brokersValue is a ','-separated list of host:port addresses. The first
// Set replaces the default; later ones append.
type brokersValue struct {
	p   *[]string
	set bool
}

func (v *brokersValue) Set(s string) error {
	if strings.Contains(s, ";") {
		return errors.New(`separate brokers with "," (host:port,host:port), not ";"`)
	}
	var addrs []string
	for _, a := range strings.Split(s, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue // allow "h:1,h:2," and "h:1, h:2"
		}
		if err := checkAddress(a); err != nil {
			return err
		}
		addrs = append(addrs, a)
	}
	if len(addrs) == 0 {
		return errors.New(`no address; want "host:port,host:port"`)
	}
	if !v.set {
		*v.p = nil
		v.set = true
	}
	*v.p = append(*v.p, addrs...)
	return nil
}

func (v *brokersValue) String() string { return strings.Join(*v.p, ",") }
func (v *brokersValue) Type() string   { return "brokers" }

// groupValue is an application name that prefixes topic names.
type groupValue struct{ p *string }

func (v *groupValue) Set(s string) error {
	if s == "" {
		return errors.New("empty application name")
	}
	if err := checkGroup(s); err != nil {
		return err
	}
	*v.p = s
	return nil
}

func (v *groupValue) String() string { return *v.p }
func (v *groupValue) Type() string   { return "app" }

// dirValue is a non-empty directory name.
type dirValue struct{ p *string }

func (v *dirValue) Set(s string) error {
	if s == "" {
		return errors.New("empty directory name")
	}
	*v.p = s
	return nil
}

func (v *dirValue) String() string { return *v.p }
func (v *dirValue) Type() string   { return "dir" }

// stepsValue accumulates comma-separated step ids.
type stepsValue struct{ p *[]string }

func (v *stepsValue) Set(s string) error {
	var steps []string
	for _, step := range strings.Split(s, ",") {
		step = strings.TrimSpace(step)
		if step == "" {
			return errors.New("empty step id")
		}
		steps = append(steps, step)
	}
	*v.p = append(*v.p, steps...)
	return nil
}

func (v *stepsValue) String() string { return strings.Join(*v.p, ",") }
func (v *stepsValue) Type() string   { return "step" }

// listenValue is an address to listen on.
type listenValue struct{ p *string }

func (v *listenValue) Set(s string) error {
	if err := checkListenAddress(s); err != nil {
		return err
	}
	*v.p = s
	return nil
}

func (v *listenValue) String() string { return *v.p }
func (v *listenValue) Type() string   { return "host:port" }

// choiceValue is one of a fixed set of words.
type choiceValue struct {
	p       *string
	choices []string
}

func (v *choiceValue) Set(s string) error {
	for _, c := range v.choices {
		if s == c {
			*v.p = s
			return nil
		}
	}
	return fmt.Errorf("want one of %s", strings.Join(v.choices, ", "))
}

func (v *choiceValue) String() string { return *v.p }
func (v *choiceValue) Type() string   { return strings.Join(v.choices, "|") }

// Program describes a flow binary for its --help text. The zero Program
// describes a flow that takes no positional arguments.
type Program struct {
	// Args is the usage of the positional arguments, shown after
	// "[flags] [--]" in the usage line ("[FILE]", "N..."). Empty means the
	// program takes none (unless TakesArgs is set).
	Args string
	// TakesArgs says the program reads positional arguments even though
	// Args is empty; the usage line then shows "[args...]".
	TakesArgs bool
	// About says what the program does, in a paragraph or more.
	About string
	// Examples are the program's own example commands, each with a comment
	// line. The help text adds the recovery example shared by every flow.
	Examples []Example
}

// Example is one example command of a Program's help text.
type Example struct {
	Comment string // shown as "# Comment"; may be empty
	Command string // the full command line, starting with the program name
}

// Usage returns the --help text for a flow binary called program that
// takes no positional arguments; see [UsageFor].
func Usage(program string) string { return UsageFor(program, Program{}) }

// UsageFor returns the --help text for a flow binary called program: the
// usage line and description of p, every flag with its environment
// variable, default and units, then p's examples and the recovery example
// that works for every flow.
func UsageFor(program string, p Program) string {
	var b strings.Builder
	args := p.Args
	if args == "" && p.TakesArgs {
		args = "[args...]"
	}
	if args == "" {
		fmt.Fprintf(&b, "Usage: %s [flags]\n\n", program)
	} else {
		fmt.Fprintf(&b, "Usage: %s [flags] [--] %s\n\n", program, args)
	}
	if about := strings.TrimSpace(p.About); about != "" {
		b.WriteString(about)
		b.WriteString("\n\n")
	}
	if args == "" {
		b.WriteString(usageNoArgs)
	} else {
		b.WriteString(usageArgs)
	}
	b.WriteString(usageFlags)
	b.WriteString("\nExamples:\n")
	for _, e := range p.Examples {
		if e.Comment != "" {
			for _, line := range strings.Split(strings.TrimSpace(e.Comment), "\n") {
				fmt.Fprintf(&b, "  # %s\n", strings.TrimSpace(line))
			}
		}
		fmt.Fprintf(&b, "  %s\n\n", e.Command)
	}
	b.WriteString(strings.ReplaceAll(usageExamples, "PROGRAM", program))
	return b.String()
}

const usageNoArgs = `Runs the dataflow until its input ends. Each of -w, -r, -s, -b, --api-addr,
--api-pprof, --log-format, --log-level, --group, --brokers and --key-groups
can also be set by the environment variable shown; a flag beats its
variable, a variable beats the default, and an empty variable counts as
unset.

Exit status: 0 when the input ended, 1 when the run failed (the message
names the step), 2 for bad flags or arguments, 130 after a graceful stop
(SIGINT or SIGTERM; the next run with -r resumes). "go run" prints "exit
status N" and itself exits 1; run the built binary to see N.

`

const usageArgs = `Runs the dataflow until its input ends. Arguments after the flags, or after
"--", are the program's own (put negative numbers after "--"). Each of -w,
-r, -s, -b, --api-addr, --api-pprof, --log-format, --log-level, --group,
--brokers and --key-groups can also be set by the environment variable
shown; a flag beats its variable, a variable beats the default, and an
empty variable counts as unset.

Exit status: 0 when the input ended, 1 when the run failed (the message
names the step), 2 for bad flags or arguments, 130 after a graceful stop
(SIGINT or SIGTERM; the next run with -r resumes). "go run" prints "exit
status N" and itself exits 1; run the built binary to see N.

`

const usageFlags = `Flags:
  -w, --workers-per-process N    Workers in this process, at least 1.
                                 Env RUNNEL_WORKERS_PER_PROCESS. Default 1.
  -r, --recovery-directory DIR   Directory of recovery partitions, created with
                                 "runnel recovery init DIR N". Enables
                                 recovery: state is snapshotted there, and a
                                 later run resumes from it. Needs -s and -b.
                                 Env RUNNEL_RECOVERY_DIRECTORY. Default: none,
                                 nothing is written.
  -s, --snapshot-interval T      Epoch length: time between snapshots of all
                                 state. Must be greater than 0:
                                 -s 0 is not allowed. Required with -r.
                                 Env RUNNEL_SNAPSHOT_INTERVAL. Default 10s
                                 (without -r).
  -b, --backup-interval T        How long superseded snapshots are kept, so a
                                 backup of DIR taken up to T ago can still
                                 resume; 0 keeps only what resuming needs.
                                 Required with -r, only allowed with -r.
                                 Env RUNNEL_BACKUP_INTERVAL. No default.
      --drop-state STEP          Discard the stored state of step STEP (its full
                                 id, e.g. flow.step) instead of refusing to run
                                 when it was removed or its state type changed.
                                 Repeat it or separate ids with ",". Needs -r.
      --recovery-plan            Print what would be resumed, from which epoch,
                                 and what would be dropped, then exit without
                                 running. Needs -r.
      --print-flow FORMAT        Print the flow's graph and exit without
                                 running: FORMAT is mermaid (paste into any
                                 Mermaid renderer), dot (Graphviz) or json
                                 (the same document as the /dataflow endpoint).
      --api-addr HOST:PORT       Serve Prometheus metrics (/metrics), the
                                 flow's graph (/dataflow) and a live web view
                                 (/) on this address while the flow runs, e.g.
                                 127.0.0.1:9090; an empty host listens on every
                                 interface, port 0 picks a free port.
                                 Env RUNNEL_API_ADDR. Default: none.
      --api-pprof                Also serve Go profiles (net/http/pprof) under
                                 /debug/pprof/. Needs --api-addr.
                                 Env RUNNEL_API_PPROF (true/false).
      --log-format FORMAT        Log lines on standard error as text
                                 (key=value) or json. Standard output carries
                                 only the flow's own output.
                                 Env RUNNEL_LOG_FORMAT. Default text.
      --log-level LEVEL          debug (adds a line per committed epoch), info
                                 (start and end of the run), warn (stops,
                                 dropped state) or error. Env
                                 RUNNEL_LOG_LEVEL. Default warn.
      --progress                 Show a status line on standard error while
                                 the flow runs: items/s per input, percent
                                 done where known, epoch, last commit. Only
                                 when standard error is a terminal.
      --group APP                Group mode: run as one member of the Kafka
                                 consumer group APP; start the same binary
                                 with the same --group on every machine, and
                                 Kafka splits the input partitions among the
                                 members. State lives in Kafka topics named
                                 APP.*, so -r is not allowed. Every input must
                                 be a Kafka source. Needs --brokers. See
                                 docs/scaling.md. Env RUNNEL_GROUP.
                                 Default: none, a single-process run.
      --brokers H:P[,H:P]        Kafka brokers to bootstrap from, separated by
                                 "," (or repeat the flag). Required with
                                 --group. Env RUNNEL_BROKERS. Default: none.
      --key-groups N             Key groups of a group-mode application: the
                                 most members a keyed step can spread over,
                                 and the partition count of its internal
                                 topics; 1 to 65536, fixed once the app has
                                 started. Needs --group. Env RUNNEL_KEY_GROUPS.
                                 Default 0: the largest input topic's
                                 partition count at the first start.
      --group-session-timeout T  Group mode: how long the group waits for a
                                 silent (killed) member before it gives its
                                 partitions to the others. The broker must
                                 allow it (group.min.session.timeout.ms).
                                 Env RUNNEL_GROUP_SESSION_TIMEOUT.
                                 Default 10s.
      --group-transaction-timeout T
                                 Group mode: the broker's limit for a
                                 member's open transaction; a killed member's
                                 partitions wait for it. Longer than -s. Env
                                 RUNNEL_GROUP_TRANSACTION_TIMEOUT. Default
                                 the larger of 10s and 3 epochs.
      --from-recovery DIR        Seed a new group-mode application (--group)
                                 from the recovery directory of a stopped
                                 one-process run: its keyed state goes to the
                                 changelog topics and its Kafka input positions
                                 become the group's offsets; then exit. Run it
                                 once, before starting the members.
  -h, --help                     Print this help and exit.

Intervals (T) are plain seconds ("30", "0.05") or Go durations ("30s",
"50ms", "1m30s").
`

const usageExamples = `  # Create one recovery partition, then run with recovery: snapshots every
  # 30 seconds, no extra backup window. Running it again with the same
  # directory resumes where the last run stopped.
  runnel recovery init db_dir/ 1
  PROGRAM -r db_dir/ -s 30 -b 0

  # Two workers, an epoch every 2 seconds, no recovery.
  PROGRAM -w 2 -s 2

  # Group mode (a flow whose inputs are Kafka sources): run this on each
  # machine; the members share the input partitions and commit an epoch
  # every second in a Kafka transaction.
  PROGRAM --group myapp --brokers kafka-0:9092,kafka-1:9092 -w 2 -s 1
`
