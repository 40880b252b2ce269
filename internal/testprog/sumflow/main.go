// Command sumflow is a flow for Runnel's recovery integrity tests: a keyed
// running sum over the lines "key,value" of the file IN, written as
// "key,sum" lines to the file OUT through the exact-once file sink.
//
//	sumflow [flags] IN OUT
//
// SUMFLOW_STATE=renamed runs it with a state type whose field is named
// Count instead of N (same type name, another shape), as a user who renamed
// a field would.
package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/connector/file"
	"github.com/runnel-dev/runnel/op"
)

func main() {
	runnel.MainFunc(func(args []string) (*runnel.Dataflow, error) {
		if len(args) != 2 {
			return nil, fmt.Errorf("usage: sumflow [flags] IN OUT")
		}
		flow := runnel.NewDataflow("sumflow")
		lines := op.Input("inp", flow, file.NewSource(args[0]))
		kv := op.Map("parse", lines, func(l string) runnel.KV[string, int] {
			k, v, _ := strings.Cut(l, ",")
			n, err := strconv.Atoi(v)
			if err != nil {
				panic(fmt.Sprintf("bad line %q", l))
			}
			return runnel.KV[string, int]{Key: k, Value: n}
		})
		var sums runnel.Stream[runnel.KV[string, int]]
		if os.Getenv("SUMFLOW_STATE") == "renamed" {
			sums = sumRenamed(kv)
		} else {
			sums = sum(kv)
		}
		out := op.Map("fmt", sums, func(kv runnel.KV[string, int]) string { return fmt.Sprintf("%s,%d", kv.Key, kv.Value) })
		op.Output("out", out, file.NewSink(args[1]))
		return flow, nil
	})
}

func sum(up runnel.Stream[runnel.KV[string, int]]) runnel.Stream[runnel.KV[string, int]] {
	type Total struct{ N int }
	return op.StatefulMap("sum", up, func(t Total, _ bool, v int) (Total, bool, int) {
		t.N += v
		return t, true, t.N
	})
}

func sumRenamed(up runnel.Stream[runnel.KV[string, int]]) runnel.Stream[runnel.KV[string, int]] {
	type Total struct{ Count int }
	return op.StatefulMap("sum", up, func(t Total, _ bool, v int) (Total, bool, int) {
		t.Count += v
		return t, true, t.Count
	})
}
