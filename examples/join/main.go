// Command join joins two keyed streams, user names and purchases, by user
// id, like Bytewax's join examples. Each stream is an input of its own;
// op.Join keeps, per user id, the latest name and every purchase
// (JoinInsertProduct would keep every name too), and emits when the input
// ends (JoinEmitFinal), with None for a side that never showed up:
//
//	$ go run ./examples/join
//	(1, ('alice', [3.5, 12.0]))
//	(2, ('bob', None))
//	(3, (None, [7.25]))
//
// The rows are sorted by user id. Run it with -w 4 and the join happens on
// four workers: each user id is joined on the worker that owns it, and
// barriers are aligned across both inputs, so with -r the snapshot of each
// epoch is consistent.
package main

import (
	"cmp"
	"io"
	"os"
	"slices"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/connector/stdio"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/runneltest"
)

// Purchase is one purchase by a user.
type Purchase struct {
	User  int
	Price float64
}

func main() {
	runnel.Main(joinFlow(os.Stdout),
		runnel.WithUsage("", "Joins user names and purchases by user id and prints one row per user\n"+
			"when the input ends."),
		runnel.WithExample("Join on four workers: the output is the same.", "join -w 4"))
}

// Row is one output row: a user's name and purchase prices, either side
// possibly missing.
type Row = runnel.KV[int, op.Joined2[string, []float64]]

func joinFlow(out io.Writer) *runnel.Dataflow {
	flow := runnel.NewDataflow("join")
	names := op.Input("names", flow, runneltest.NewSource([]runnel.KV[int, string]{
		{Key: 1, Value: "alice"}, {Key: 2, Value: "bob"},
	}))
	purchases := op.Input("purchases", flow, runneltest.NewSource([]Purchase{
		{User: 1, Price: 3.5}, {User: 3, Price: 7.25}, {User: 1, Price: 12},
	}))
	byUser := op.KeyOn("by_user", purchases, func(p Purchase) int { return p.User })
	// Gather each user's prices first, so the join sees one value per side.
	prices := op.FoldFinal("prices", byUser, func() []float64 { return nil },
		func(acc []float64, p Purchase) []float64 { return append(acc, p.Price) })
	joined := op.Join("join", names, prices, op.JoinOpts{Insert: op.JoinInsertLast, Emit: op.JoinEmitFinal})

	// Sort on one worker for a stable printout.
	all := op.KeyOn("all", joined, func(Row) string { return "ALL" })
	rows := op.FoldFinal("gather", all, func() []Row { return nil }, func(acc []Row, r Row) []Row { return append(acc, r) })
	sorted := op.FlatMap("sort", rows, func(g runnel.KV[string, []Row]) []Row {
		slices.SortFunc(g.Value, func(a, b Row) int { return cmp.Compare(a.Key, b.Key) })
		return g.Value
	})
	op.Output("out", sorted, stdio.NewWriterSink[Row](out))
	return flow
}
