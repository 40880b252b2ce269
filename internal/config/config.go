// Package config holds the run settings of a Runnel flow binary and parses
// them from the command line and the environment. It is re-exported as
// runnel.Config; runnel.Main calls [Parse] and then runs the flow.
//
// # Flags
//
// Every flow binary accepts the flags of Bytewax's bytewax.run:
//
//	-w, --workers-per-process N   RUNNEL_WORKERS_PER_PROCESS   default 1; 1 to 1024
//	-r, --recovery-directory DIR  RUNNEL_RECOVERY_DIRECTORY    default none
//	-s, --snapshot-interval T     RUNNEL_SNAPSHOT_INTERVAL     default 10s; required with -r
//	-b, --backup-interval T       RUNNEL_BACKUP_INTERVAL       required with -r, only with -r
//	    --drop-state STEP         (flag only)
//	    --from-recovery DIR       (flag only; group mode)
//	    --recovery-plan           (flag only)
//	    --print-flow FORMAT       (flag only) mermaid, dot or json
//	    --api-addr HOST:PORT      RUNNEL_API_ADDR              default none
//	    --api-pprof               RUNNEL_API_PPROF             default false
//	    --log-format text|json    RUNNEL_LOG_FORMAT            default text
//	    --log-level LEVEL         RUNNEL_LOG_LEVEL             default warn
//	    --progress                (flag only)
//
// and the flags of group mode, which runs one flow as several processes
// that are members of a Kafka consumer group (docs/scaling.md):
//
//	--group APP               RUNNEL_GROUP                 default none
//	--brokers H:P[,H:P]       RUNNEL_BROKERS               default none
//	--key-groups N            RUNNEL_KEY_GROUPS            default 0 (chosen at first start)
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
//
// runnel.Config (run.go) mirrors this struct field for field, with the same
// documentation, and converts to it: a field added here must be added there
// too (the build fails until it is).
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
	// [MaxGroupLength] of them. Empty (the default) runs the flow in this
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
	// [MaxKeyGroups]; needs Group. It cannot change once the application
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

// Default returns the configuration used when no flag and no environment
// variable is given: one worker in a single process, no recovery, and a 10s snapshot interval (epoch length).
func Default() Config {
	return Config{
		WorkersPerProcess: 1,
		SnapshotInterval:  10 * time.Second,
	}
}

// Flag names as they appear in messages.
const (
	flagW     = "-w/--workers-per-process"
	flagGroup = "--group"
	flagBrk   = "--brokers"
	flagKG    = "--key-groups"
	flagGST   = "--group-session-timeout"
	flagGTT   = "--group-transaction-timeout"
	flagR     = "-r/--recovery-directory"
	flagS     = "-s/--snapshot-interval"
	flagB     = "-b/--backup-interval"
	flagDrop  = "--drop-state"
	flagPlan  = "--recovery-plan"
	flagFrom  = "--from-recovery"
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
// The rules: 1 <= WorkersPerProcess <= MaxWorkersPerProcess; Group, when
// set, is a valid topic-name prefix, comes with Brokers and without
// RecoveryDir; every broker is host:port with a non-empty host and a port
// in 1-65535; 0 <= KeyGroups <= MaxKeyGroups, and 0 without Group;
// SnapshotInterval > 0; BackupInterval >= 0, and 0 unless RecoveryDir
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

	if c.Group != "" {
		if err := checkGroup(c.Group); err != nil {
			add("%s: %v", flagGroup, err)
		}
		if len(c.Brokers) == 0 {
			add("%s needs %s (the Kafka brokers that hold the group, e.g. --brokers 127.0.0.1:9092); or set %s",
				flagGroup, flagBrk, envBrokers)
		}
		if c.RecoveryDir != "" {
			add("%s is not allowed with %s: group mode keeps state in Kafka changelog topics; drop -r",
				flagGroup, flagR)
		}
	}
	for _, b := range c.Brokers {
		if err := checkAddress(b); err != nil {
			add("%s: %v", flagBrk, err)
		}
	}
	switch {
	case c.KeyGroups < 0:
		add("%s must not be negative (got %d)", flagKG, c.KeyGroups)
	case c.KeyGroups > MaxKeyGroups:
		add("%s must be at most %d (got %d): %s", flagKG, MaxKeyGroups, c.KeyGroups, whyMaxKeyGroups)
	case c.KeyGroups > 0 && c.Group == "":
		add("%s needs %s (key groups split keyed state among the members of a group)", flagKG, flagGroup)
	}
	for _, t := range []struct {
		flag string
		d    time.Duration
	}{{flagGST, c.GroupSessionTimeout}, {flagGTT, c.GroupTransactionTimeout}} {
		switch {
		case t.d < 0:
			add("%s must not be negative (got %v)", t.flag, t.d)
		case t.d > 0 && c.Group == "":
			add("%s needs %s", t.flag, flagGroup)
		}
	}
	if c.GroupTransactionTimeout > 0 && c.GroupTransactionTimeout <= c.SnapshotInterval {
		add("%s %v must be longer than the snapshot interval %v: a member's transaction spans one epoch", flagGTT, c.GroupTransactionTimeout, c.SnapshotInterval)
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
	if c.FromRecovery != "" && c.Group == "" {
		add("%s needs %s (it seeds a group-mode application from a recovery directory)", flagFrom, flagGroup)
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

// MaxKeyGroups is the largest KeyGroups a group-mode application accepts.
// Key groups are partitions of the repartition and changelog topics of
// every keyed step, and each costs the brokers files and memory; 65536 is
// far above any member count one application reaches, while a typo such
// as --key-groups 1000000 is refused before topics are created.
const MaxKeyGroups = 65536

const whyMaxKeyGroups = "each key group is a partition of every repartition and changelog topic"

// MaxGroupLength is the longest Group name: Kafka topic names are at most
// 249 characters, and the group's internal topics append a step id and a
// suffix to it.
const MaxGroupLength = 128

// checkGroup checks that an application name can prefix Kafka topic names.
func checkGroup(g string) error {
	if len(g) > MaxGroupLength {
		return fmt.Errorf("%q is %d characters long; at most %d, because it prefixes topic names (Kafka allows 249)", g, len(g), MaxGroupLength)
	}
	if g == "." || g == ".." {
		return fmt.Errorf("%q is not a valid name; it prefixes topic names", g)
	}
	for _, r := range g {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("%q contains %q; it prefixes topic names, so only letters, digits, '.', '_' and '-' are allowed", g, r)
		}
	}
	return nil
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
		return fmt.Errorf("%q has no host", a)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("%q has invalid port %q (want 1-65535)", a, port)
	}
	return nil
}
