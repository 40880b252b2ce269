package config

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/pflag"
)

// envMap turns a map into the env argument of Parse.
func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// with returns Default() changed by f.
func with(f func(*Config)) Config {
	c := Default()
	f(&c)
	return c
}

func TestParse(t *testing.T) {
	rec := func(c *Config) { c.RecoveryDir = "db/"; c.SnapshotInterval = 30 * time.Second }
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want Config
		rest []string
	}{
		{name: "no args", want: Default()},

		// -w spellings.
		{name: "-w 1024", args: []string{"-w", "1024"}, want: with(func(c *Config) { c.WorkersPerProcess = 1024 })},
		{name: "-w 2", args: []string{"-w", "2"}, want: with(func(c *Config) { c.WorkersPerProcess = 2 })},
		{name: "-w2", args: []string{"-w2"}, want: with(func(c *Config) { c.WorkersPerProcess = 2 })},
		{name: "-w=2", args: []string{"-w=2"}, want: with(func(c *Config) { c.WorkersPerProcess = 2 })},
		{name: "--workers-per-process 2", args: []string{"--workers-per-process", "2"}, want: with(func(c *Config) { c.WorkersPerProcess = 2 })},
		{name: "--workers-per-process=2", args: []string{"--workers-per-process=2"}, want: with(func(c *Config) { c.WorkersPerProcess = 2 })},
		{name: "last -w wins", args: []string{"-w", "2", "-w3"}, want: with(func(c *Config) { c.WorkersPerProcess = 3 })},

		// Group mode.
		{name: "--group --brokers", args: []string{"--group", "counts", "--brokers", "k0:9092,k1:9092"},
			want: with(func(c *Config) { c.Group = "counts"; c.Brokers = []string{"k0:9092", "k1:9092"} })},
		{name: "--group= --brokers= --key-groups=", args: []string{"--group=my-app_1.v2", "--brokers=k0:9092", "--key-groups=64"},
			want: with(func(c *Config) { c.Group = "my-app_1.v2"; c.Brokers = []string{"k0:9092"}; c.KeyGroups = 64 })},
		{name: "--key-groups 0 is the default", args: []string{"--group", "g", "--brokers", "k:1", "--key-groups", "0"},
			want: with(func(c *Config) { c.Group = "g"; c.Brokers = []string{"k:1"} })},
		{name: "--key-groups at most", args: []string{"--group", "g", "--brokers", "k:1", "--key-groups", "65536"},
			want: with(func(c *Config) { c.Group = "g"; c.Brokers = []string{"k:1"}; c.KeyGroups = 65536 })},
		{name: "--brokers repeated accumulates", args: []string{"--brokers", "k0:1", "--brokers", "k1:2,k2:3"},
			want: with(func(c *Config) { c.Brokers = []string{"k0:1", "k1:2", "k2:3"} })},
		{name: "--brokers spaces and trailing ,", args: []string{"--brokers", "k0:1, k1:2,"},
			want: with(func(c *Config) { c.Brokers = []string{"k0:1", "k1:2"} })},
		{name: "--brokers IPv6", args: []string{"--brokers", "[::1]:9092,127.0.0.1:9093"},
			want: with(func(c *Config) { c.Brokers = []string{"[::1]:9092", "127.0.0.1:9093"} })},
		{name: "--brokers alone is the program's", args: []string{"--brokers", "127.0.0.1:9092"},
			want: with(func(c *Config) { c.Brokers = []string{"127.0.0.1:9092"} })},
		{name: "group mode from env",
			env:  map[string]string{envGroup: "counts", envBrokers: "k0:9092,k1:9092", envKeyGroups: "12", envWorkers: "2", envSnapshot: "1"},
			want: Config{WorkersPerProcess: 2, Group: "counts", Brokers: []string{"k0:9092", "k1:9092"}, KeyGroups: 12, SnapshotInterval: time.Second}},
		{name: "--from-recovery", args: []string{"--group", "g", "--brokers", "k:1", "--from-recovery", "db/"},
			want: with(func(c *Config) { c.Group = "g"; c.Brokers = []string{"k:1"}; c.FromRecovery = "db/" })},
		{name: "group flags beat env", args: []string{"--group", "flag", "--brokers", "f:1", "--key-groups", "3"},
			env:  map[string]string{envGroup: "env", envBrokers: "e:1,e:2", envKeyGroups: "12"},
			want: with(func(c *Config) { c.Group = "flag"; c.Brokers = []string{"f:1"}; c.KeyGroups = 3 })},

		// Recovery: -r -s -b in every spelling.
		{name: "tutorial", args: []string{"-r", "db/", "-s", "30", "-b", "0"}, want: with(rec)},
		{name: "short attached", args: []string{"-rdb/", "-s30", "-b0"}, want: with(rec)},
		{name: "short =", args: []string{"-r=db/", "-s=30s", "-b=0s"}, want: with(rec)},
		{name: "long", args: []string{"--recovery-directory", "db/", "--snapshot-interval", "30", "--backup-interval", "0"}, want: with(rec)},
		{name: "long =", args: []string{"--recovery-directory=db/", "--snapshot-interval=0.5m", "--backup-interval=1m30s"},
			want: with(func(c *Config) { rec(c); c.BackupInterval = 90 * time.Second })},
		{name: "fractional seconds", args: []string{"-r", "db/", "-s", "0.05", "-b", "1.5"},
			want: with(func(c *Config) {
				c.RecoveryDir = "db/"
				c.SnapshotInterval = 50 * time.Millisecond
				c.BackupInterval = 1500 * time.Millisecond
			})},
		{name: "-s without -r", args: []string{"-s", "50ms"},
			want: with(func(c *Config) { c.SnapshotInterval = 50 * time.Millisecond })},

		// --drop-state and --recovery-plan.
		{name: "--drop-state repeated and comma-separated", args: []string{"-r", "db/", "-s", "30", "-b", "0", "--drop-state", "f.a", "--drop-state=f.b, f.c"},
			want: with(func(c *Config) { rec(c); c.DropState = []string{"f.a", "f.b", "f.c"} })},
		{name: "--recovery-plan", args: []string{"--recovery-plan", "-r", "db/", "-s", "30", "-b", "0"},
			want: with(func(c *Config) { rec(c); c.RecoveryPlan = true })},
		{name: "--recovery-plan=false without -r", args: []string{"--recovery-plan=false"}, want: Default()},
		{name: "--print-flow", args: []string{"--print-flow", "mermaid"}, want: with(func(c *Config) { c.PrintFlow = "mermaid" })},
		{name: "logs and progress", args: []string{"--log-format", "json", "--log-level=debug", "--progress"},
			want: with(func(c *Config) { c.LogFormat, c.LogLevel, c.Progress = "json", "debug", true })},
		{name: "log env", env: map[string]string{envLogFormat: "json", envLogLevel: "warn"},
			want: with(func(c *Config) { c.LogFormat, c.LogLevel = "json", "warn" })},
		{name: "api", args: []string{"--api-addr", ":0", "--api-pprof"},
			want: with(func(c *Config) { c.APIAddr, c.APIPprof = ":0", true })},
		{name: "api env", env: map[string]string{envAPI: "127.0.0.1:9090", envPprof: "true"},
			want: with(func(c *Config) { c.APIAddr, c.APIPprof = "127.0.0.1:9090", true })},
		{name: "--print-flow=json", args: []string{"--print-flow=json"}, want: with(func(c *Config) { c.PrintFlow = "json" })},

		// Environment fallback and precedence.
		{name: "env only",
			env: map[string]string{
				envWorkers: "4", envBrokers: "h0:1,h1:2",
				envRecovery: "db/", envSnapshot: "30", envBackup: "10s",
			},
			want: Config{WorkersPerProcess: 4, Brokers: []string{"h0:1", "h1:2"},
				RecoveryDir: "db/", SnapshotInterval: 30 * time.Second, BackupInterval: 10 * time.Second}},
		{name: "flag beats env",
			args: []string{"-w", "3", "--brokers", "x:9", "-r", "flag/", "-s", "1", "-b", "2"},
			env: map[string]string{
				envWorkers: "4", envBrokers: "h0:1,h1:2",
				envRecovery: "db/", envSnapshot: "30", envBackup: "10s",
			},
			want: Config{WorkersPerProcess: 3, Brokers: []string{"x:9"},
				RecoveryDir: "flag/", SnapshotInterval: time.Second, BackupInterval: 2 * time.Second}},
		{name: "env beats default, flags mixed in", args: []string{"-r", "db/"},
			env:  map[string]string{envSnapshot: "30", envBackup: "0", envWorkers: "2"},
			want: with(func(c *Config) { rec(c); c.WorkersPerProcess = 2 })},
		{name: "empty env is unset", env: map[string]string{envWorkers: "", envRecovery: "", envBackup: ""}, want: Default()},
		{name: "bad env ignored when the flag is given", args: []string{"-w", "2"},
			env: map[string]string{envWorkers: "abc"}, want: with(func(c *Config) { c.WorkersPerProcess = 2 })},
		{name: "unrelated env", env: map[string]string{"RUNNEL_DROP_STATE": "x", "RUNNEL_RECOVERY_PLAN": "1"}, want: Default()},

		// Positional arguments.
		{name: "numbers after flags", args: []string{"-r", "db/", "-s", "30", "-b", "0", "0", "1", "2", "3", "4"},
			want: with(rec), rest: []string{"0", "1", "2", "3", "4"}},
		{name: "negative numbers after --", args: []string{"-r", "db/", "-s", "30", "-b", "0", "--", "-1", "-2"},
			want: with(rec), rest: []string{"-1", "-2"}},
		{name: "flags after -- are positional", args: []string{"--", "-w", "2", "--help"},
			want: Default(), rest: []string{"-w", "2", "--help"}},
		{name: "everything after the first positional", args: []string{"-w", "2", "in.txt", "-w", "3", "-h", "--", "-1"},
			want: with(func(c *Config) { c.WorkersPerProcess = 2 }), rest: []string{"in.txt", "-w", "3", "-h", "--", "-1"}},
		{name: "negative after a positional", args: []string{"5", "-1"}, want: Default(), rest: []string{"5", "-1"}},
		{name: "lone dash is positional", args: []string{"-"}, want: Default(), rest: []string{"-"}},
		{name: "flag value looks negative", args: []string{"-s", "30", "--", "-0.5"},
			want: with(func(c *Config) { c.SnapshotInterval = 30 * time.Second }), rest: []string{"-0.5"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, rest, err := Parse("flow", tt.args, envMap(tt.env))
			if err != nil {
				t.Fatalf("Parse(%q) error: %v", tt.args, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Parse(%q) config (-want +got):\n%s", tt.args, diff)
			}
			if diff := cmp.Diff(tt.rest, rest, cmpEmpty); diff != "" {
				t.Errorf("Parse(%q) positionals (-want +got):\n%s", tt.args, diff)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("Parse result does not validate: %v", err)
			}
		})
	}
}

// cmpEmpty treats nil and empty slices alike.
var cmpEmpty = cmp.Comparer(func(a, b []string) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return cmp.Equal(a, b)
})

func TestParseNilEnv(t *testing.T) {
	got, rest, err := Parse("flow", []string{"-w", "2", "x"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.WorkersPerProcess != 2 || len(rest) != 1 || rest[0] != "x" {
		t.Errorf("got %+v, %q", got, rest)
	}
}

// TestParseDoesNotShareState checks that each Parse starts from Default,
// in particular that --brokers accumulation does not leak between calls.
func TestParseDoesNotShareState(t *testing.T) {
	for range 2 {
		got, _, err := Parse("flow", []string{"--brokers", "h:1"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Brokers) != 1 {
			t.Fatalf("Brokers = %q", got.Brokers)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want [][]string // one entry per line of the error: substrings of that line
	}{
		// Bad flag values name the flag and the value.
		{name: "-w abc", args: []string{"-w", "abc"}, want: [][]string{{`-w/--workers-per-process: invalid value "abc": not an integer`}}},
		{name: "-w 0", args: []string{"-w", "0"}, want: [][]string{{`-w/--workers-per-process: invalid value "0": must be at least 1`}}},
		{name: "-w=-1", args: []string{"-w=-1"}, want: [][]string{{`-w/--workers-per-process`, `"-1"`, "at least 1"}}},
		{name: "-w -1", args: []string{"-w", "-1"}, want: [][]string{{`-w/--workers-per-process`, `"-1"`, "at least 1"}}},
		{name: "-w too many", args: []string{"-w", "1025"}, want: [][]string{{`-w/--workers-per-process: invalid value "1025": must be at most 1024`, "more workers than cores"}}},
		{name: "-w absurd", args: []string{"--workers-per-process=1000000"}, want: [][]string{{`-w/--workers-per-process`, `"1000000"`, "at most 1024"}}},
		{name: "-w too many in env", env: map[string]string{envWorkers: "5000"}, want: [][]string{{"RUNNEL_WORKERS_PER_PROCESS", `"5000"`, "-w/--workers-per-process", "at most 1024"}}},
		{name: "-w overflow", args: []string{"--workers-per-process=99999999999999999999"}, want: [][]string{{`-w/--workers-per-process`, "out of range"}}},
		{name: "-w missing value", args: []string{"-w"}, want: [][]string{{"flag needs an argument", "-w"}}},
		{name: "--key-groups -1", args: []string{"--group", "g", "--brokers", "k:1", "--key-groups", "-1"}, want: [][]string{{`--key-groups: invalid value "-1": must not be negative`}}},
		{name: "--key-groups x", args: []string{"--key-groups=x"}, want: [][]string{{`--key-groups`, `"x"`, "not an integer"}}},
		{name: "--key-groups too many", args: []string{"--group", "g", "--brokers", "k:1", "--key-groups", "65537"},
			want: [][]string{{`--key-groups: invalid value "65537": must be at most 65536`, "partition of every repartition and changelog topic"}}},
		{name: "-s xyz", args: []string{"-s", "xyz"}, want: [][]string{{`-s/--snapshot-interval: invalid value "xyz"`, "seconds", "Go duration"}}},
		{name: "-s 0", args: []string{"-s", "0"}, want: [][]string{{`-s/--snapshot-interval: invalid value "0": must be greater than 0`, "-s 0 is not allowed"}}},
		{name: "-s 0s", args: []string{"--snapshot-interval=0s"}, want: [][]string{{`-s/--snapshot-interval`, `"0s"`, "greater than 0"}}},
		{name: "-s -5", args: []string{"-s", "-5"}, want: [][]string{{`-s/--snapshot-interval`, `"-5"`, "negative"}}},
		{name: "-b -1s", args: []string{"-r", "db", "-s", "1", "-b", "-1s"}, want: [][]string{{`-b/--backup-interval`, `"-1s"`, "negative"}}},
		{name: "-b empty", args: []string{"--backup-interval="}, want: [][]string{{`-b/--backup-interval`, `""`, "empty interval"}}},
		{name: "--brokers no port", args: []string{"--brokers", "nohost"}, want: [][]string{{`--brokers: invalid value "nohost"`, "not host:port"}}},
		{name: "--brokers no host", args: []string{"--brokers", ":9092"}, want: [][]string{{`--brokers`, `":9092"`, "no host"}}},
		{name: "--brokers port 0", args: []string{"--brokers", "h:0"}, want: [][]string{{`--brokers`, `"h:0"`, "invalid port"}}},
		{name: "--brokers port too big", args: []string{"--brokers", "h0:1,h1:65536"}, want: [][]string{{`--brokers`, `"h1:65536"`, "1-65535"}}},
		{name: "--brokers named port", args: []string{"--brokers", "h:kafka"}, want: [][]string{{`--brokers`, `"h:kafka"`, "invalid port"}}},
		{name: "--brokers empty", args: []string{"--brokers", ","}, want: [][]string{{`--brokers`, "no address"}}},
		{name: "--brokers ; separated", args: []string{"--brokers", "h0:1;h1:2"}, want: [][]string{{`--brokers`, `"h0:1;h1:2"`, `separate brokers with ","`}}},
		{name: "--group empty", args: []string{"--group", ""}, want: [][]string{{`--group: invalid value ""`, "empty application name"}}},
		{name: "--group bad character", args: []string{"--group", "my app", "--brokers", "k:1"},
			want: [][]string{{`--group: invalid value "my app"`, `contains ' '`, "only letters, digits"}}},
		{name: "--group slash", args: []string{"--group=a/b", "--brokers", "k:1"}, want: [][]string{{`--group`, `"a/b"`, `contains '/'`}}},
		{name: "--group dot", args: []string{"--group", ".", "--brokers", "k:1"}, want: [][]string{{`--group`, `"."`, "not a valid name"}}},
		{name: "--group too long", args: []string{"--group", strings.Repeat("a", 129), "--brokers", "k:1"},
			want: [][]string{{`--group`, "129 characters long; at most 128"}}},
		{name: "-r empty", args: []string{"-r", ""}, want: [][]string{{`-r/--recovery-directory: invalid value ""`, "empty directory"}}},
		{name: "--drop-state empty", args: []string{"--drop-state", "a,,b"}, want: [][]string{{`--drop-state: invalid value "a,,b": empty step id`}}},
		{name: "unknown long", args: []string{"--workers=2"}, want: [][]string{{"unknown flag: --workers"}}},
		{name: "unknown short", args: []string{"-x"}, want: [][]string{{"unknown shorthand flag: 'x'"}}},
		{name: "negative positional without --", args: []string{"-s", "30", "-1"}, want: [][]string{{"unknown shorthand flag", "put -- before it"}}},

		// Bad environment values name the variable, the value and the flag.
		{name: "env workers", env: map[string]string{envWorkers: "abc"},
			want: [][]string{{`RUNNEL_WORKERS_PER_PROCESS: invalid value "abc" for -w/--workers-per-process: not an integer`}}},
		{name: "env workers 0", env: map[string]string{envWorkers: "0"},
			want: [][]string{{`RUNNEL_WORKERS_PER_PROCESS: invalid value "0"`, "at least 1"}}},
		{name: "env key groups", env: map[string]string{envGroup: "g", envBrokers: "k:1", envKeyGroups: "-2"},
			want: [][]string{{"RUNNEL_KEY_GROUPS", `"-2"`, "--key-groups", "negative"}}},
		{name: "env brokers", env: map[string]string{envBrokers: "h:1,bad"}, want: [][]string{{"RUNNEL_BROKERS", `"h:1,bad"`, "--brokers", `"bad" is not host:port`}}},
		{name: "env group", env: map[string]string{envGroup: "a b", envBrokers: "k:1"}, want: [][]string{{"RUNNEL_GROUP", `"a b"`, "--group", `contains ' '`}}},
		{name: "env snapshot 0", args: []string{"-r", "db", "-b", "0"}, env: map[string]string{envSnapshot: "0"},
			want: [][]string{{"RUNNEL_SNAPSHOT_INTERVAL", `"0"`, "-s 0 is not allowed"}}},
		{name: "env snapshot bad", env: map[string]string{envSnapshot: "soon"}, want: [][]string{{"RUNNEL_SNAPSHOT_INTERVAL", `"soon"`}}},
		{name: "env backup NaN", args: []string{"-r", "db", "-s", "1"}, env: map[string]string{envBackup: "NaN"},
			want: [][]string{{"RUNNEL_BACKUP_INTERVAL", `"NaN"`, "-b/--backup-interval"}}},
		{name: "several bad env values", env: map[string]string{envWorkers: "x", envKeyGroups: "y"},
			want: [][]string{{"RUNNEL_WORKERS_PER_PROCESS", `"x"`}, {"RUNNEL_KEY_GROUPS", `"y"`}}},

		// Rules.
		{name: "-r alone", args: []string{"-r", "db/"}, want: [][]string{
			{"-s/--snapshot-interval is required with -r/--recovery-directory", "-s 30"},
			{"-b/--backup-interval is required with -r/--recovery-directory", "-b 0"},
		}},
		{name: "-r -s", args: []string{"-r", "db/", "-s", "30"}, want: [][]string{{"-b/--backup-interval is required with -r", "RUNNEL_BACKUP_INTERVAL"}}},
		{name: "-r -b", args: []string{"-r", "db/", "-b", "0"}, want: [][]string{{"-s/--snapshot-interval is required with -r", "RUNNEL_SNAPSHOT_INTERVAL"}}},
		{name: "env -r alone", env: map[string]string{envRecovery: "db/"}, want: [][]string{{"-s/--snapshot-interval is required"}, {"-b/--backup-interval is required"}}},
		{name: "-b 0 without -r", args: []string{"-b", "0"}, want: [][]string{{"-b/--backup-interval is only allowed with -r/--recovery-directory"}}},
		{name: "env -b without -r", env: map[string]string{envBackup: "0"}, want: [][]string{{"-b/--backup-interval is only allowed with -r"}}},
		{name: "--recovery-plan without -r", args: []string{"--recovery-plan"}, want: [][]string{{"--recovery-plan needs -r/--recovery-directory"}}},
		{name: "--log-level bad", args: []string{"--log-level", "trace"}, want: [][]string{{"--log-level", `"trace"`, "debug, info, warn, error"}}},
		{name: "--log-format bad env", env: map[string]string{envLogFormat: "xml"}, want: [][]string{{"RUNNEL_LOG_FORMAT", `"xml"`, "text, json"}}},
		{name: "--api-addr bad port", args: []string{"--api-addr", "h:70000"}, want: [][]string{{"--api-addr", "invalid port"}}},
		{name: "--api-pprof alone", args: []string{"--api-pprof"}, want: [][]string{{"--api-pprof needs --api-addr"}}},
		{name: "--print-flow bad", args: []string{"--print-flow", "svg"}, want: [][]string{{"--print-flow", `"svg"`, "mermaid, dot, json"}}},
		{name: "--drop-state without -r", args: []string{"--drop-state", "f.x"}, want: [][]string{{"--drop-state needs -r/--recovery-directory"}}},
		{name: "--group without --brokers", args: []string{"--group", "counts"},
			want: [][]string{{"--group needs --brokers", "--brokers 127.0.0.1:9092", "RUNNEL_BROKERS"}}},
		{name: "env group without brokers", env: map[string]string{envGroup: "counts"}, want: [][]string{{"--group needs --brokers"}}},
		{name: "--group with -r", args: []string{"--group", "counts", "--brokers", "k:1", "-r", "db/", "-s", "1", "-b", "0"},
			want: [][]string{{"--group is not allowed with -r/--recovery-directory: group mode keeps state in Kafka changelog topics; drop -r"}}},
		{name: "--group with env -r", args: []string{"--group", "counts", "--brokers", "k:1"}, env: map[string]string{envRecovery: "db/", envSnapshot: "1", envBackup: "0"},
			want: [][]string{{"--group is not allowed with -r", "drop -r"}}},
		{name: "--key-groups without --group", args: []string{"--key-groups", "8"},
			want: [][]string{{"--key-groups needs --group"}}},
		{name: "--key-groups without --group, with --brokers", args: []string{"--brokers", "k:1", "--key-groups", "8"},
			want: [][]string{{"--key-groups needs --group"}}},
		{name: "--from-recovery without --group", args: []string{"--from-recovery", "db/"},
			want: [][]string{{"--from-recovery needs --group"}}},
		{name: "--from-recovery empty", args: []string{"--group", "g", "--brokers", "k:1", "--from-recovery="},
			want: [][]string{{"--from-recovery", "empty directory"}}},
		{name: "removed -i", args: []string{"-i", "1"}, want: [][]string{{"unknown shorthand flag: 'i'"}}},
		{name: "removed -a", args: []string{"-a", "h0:1"}, want: [][]string{{"unknown shorthand flag: 'a'"}}},
		{name: "removed --addresses", args: []string{"--addresses", "h0:1"}, want: [][]string{{"unknown flag: --addresses"}}},
		{name: "removed --process-id", args: []string{"--process-id=0"}, want: [][]string{{"unknown flag: --process-id"}}},

		// Every violation at once.
		{name: "all rules at once",
			args: []string{"--key-groups", "3", "-b", "5", "--drop-state", "f.x", "--recovery-plan"},
			env:  map[string]string{envWorkers: "0", envSnapshot: "-1"},
			want: [][]string{
				{"RUNNEL_WORKERS_PER_PROCESS", `"0"`, "at least 1"},
				{"RUNNEL_SNAPSHOT_INTERVAL", `"-1"`, "negative"},
				{"--key-groups needs --group"},
				{"-b/--backup-interval is only allowed with -r"},
				{"--drop-state needs -r"},
				{"--recovery-plan needs -r"},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, rest, err := Parse("flow", tt.args, envMap(tt.env))
			if err == nil {
				t.Fatalf("Parse(%q, %v) = %+v, %q, want an error", tt.args, tt.env, got, rest)
			}
			if errors.Is(err, ErrHelp) {
				t.Fatalf("got ErrHelp")
			}
			checkLines(t, err, tt.want)
			if diff := cmp.Diff(Config{}, got); diff != "" || rest != nil {
				t.Errorf("on error, got %+v, %q, want zero values", got, rest)
			}
		})
	}
}

// checkLines checks that err has one line per entry of lines, each line
// containing all the substrings of its entry, in order.
func checkLines(t *testing.T, err error, lines [][]string) {
	t.Helper()
	got := strings.Split(err.Error(), "\n")
	if len(got) != len(lines) {
		t.Errorf("error has %d lines, want %d:\n%v", len(got), len(lines), err)
		return
	}
	for i, want := range lines {
		for _, w := range want {
			if !strings.Contains(got[i], w) {
				t.Errorf("error line %d = %q, want it to contain %q", i+1, got[i], w)
			}
		}
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{
		{"-h"},
		{"--help"},
		{"--help=true"},
		{"-w", "2", "-h"},
		{"-h", "-w", "abc"},
		{"-r", "db/", "--help"}, // help wins over missing -s and -b
	} {
		_, _, err := Parse("flow", args, envMap(map[string]string{envWorkers: "bad"}))
		if !errors.Is(err, ErrHelp) || !errors.Is(err, pflag.ErrHelp) {
			t.Errorf("Parse(%q) error = %v, want ErrHelp wrapping pflag.ErrHelp", args, err)
		}
	}
	// After a positional or --, -h belongs to the program.
	for _, args := range [][]string{{"--", "-h"}, {"x", "--help"}} {
		_, rest, err := Parse("flow", args, nil)
		if err != nil || len(rest) == 0 {
			t.Errorf("Parse(%q) = %q, %v, want positionals", args, rest, err)
		}
	}
}

func TestUsage(t *testing.T) {
	u := Usage("myflow")
	var c Config
	fs := newFlagSet("myflow", &c)
	fs.VisitAll(func(f *pflag.Flag) {
		if !strings.Contains(u, "--"+f.Name+" ") {
			t.Errorf("Usage does not explain --%s", f.Name)
		}
		if f.Shorthand != "" && !strings.Contains(u, "-"+f.Shorthand+", --"+f.Name) {
			t.Errorf("Usage does not show -%s, --%s", f.Shorthand, f.Name)
		}
	})
	for _, fe := range flagEnv {
		if !strings.Contains(u, fe.env) {
			t.Errorf("Usage does not name %s", fe.env)
		}
	}
	for _, want := range []string{
		"Usage: myflow [flags]\n",
		"-h, --help",
		"Default 1.", "Default 0:", "Default 10s",
		"myflow --group myapp --brokers",
		"-s 0 is not allowed",
		`"30", "0.05"`, `"30s"`, `"50ms"`,
		"runnel recovery init db_dir/ 1",
		"myflow -r db_dir/ -s 30 -b 0",
		"Exit status: 0 when the input ended, 1 when the run failed",
		`"go run" prints "exit`,
	} {
		if !strings.Contains(u, want) {
			t.Errorf("Usage does not contain %q", want)
		}
	}
	// A program that takes no arguments is shown none.
	for _, bad := range []string{"[args...]", "0 1 2 3 4", "-- -1 -2"} {
		if strings.Contains(u, bad) {
			t.Errorf("Usage of a program without arguments contains %q", bad)
		}
	}
	if strings.Contains(u, "PROGRAM") {
		t.Error("Usage still contains the PROGRAM placeholder")
	}
	for i, line := range strings.Split(u, "\n") {
		if len(line) > 80 {
			t.Errorf("Usage line %d is longer than 80 columns: %q", i+1, line)
		}
	}
}

// TestUsageFor: a program's own usage line, description and examples come
// first; arguments are explained only when the program takes them.
func TestUsageFor(t *testing.T) {
	u := UsageFor("wordcount", Program{
		Args:  "[FILE]",
		About: "Counts the words of FILE, or of standard input without one.",
		Examples: []Example{
			{Comment: "Count the words of a book on four workers.", Command: "wordcount -w 4 book.txt"},
		},
	})
	want := "Usage: wordcount [flags] [--] [FILE]\n\nCounts the words of FILE, or of standard input without one.\n\n" +
		"Runs the dataflow until its input ends. Arguments after the flags, or after\n"
	if !strings.HasPrefix(u, want) {
		t.Errorf("UsageFor starts:\n%s\nwant:\n%s", u[:min(len(u), len(want)+40)], want)
	}
	ex := "Examples:\n  # Count the words of a book on four workers.\n  wordcount -w 4 book.txt\n\n  # Create one recovery partition"
	if !strings.Contains(u, ex) {
		t.Errorf("UsageFor does not show the program's example first:\n%s", u)
	}
	if u := UsageFor("f", Program{TakesArgs: true}); !strings.Contains(u, "Usage: f [flags] [--] [args...]\n") {
		t.Errorf("UsageFor(TakesArgs) = %s", u)
	}
	for i, line := range strings.Split(u, "\n") {
		if len(line) > 80 {
			t.Errorf("UsageFor line %d is longer than 80 columns: %q", i+1, line)
		}
	}
}

// TestUsageExamplesParse checks that the example commands in Usage parse
// and leave no positional arguments for a program that takes none.
func TestUsageExamplesParse(t *testing.T) {
	for _, line := range strings.Split(Usage("myflow"), "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "myflow ") {
			continue
		}
		args := strings.Fields(strings.TrimPrefix(line, "myflow "))
		for i, a := range args {
			args[i] = strings.Trim(a, `"`)
		}
		if _, rest, err := Parse("myflow", args, nil); err != nil || len(rest) > 0 {
			t.Errorf("example %q: args %q, %v", line, rest, err)
		}
	}
}

func TestParseInterval(t *testing.T) {
	good := []struct {
		in   string
		want time.Duration
	}{
		{"30", 30 * time.Second},
		{"0", 0},
		{"000", 0},
		{"0.05", 50 * time.Millisecond},
		{".5", 500 * time.Millisecond},
		{"5.", 5 * time.Second},
		{"1.5", 1500 * time.Millisecond},
		{"0.000000001", time.Nanosecond},
		{"1.0000000019", time.Second + time.Nanosecond}, // truncated below 1ns
		{"0.1", 100 * time.Millisecond},                 // exact, no float rounding
		{"9223372036", 9223372036 * time.Second},
		{"9223372036.854775807", math.MaxInt64},
		{"30s", 30 * time.Second},
		{"50ms", 50 * time.Millisecond},
		{"1m30s", 90 * time.Second},
		{"1h", time.Hour},
		{"0s", 0},
		{"1.5s", 1500 * time.Millisecond},
		{"100us", 100 * time.Microsecond},
		{"2562047h", 2562047 * time.Hour},
	}
	for _, tt := range good {
		got, err := ParseInterval(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseInterval(%q) = %v, %v, want %v", tt.in, got, err, tt.want)
		}
	}

	bad := []struct{ in, want string }{
		{"", "empty interval"},
		{"abc", "invalid interval"},
		{"s", "invalid interval"},
		{"30 s", "invalid interval"},
		{" 30", "invalid interval"},
		{"1.2.3", "invalid interval"},
		{"1e3", "invalid interval"},
		{"0x10", "invalid interval"},
		{"1_000", "invalid interval"},
		{"-1", "negative"},
		{"-0.5", "negative"},
		{"-1s", "negative"},
		{"-0", "negative"},
		{"NaN", "invalid interval"},
		{"nan", "invalid interval"},
		{"Inf", "invalid interval"},
		{"+Inf", "invalid interval"},
		{"-Inf", "negative"},
		{"9223372037", "too large"},
		{"9223372036.854775808", "too large"},
		{"99999999999999999999", "too large"},
		{"2562048h", "invalid interval"},
		{"0.0000000001", "shorter than 1ns"},
		{"0.1ns", "shorter than 1ns"},
	}
	for _, tt := range bad {
		got, err := ParseInterval(tt.in)
		if err == nil {
			t.Errorf("ParseInterval(%q) = %v, want an error", tt.in, got)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), `"`+tt.in+`"`) && tt.in != "" {
			t.Errorf("ParseInterval(%q) error = %q, want it to contain %q and the input", tt.in, err, tt.want)
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		c    Config
		want []string // one line each; empty means valid
	}{
		{name: "default", c: Default()},
		{name: "recovery in code uses the field values", c: with(func(c *Config) { c.RecoveryDir = "db/" })},
		{name: "group", c: with(func(c *Config) {
			c.Group = "counts"
			c.Brokers = []string{"a:1", "b:1"}
			c.KeyGroups = 64
			c.WorkersPerProcess = 8
		})},
		{name: "brokers without group (the program's own)", c: with(func(c *Config) { c.Brokers = []string{"a:1"} })},
		{name: "recovery with everything", c: with(func(c *Config) {
			c.RecoveryDir = "db/"
			c.BackupInterval = time.Hour
			c.DropState = []string{"f.x"}
			c.RecoveryPlan = true
		})},

		{name: "workers 0", c: with(func(c *Config) { c.WorkersPerProcess = 0 }),
			want: []string{"-w/--workers-per-process must be at least 1 (got 0)"}},
		{name: "workers too many", c: with(func(c *Config) { c.WorkersPerProcess = 1_000_000 }),
			want: []string{"-w/--workers-per-process must be at most 1024 (got 1000000): more workers than cores add no parallelism"}},
		{name: "group without brokers", c: with(func(c *Config) { c.Group = "counts" }),
			want: []string{"--group needs --brokers"}},
		{name: "group with recovery", c: with(func(c *Config) { c.Group = "counts"; c.Brokers = []string{"k:1"}; c.RecoveryDir = "db/" }),
			want: []string{"--group is not allowed with -r/--recovery-directory: group mode keeps state in Kafka changelog topics; drop -r"}},
		{name: "bad group name", c: with(func(c *Config) { c.Group = "a*b"; c.Brokers = []string{"k:1"} }),
			want: []string{`--group: "a*b" contains '*'`}},
		{name: "key groups negative", c: with(func(c *Config) { c.Group = "g"; c.Brokers = []string{"k:1"}; c.KeyGroups = -1 }),
			want: []string{"--key-groups must not be negative (got -1)"}},
		{name: "key groups too many", c: with(func(c *Config) { c.Group = "g"; c.Brokers = []string{"k:1"}; c.KeyGroups = 65537 }),
			want: []string{"--key-groups must be at most 65536 (got 65537)"}},
		{name: "key groups without group", c: with(func(c *Config) { c.KeyGroups = 4 }),
			want: []string{"--key-groups needs --group"}},
		{name: "bad brokers", c: with(func(c *Config) { c.Brokers = []string{"a", "b:x", ":1"} }),
			want: []string{
				`--brokers: "a" is not host:port (missing port in address)`,
				`--brokers: "b:x" has invalid port "x" (want 1-65535)`,
				`--brokers: ":1" has no host`,
			}},
		{name: "snapshot 0", c: with(func(c *Config) { c.SnapshotInterval = 0 }),
			want: []string{"-s/--snapshot-interval must be greater than 0 (got 0s): -s 0 is not allowed"}},
		{name: "snapshot negative", c: with(func(c *Config) { c.SnapshotInterval = -time.Second }),
			want: []string{"-s/--snapshot-interval must be greater than 0 (got -1s)"}},
		{name: "backup negative", c: with(func(c *Config) { c.RecoveryDir = "db"; c.BackupInterval = -time.Second }),
			want: []string{"-b/--backup-interval must not be negative (got -1s)"}},
		{name: "backup without recovery", c: with(func(c *Config) { c.BackupInterval = time.Second }),
			want: []string{"-b/--backup-interval is only allowed with -r/--recovery-directory"}},
		{name: "drop state without recovery", c: with(func(c *Config) { c.DropState = []string{"f.x"} }),
			want: []string{"--drop-state needs -r/--recovery-directory"}},
		{name: "empty drop state", c: with(func(c *Config) { c.RecoveryDir = "db"; c.DropState = []string{"f.x", "", ""} }),
			want: []string{"--drop-state: empty step id"}},
		{name: "recovery plan without recovery", c: with(func(c *Config) { c.RecoveryPlan = true }),
			want: []string{"--recovery-plan needs -r/--recovery-directory"}},
		{name: "zero Config", c: Config{},
			want: []string{"-w/--workers-per-process must be at least 1", "-s/--snapshot-interval must be greater than 0"}},
		{name: "every rule at once", c: Config{
			WorkersPerProcess: -3,
			Group:             "x y",
			Brokers:           []string{"x"},
			KeyGroups:         -1,
			RecoveryDir:       "",
			SnapshotInterval:  0,
			BackupInterval:    -1,
			DropState:         []string{""},
			RecoveryPlan:      true,
		}, want: []string{
			"-w/--workers-per-process must be at least 1 (got -3)",
			`--group: "x y" contains ' '`,
			`--brokers: "x" is not host:port`,
			"--key-groups must not be negative (got -1)",
			"-s/--snapshot-interval must be greater than 0 (got 0s)",
			"-b/--backup-interval must not be negative (got -1ns)",
			"--drop-state needs -r/--recovery-directory",
			"--drop-state: empty step id",
			"--recovery-plan needs -r/--recovery-directory",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %d errors", len(tt.want))
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("Validate() has %d lines, want %d:\n%v", len(lines), len(tt.want), err)
			}
			for i, w := range tt.want {
				if !strings.Contains(lines[i], w) {
					t.Errorf("line %d = %q, want it to contain %q", i+1, lines[i], w)
				}
			}
		})
	}
}
