package main

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/pflag"

	"github.com/runnel-dev/runnel/internal/codec"
	"github.com/runnel-dev/runnel/recovery"
)

// recoveryDump prints the committed state of every key (input and output
// steps' keys are their partitions, their state the position) as JSON.
func recoveryDump(args []string, stdout, stderr io.Writer) error {
	fs := pflag.NewFlagSet("runnel recovery dump", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	step := fs.String("step", "", "only this step (its id with or without the flow prefix)")
	keys := fs.StringArray("key", nil, "only this state key (repeat for several)")
	epoch := fs.Uint64("epoch", 0, "the state after this committed epoch (default: the last committed one)")
	format := fs.String("format", "jsonl", "jsonl (one object per line), json (one array) or csv")
	dir, err := parseDir(fs, args)
	if err != nil {
		return err
	}
	switch *format {
	case "jsonl", "json", "csv":
	default:
		return usageErr("--format must be jsonl, json or csv, got %q", *format)
	}
	s, err := recovery.OpenReadOnly(dir)
	if err != nil {
		return err
	}
	defer s.Close()
	oldest, newest, ok, err := s.Committed()
	if err != nil {
		return fmt.Errorf("dump shows committed state, which the directory does not define: %w (`runnel recovery verify %s` says more)", err, dir)
	}
	asOf := newest
	switch {
	case fs.Changed("epoch") && !ok:
		return fmt.Errorf("no epoch of %s is committed yet, so there is no state after epoch %d", dir, *epoch)
	case fs.Changed("epoch") && *epoch > newest:
		return fmt.Errorf("epoch %d of %s is not committed: the last committed epoch is %d", *epoch, dir, newest)
	case fs.Changed("epoch") && *epoch < oldest:
		return fmt.Errorf("the state after epoch %d of %s is no longer kept: it holds the state after epochs %d to %d "+
			"(a run keeps older epochs for the backup interval, -b)", *epoch, dir, oldest, newest)
	case fs.Changed("epoch"):
		asOf = *epoch
	}
	var entries []recovery.Entry
	if ok {
		if *step != "" {
			rep, err := s.Report()
			if err != nil {
				return err
			}
			if *step, err = resolveStep(rep, *step, dir); err != nil {
				return err
			}
		}
		if entries, err = s.StateAt(asOf, *step, *keys...); err != nil {
			return err
		}
	}
	w := bufio.NewWriter(stdout)
	var cw *csv.Writer
	switch *format {
	case "json":
		w.WriteString("[")
	case "csv":
		cw = csv.NewWriter(w)
		cw.Write([]string{"step", "key", "epoch", "state"})
	}
	for i, e := range entries {
		state, err := codec.ToJSON(e.Value)
		if err != nil {
			return fmt.Errorf("%s: step %s key %q epoch %d: %w (`runnel recovery verify %s` checks every row)", dir, e.Step, e.Key, e.Epoch, err, dir)
		}
		switch *format {
		case "csv":
			cw.Write([]string{e.Step, e.Key, strconv.FormatUint(e.Epoch, 10), string(state)})
			continue
		case "json":
			if i > 0 {
				w.WriteString(",")
			}
			w.WriteString("\n")
		}
		w.WriteString(`{"step":`)
		w.Write(jsonString(e.Step))
		w.WriteString(`,"key":`)
		w.Write(jsonString(e.Key))
		w.WriteString(`,"epoch":`)
		w.WriteString(strconv.FormatUint(e.Epoch, 10))
		w.WriteString(`,"state":`)
		w.Write(state)
		w.WriteString("}")
		if *format == "jsonl" {
			w.WriteString("\n")
		}
	}
	switch *format {
	case "json":
		if len(entries) > 0 {
			w.WriteString("\n")
		}
		w.WriteString("]\n")
	case "csv":
		cw.Flush()
		if err := cw.Error(); err != nil {
			return err
		}
	}
	return w.Flush()
}

// jsonString encodes s as a JSON string without HTML escaping, like
// codec.ToJSON.
func jsonString(s string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// reportJSON is `runnel recovery inspect --json`: the text report's content
// with stable, snake_case names for jq.
type reportJSON struct {
	Dir        string          `json:"dir"`
	Format     int             `json:"format"`
	Codec      string          `json:"codec"`
	DirID      string          `json:"dir_id"`
	FlowID     string          `json:"flow_id"`
	Resumable  bool            `json:"resumable"`
	Resume     uint64          `json:"resume_epoch"` // 0 when not resumable
	Problems   []problemJSON   `json:"problems"`
	Partitions []partitionJSON `json:"partitions"`
	Executions []executionJSON `json:"executions"`
	Steps      []stepJSON      `json:"steps"`
}

type problemJSON struct {
	Error string   `json:"error"`
	Files []string `json:"files"`
	Text  string   `json:"text"`
}

type partitionJSON struct {
	Index    int    `json:"index"`
	File     string `json:"file"`
	Format   int    `json:"format"`
	Frontier uint64 `json:"frontier"`
	Rows     int64  `json:"rows"`
	GCEpoch  uint64 `json:"gc_epoch"`
}

type executionJSON struct {
	Num     int      `json:"execution"`
	Workers int      `json:"workers"`
	Resume  uint64   `json:"resume_epoch"`
	Fronts  []uint64 `json:"worker_frontiers"`
}

type stepJSON struct {
	ID    string `json:"step"`
	Type  string `json:"state_type"`
	Shape string `json:"state_shape"`
	Keys  int64  `json:"keys"`
	Bytes int64  `json:"bytes"`
	// Pending is a state migration not yet committed (see
	// recovery.StepReport.PendingType).
	Pending *pendingJSON `json:"pending_migration,omitempty"`
}

type pendingJSON struct {
	Type  string `json:"state_type"`
	Epoch uint64 `json:"epoch"`
}

func writeReportJSON(w io.Writer, r recovery.Report) error {
	out := reportJSON{
		Dir: r.Dir, Format: r.FormatVersion, Codec: r.Codec, DirID: r.DirID, FlowID: r.FlowID,
		Resumable: len(r.Verdict.Problems) == 0, Resume: r.ResumeEpoch,
		Problems: []problemJSON{}, Partitions: []partitionJSON{}, Executions: []executionJSON{}, Steps: []stepJSON{},
	}
	for _, p := range r.Verdict.Problems {
		out.Problems = append(out.Problems, problemJSON{Error: p.Err.Error(), Files: p.Paths, Text: p.Text})
	}
	for _, p := range r.Partitions {
		out.Partitions = append(out.Partitions, partitionJSON{p.Index, p.File, p.Format, p.Frontier, p.Rows, p.GCEpoch})
	}
	for _, e := range r.Executions {
		out.Executions = append(out.Executions, executionJSON{e.Num, e.Workers, e.ResumeEpoch, e.Fronts})
	}
	for _, st := range r.Steps {
		sj := stepJSON{ID: st.ID, Type: st.StateType, Shape: st.Shape, Keys: st.Keys, Bytes: st.Bytes}
		if st.PendingType != "" {
			sj.Pending = &pendingJSON{st.PendingType, st.PendingEpoch}
		}
		out.Steps = append(out.Steps, sj)
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
