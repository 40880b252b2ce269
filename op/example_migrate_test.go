package op_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/recovery"
	"github.com/runnel-dev/runnel/runneltest"
)

// Version 1 of a flow counted items per key in an int; version 2 keeps a
// struct. MigrateState converts each key's stored count when version 2
// resumes from version 1's recovery data.
func ExampleMigrateState() {
	type Stats struct {
		Count int
		Last  string
	}
	tmp, err := os.MkdirTemp("", "runnel-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "db")
	if err := recovery.Init(dir, 1); err != nil {
		fmt.Println(err)
		return
	}
	cfg := runneltest.Config(1, time.Hour, dir)
	words := []string{"a", "b", "a", "c", "a"}

	v1 := runnel.NewDataflow("counts")
	keyed := op.KeyOn("key", op.Input("inp", v1, runneltest.NewSource(words[:3])), func(w string) string { return w })
	op.Output("out", op.StatefulMap("count", keyed, func(n int, _ bool, _ string) (int, bool, int) {
		return n + 1, true, n + 1
	}), runneltest.NewSink[runnel.KV[string, int]]())
	if err := runnel.Run(context.Background(), v1, cfg); err != nil {
		fmt.Println(err)
		return
	}

	v2 := runnel.NewDataflow("counts")
	keyed = op.KeyOn("key", op.Input("inp", v2, runneltest.NewSource(words)), func(w string) string { return w })
	sink := runneltest.NewSink[runnel.KV[string, Stats]]()
	op.Output("out", op.StatefulMap("count", keyed, func(s Stats, _ bool, w string) (Stats, bool, Stats) {
		s.Count++
		s.Last = w
		return s, true, s
	}, op.MigrateState(func(n int) (Stats, error) { return Stats{Count: n}, nil })), sink)
	if err := runnel.Run(context.Background(), v2, cfg); err != nil {
		fmt.Println(err)
		return
	}
	for _, kv := range sink.Items() {
		fmt.Printf("%s: %+v\n", kv.Key, kv.Value)
	}
	// Output:
	// c: {Count:1 Last:c}
	// a: {Count:3 Last:a}
}
