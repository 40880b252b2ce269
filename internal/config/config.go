// Package config holds the run settings of a Runnel flow binary and parses
// them from the command line and the environment. It is re-exported as
// runnel.Config; runnel.Main calls [Parse] and then runs the flow.
//
// # Flags
//
// Every flow binary accepts the flags of Bytewax's bytewax.run:
//
//	-w, --workers-per-process N   RUNNEL_WORKERS_PER_PROCESS   default 1; 1 to 1024
//	-i, --process-id N            RUNNEL_PROCESS_ID            default 0
//	-a, --addresses "H:P;H:P"     RUNNEL_ADDRESSES             default none
//	-r, --recovery-directory DIR  RUNNEL_RECOVERY_DIRECTORY    default none
//	-s, --snapshot-interval T     RUNNEL_SNAPSHOT_INTERVAL     default 10s; required with -r
//	-b, --backup-interval T       RUNNEL_BACKUP_INTERVAL       required with -r, only with -r
//	    --drop-state STEP         (flag only)
//	    --recovery-plan           (flag only)
//	    --print-flow FORMAT       (flag only) mermaid, dot or json
//	    --api-addr HOST:PORT      RUNNEL_API_ADDR              default none
//	    --api-pprof               RUNNEL_API_PPROF             default false
//	    --log-format text|json    RUNNEL_LOG_FORMAT            default text
//	    --log-level LEVEL         RUNNEL_LOG_LEVEL             default warn
//	    --progress                (flag only)
//
// A flag given on the command line beats its environment variable, and the
// variable beats the default. An empty variable counts as unset. Intervals
// (T) are plain seconds ("30", "0.05") or Go durations ("30s", "50ms"); see
// [ParseInterval].
//
// --drop-state, --recovery-plan and --print-flow have no environment
// variables on purpose:
// they are one-off operator actions, and a variable would repeat them on
// every restart of a supervised process.
//
// # Usage
//
// The tutorial's commands:
//
//	$ runnel recovery init db_dir/ 1
//	$ go run ./myflow -r db_dir/ -s 30 -b 0
//
// Arguments after the flags are the flow program's own; see [Parse].
package config

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"
)

// Config holds the run settings; it mirrors the command-line flags of every
// Runnel flow binary.
//
// Build one with [Parse] from the command line, or start from [Default] and
// set fields when configuring a run in code; then call [Config.Validate].
// Programmatic configs follow Bytewax's RecoveryConfig: with RecoveryDir set,
// the SnapshotInterval and BackupInterval fields are used as they are (the
// command line, unlike code, must give -s and -b explicitly).
type Config struct {
	// WorkersPerProcess is the number of workers in this process (-w,
	// --workers-per-process, RUNNEL_WORKERS_PER_PROCESS). At least 1 and
	// at most [MaxWorkersPerProcess]; default 1. A run has len(Addresses)
	// (or 1) times this many workers.
	WorkersPerProcess int

	// ProcessID is this process's index into Addresses (-i, --process-id,
	// RUNNEL_PROCESS_ID). Default 0; must be 0 without Addresses.
	ProcessID int

	// Addresses are the host:port addresses of every process of the run, in
	// process-id order (-a, --addresses "host:port;host:port",
	// RUNNEL_ADDRESSES). Empty (the default) means a single-process run.
	Addresses []string

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

// Default returns the configuration used when no flag and no environment
// variable is given: one worker, process 0 of a single-process run, no
// recovery, and a 10s snapshot interval (epoch length).
func Default() Config {
	return Config{
		WorkersPerProcess: 1,
		SnapshotInterval:  10 * time.Second,
	}
}

// Flag names as they appear in messages.
const (
	flagW     = "-w/--workers-per-process"
	flagI     = "-i/--process-id"
	flagA     = "-a/--addresses"
	flagR     = "-r/--recovery-directory"
	flagS     = "-s/--snapshot-interval"
	flagB     = "-b/--backup-interval"
	flagDrop  = "--drop-state"
	flagPlan  = "--recovery-plan"
	flagPrint = "--print-flow"
	flagAPI   = "--api-addr"
	flagPprof = "--api-pprof"
	flagLogF  = "--log-format"
	flagLogL  = "--log-level"
)

// Validate checks c and reports every broken rule at once, one per line of
// the returned error (as [errors.Join] formats it), each naming the flag and
// the bound it breaks. It returns nil if c can run.
//
// The rules: 1 <= WorkersPerProcess <= MaxWorkersPerProcess; ProcessID >= 0, and < len(Addresses)
// when there are addresses, or 0 when there are none; every address is
// host:port with a non-empty host and a port in 1-65535, and no address
// repeats; SnapshotInterval > 0; BackupInterval >= 0, and 0 unless RecoveryDir
// is set; DropState and RecoveryPlan need RecoveryDir, and DropState holds no
// empty step id.
//
// Validate cannot know whether -s and -b were given; [Parse] checks that too.
func (c Config) Validate() error {
	return errors.Join(c.check(nil)...)
}

// given records which settings came from a flag or an environment variable.
// A nil *given means a Config built in code: the presence rules are then
// judged on values.
type given struct {
	snapshot, backup bool
}

// MaxWorkersPerProcess is the largest WorkersPerProcess a run accepts.
// Workers are goroutines that each run the whole flow, and they talk to
// each other in pairs, so what a run costs grows with the square of its
// workers; workers beyond the cores add no parallelism. 1024 is above the
// hardware threads of any one machine Go runs on today, so no real
// deployment needs more, while a typo such as -w 1000000 is refused
// before it allocates (it used to exhaust memory). A bound that depends on
// GOMAXPROCS was rejected: a flag that is valid on one machine and not on
// another makes a deployment fail when it moves.
const MaxWorkersPerProcess = 1024

const whyMaxWorkers = "more workers than cores add no parallelism, and each worker costs memory with every other"

// check returns one error per broken rule, in flag order.
func (c Config) check(g *given) []error {
	var errs []error
	add := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}

	if c.WorkersPerProcess < 1 {
		add("%s must be at least 1 (got %d)", flagW, c.WorkersPerProcess)
	} else if c.WorkersPerProcess > MaxWorkersPerProcess {
		add("%s must be at most %d (got %d): %s", flagW, MaxWorkersPerProcess, c.WorkersPerProcess, whyMaxWorkers)
	}

	switch {
	case c.ProcessID < 0:
		add("%s must not be negative (got %d)", flagI, c.ProcessID)
	case len(c.Addresses) == 0 && c.ProcessID != 0:
		add("%s must be 0 without %s (got %d)", flagI, flagA, c.ProcessID)
	case len(c.Addresses) > 0 && c.ProcessID >= len(c.Addresses):
		add("%s must be less than the number of %s, %d (got %d)",
			flagI, flagA, len(c.Addresses), c.ProcessID)
	}

	seen := make(map[string]bool, len(c.Addresses))
	for _, a := range c.Addresses {
		if err := checkAddress(a); err != nil {
			add("%s: %v", flagA, err)
			continue
		}
		if seen[a] {
			add("%s: %q is listed twice; every process needs its own address", flagA, a)
		}
		seen[a] = true
	}

	if c.SnapshotInterval <= 0 {
		add("%s must be greater than 0 (got %v): %v", flagS, c.SnapshotInterval, errSnapshotZero)
	}
	if c.BackupInterval < 0 {
		add("%s must not be negative (got %v)", flagB, c.BackupInterval)
	}

	recovery := c.RecoveryDir != ""
	if g != nil && recovery {
		if !g.snapshot {
			add("%s is required with %s (as in Bytewax), e.g. -s 30; or set %s",
				flagS, flagR, envSnapshot)
		}
		if !g.backup {
			add("%s is required with %s (as in Bytewax), e.g. -b 0; or set %s",
				flagB, flagR, envBackup)
		}
	}
	if !recovery && (g != nil && g.backup || g == nil && c.BackupInterval > 0) {
		add("%s is only allowed with %s", flagB, flagR)
	}
	if !recovery && len(c.DropState) > 0 {
		add("%s needs %s (there is no stored state to drop)", flagDrop, flagR)
	}
	for _, step := range c.DropState {
		if step == "" {
			add("%s: empty step id", flagDrop)
			break
		}
	}
	if !recovery && c.RecoveryPlan {
		add("%s needs %s (there is nothing to plan without recovery data)", flagPlan, flagR)
	}
	if c.APIAddr != "" {
		if err := checkListenAddress(c.APIAddr); err != nil {
			add("%s: %v", flagAPI, err)
		}
	} else if c.APIPprof {
		add("%s needs %s (profiles are served on that address)", flagPprof, flagAPI)
	}
	switch c.LogFormat {
	case "", "text", "json":
	default:
		add("%s must be text or json (got %q)", flagLogF, c.LogFormat)
	}
	switch c.LogLevel {
	case "", "debug", "info", "warn", "error":
	default:
		add("%s must be debug, info, warn or error (got %q)", flagLogL, c.LogLevel)
	}
	switch c.PrintFlow {
	case "", "mermaid", "dot", "json":
	default:
		add("%s must be mermaid, dot or json (got %q)", flagPrint, c.PrintFlow)
	}
	return errs
}

// errSnapshotZero explains why the snapshot interval cannot be 0.
var errSnapshotZero = errors.New("-s 0 is not allowed, because the snapshot interval is the epoch length; " +
	"use a small value such as -s 0.05 for frequent snapshots")

// checkListenAddress checks an address to listen on: host:port where the
// host may be empty (every interface) and the port may be 0 (any free one).
func checkListenAddress(a string) error {
	_, port, err := net.SplitHostPort(a)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return fmt.Errorf("%q is not host:port (%s); for example 127.0.0.1:9090 or :9090", a, ae.Err)
		}
		return fmt.Errorf("%q is not host:port; for example 127.0.0.1:9090 or :9090", a)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("%q has invalid port %q (want 0-65535)", a, port)
	}
	return nil
}

// checkAddress checks one host:port address.
func checkAddress(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return fmt.Errorf("%q is not host:port (%s)", a, ae.Err)
		}
		return fmt.Errorf("%q is not host:port", a)
	}
	if host == "" {
		return fmt.Errorf("%q has no host; other processes must be able to dial it", a)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("%q has invalid port %q (want 1-65535)", a, port)
	}
	return nil
}
