// Command runnel manages Runnel's recovery data and runs a development
// Kafka broker.
//
//	runnel recovery init DIR N                     create N empty partitions in DIR
//	runnel recovery inspect DIR                    describe the recovery data in DIR
//	runnel recovery inspect DIR --step S --key K   print the latest state of one key as JSON
//	runnel recovery inspect DIR --json             the description as one JSON object
//	runnel recovery verify DIR [--strict]          check everything a resume relies on
//	runnel recovery dump DIR [--step S] [--key K]... [--epoch E] [--format jsonl|json|csv]
//	                                               every key's committed state and every position
//	runnel recovery backup DIR DEST                consistent copy of DIR, even while a flow runs
//	runnel recovery repartition DIR --to M         move the committed state to M partitions (offline)
//	runnel kafka serve [--addr A] [--topic T:N]... [--data-dir D] [--group-min-session-timeout D]
//	                                               run a development Kafka broker on 127.0.0.1
//
// verify reads like inspect (it never modifies a byte) and prints, per
// partition file, what a resume could not rely on; it exits 1 when it finds a
// problem (with --strict, also on warnings: rows a crashed run wrote but never
// committed).
//
// init prints nothing on success, like `python -m bytewax.recovery DIR N`.
// inspect never modifies a byte of the directory (not even SQLite's -wal and
// -shm files) and works on a read-only directory; it exits 1, after the
// report, when the next run would be refused (partitions out of step or from
// different directories). Every command exits 0 on success, 1 on failure and
// 2 on a usage error.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/runnel-dev/runnel/internal/codec"
	"github.com/runnel-dev/runnel/recovery"
)

const usage = `usage:
  runnel recovery init DIR N                     create N recovery partitions in DIR
  runnel recovery inspect DIR [--step S --key K] describe recovery data, or print one key's state
  runnel recovery inspect DIR --json             the same description as one JSON object
  runnel recovery verify DIR [--strict]          check everything a resume relies on; exit 1 on damage
  runnel recovery dump DIR [--step S] [--key K]... [--epoch E] [--format jsonl|json|csv]
                                                 every key's committed state and every input/output
                                                 position, decoded to JSON (one object per line)
  runnel recovery backup DIR DEST                copy DIR to the new directory DEST consistently,
                                                 even while a flow runs on DIR
  runnel recovery repartition DIR --to M         move DIR's committed state and positions to M
                                                 partitions (no run may use DIR meanwhile)
  runnel kafka serve [--addr 127.0.0.1:9092] [--topic NAME:PARTITIONS]... [--data-dir DIR]
                     [--group-min-session-timeout 6s]
                                                 run a development Kafka broker (franz-go's kfake)
  runnel help                                    show this help
`

// errUsage marks errors that are the caller's mistake in invoking runnel; they
// exit 2 and are followed by the usage text.
var errUsage = errors.New("usage")

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command line and returns the exit code; it is main
// without the process, so tests can run the CLI in-process.
func run(args []string, stdout, stderr io.Writer) int {
	err := dispatch(args, stdout, stderr)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, pflag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "runnel: %v\n%s", err, usage)
		return 2
	default:
		fmt.Fprintf(stderr, "runnel: %v\n", err)
		return 1
	}
}

func usageErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
}

func dispatch(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageErr("missing command")
	}
	switch args[0] {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	case "recovery":
	case "kafka":
		if len(args) < 2 || args[1] != "serve" {
			return usageErr("missing kafka command (serve)")
		}
		return kafkaServe(args[2:], stdout)
	default:
		return usageErr("unknown command %q", args[0])
	}
	if len(args) < 2 {
		return usageErr("missing recovery command (init, inspect, verify, dump, backup or repartition)")
	}
	switch args[1] {
	case "init":
		return recoveryInit(args[2:], stdout)
	case "inspect":
		return recoveryInspect(args[2:], stdout, stderr)
	case "verify":
		return recoveryVerify(args[2:], stdout, stderr)
	case "dump":
		return recoveryDump(args[2:], stdout, stderr)
	case "backup":
		return recoveryBackup(args[2:], stdout)
	case "repartition":
		return recoveryRepartition(args[2:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		return usageErr("unknown recovery command %q", args[1])
	}
}

// recoveryInit takes positional arguments only, so that "-3" is reported as
// a bad N rather than as an unknown flag.
func recoveryInit(args []string, stdout io.Writer) error {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprint(stdout, usage)
		return nil
	}
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) != 2 {
		return usageErr("recovery init takes DIR and N, got %d argument(s)", len(args))
	}
	n, err := strconv.Atoi(args[1])
	if err != nil || n < 1 {
		return usageErr("N must be a positive integer, got %q", args[1])
	}
	return recovery.Init(args[0], n)
}

// parseDir parses the flags of a subcommand that takes one directory, as
// "runnel recovery NAME [flags] DIR".
func parseDir(fs *pflag.FlagSet, args []string) (string, error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return "", err
		}
		return "", usageErr("%v", err)
	}
	if fs.NArg() != 1 {
		return "", usageErr("%s takes DIR, got %d argument(s)", strings.TrimPrefix(fs.Name(), "runnel "), fs.NArg())
	}
	return fs.Arg(0), nil
}

func recoveryInspect(args []string, stdout, stderr io.Writer) error {
	fs := pflag.NewFlagSet("runnel recovery inspect", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	step := fs.String("step", "", "step id whose state to print (with --key)")
	key := fs.String("key", "", "state key to print (with --step)")
	asJSON := fs.Bool("json", false, "print the description as one JSON object")
	dir, err := parseDir(fs, args)
	if err != nil {
		return err
	}
	if fs.Changed("step") != fs.Changed("key") {
		return usageErr("--step and --key go together")
	}
	if *asJSON && fs.Changed("step") {
		return usageErr("--json describes the whole directory; it does not go with --step and --key")
	}
	if !fs.Changed("step") {
		r, err := recovery.Inspect(dir)
		if err != nil {
			return err
		}
		if *asJSON {
			err = writeReportJSON(stdout, r)
		} else {
			_, err = r.WriteTo(stdout)
		}
		if err != nil {
			return err
		}
		if len(r.Verdict.Problems) > 0 {
			// The report says why; exit 1 so that scripts notice.
			return fmt.Errorf("the next run on %s would be refused: %w (see the report above)", dir, r.Verdict.Problems[0].Err)
		}
		return nil
	}
	s, err := recovery.OpenReadOnly(dir)
	if err != nil {
		return err
	}
	defer s.Close()
	rep, err := s.Report()
	if err != nil {
		return err
	}
	if *step, err = resolveStep(rep, *step, dir); err != nil {
		return err
	}
	value, epoch, ok, err := s.Latest(*step, *key)
	if err != nil {
		return err
	}
	switch {
	case !ok && epoch == 0:
		return fmt.Errorf("no state stored for step %s key %q in %s", *step, *key, dir)
	case !ok:
		_, err = fmt.Fprintf(stdout, "step %s key %q: deleted in epoch %d\n", *step, *key, epoch)
		return err
	}
	js, err := codec.ToJSON(value)
	if err != nil {
		return fmt.Errorf("step %s key %q epoch %d: %w", *step, *key, epoch, err)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, js, "", "  "); err != nil {
		return fmt.Errorf("step %s key %q epoch %d: %w", *step, *key, epoch, err)
	}
	_, err = fmt.Fprintf(stdout, "step %s key %q: epoch %d\n%s\n", *step, *key, epoch, pretty.Bytes())
	return err
}

func recoveryVerify(args []string, stdout, stderr io.Writer) error {
	fs := pflag.NewFlagSet("runnel recovery verify", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	strict := fs.Bool("strict", false, "fail on warnings too (rows written after the last commit)")
	dir, err := parseDir(fs, args)
	if err != nil {
		return err
	}
	r, err := recovery.Verify(dir)
	if err != nil {
		return err
	}
	if _, err := r.WriteTo(stdout); err != nil {
		return err
	}
	switch {
	case r.Problems() > 0:
		return fmt.Errorf("verify %s: %d problem(s) found (see above)", dir, r.Problems())
	case *strict && r.Warnings() > 0:
		return fmt.Errorf("verify %s: %d warning(s) and --strict (see above)", dir, r.Warnings())
	}
	return nil
}

// resolveStep finds the stored step id that step names: itself, or, since
// step ids are stored with the flow prefix ("flow.step"), the one stored id
// ending in "."+step.
func resolveStep(rep recovery.Report, step, dir string) (string, error) {
	ids := make([]string, 0, len(rep.Steps))
	for _, st := range rep.Steps {
		ids = append(ids, st.ID)
	}
	if len(ids) == 0 || slices.Contains(ids, step) {
		return step, nil
	}
	var match []string
	for _, id := range ids {
		if strings.HasSuffix(id, "."+step) {
			match = append(match, id)
		}
	}
	if len(match) != 1 {
		return "", fmt.Errorf("no state stored for step %s in %s; stored step ids (give one in full): %s",
			step, dir, strings.Join(ids, ", "))
	}
	return match[0], nil
}

// recoveryBackup takes positional arguments only, like init.
func recoveryBackup(args []string, stdout io.Writer) error {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprint(stdout, usage)
		return nil
	}
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) != 2 {
		return usageErr("recovery backup takes DIR and DEST, got %d argument(s)", len(args))
	}
	res, err := recovery.Backup(args[0], args[1])
	if err != nil {
		return err
	}
	if res.Resume.Fresh || res.Resume.Epoch <= 1 {
		_, err = fmt.Fprintf(stdout, "backed up %s to %s: %d partition(s), no epoch committed yet\n", args[0], res.Dest, res.Partitions)
		return err
	}
	_, err = fmt.Fprintf(stdout, "backed up %s to %s: %d partition(s), state after epoch %d; a run on the copy resumes at epoch %d\n",
		args[0], res.Dest, res.Partitions, res.Resume.Epoch-1, res.Resume.Epoch)
	return err
}

func recoveryRepartition(args []string, stdout, stderr io.Writer) error {
	fs := pflag.NewFlagSet("runnel recovery repartition", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	to := fs.Int("to", 0, "the new partition count")
	dir, err := parseDir(fs, args)
	if err != nil {
		return err
	}
	if !fs.Changed("to") || *to < 1 {
		return usageErr("recovery repartition needs --to M, a positive partition count")
	}
	res, err := recovery.Repartition(dir, *to)
	if err != nil {
		return err
	}
	if res.From == res.To {
		_, err = fmt.Fprintf(stdout, "%s already has %d partition(s); nothing to do\n", dir, res.To)
		return err
	}
	_, err = fmt.Fprintf(stdout, "repartitioned %s from %d to %d partition(s): %d key(s) and position(s) moved; the next run resumes at epoch %d\n",
		dir, res.From, res.To, res.Keys, res.Resume.Epoch)
	return err
}
