package op_test

import (
	"errors"
	"fmt"
	"iter"
	"strconv"
	"strings"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/connector/stdio"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/runneltest"
)

func ExampleTryMap() {
	flow := runnel.NewDataflow("sum")
	lines := op.Input("inp", flow, runneltest.NewSource([]string{"1", "2", "12x"}))
	nums := op.TryMap("parse", lines, func(s string) (int, error) { return strconv.Atoi(s) })
	op.OutputTo("out", nums, stdio.NewSink)
	err := runneltest.Run(flow, 1)

	// The error names the step, the item, and where it was read.
	var se *runnel.StepError
	if errors.As(err, &se) {
		fmt.Println("failed step:", se.Step, "partition:", se.Partition, "position:", se.Position)
	}
	fmt.Println(err)
	// Output:
	// 1
	// 2
	// failed step: sum.parse partition: list position: 3
	// step sum.parse (worker 0, input sum.inp partition "list" in the batch ending at position 3): item '12x': strconv.Atoi: parsing "12x": invalid syntax
}

func ExampleFlatMapSeq() {
	flow := runnel.NewDataflow("words_eg")
	lines := op.Input("lines", flow, runneltest.NewSource([]string{"to be", "or not"}))
	words := op.FlatMapSeq("split", lines, strings.FieldsSeq)
	op.OutputTo("out", words, stdio.NewSink)
	run(flow)
	// Output:
	// to
	// be
	// or
	// not
}

// A FlatMapSeq function may build its iterator by hand.
func ExampleFlatMapSeq_countdown() {
	flow := runnel.NewDataflow("countdown_eg")
	nums := op.Input("nums", flow, runneltest.NewSource([]int{3}))
	down := op.FlatMapSeq("down", nums, func(n int) iter.Seq[int] {
		return func(yield func(int) bool) {
			for i := n; i > 0 && yield(i); i-- {
			}
		}
	})
	op.OutputTo("out", down, stdio.NewSink)
	run(flow)
	// Output:
	// 3
	// 2
	// 1
}

func ExampleTryKeyOn() {
	flow := runnel.NewDataflow("users_eg")
	events := op.Input("events", flow, runneltest.NewSource([]string{"alice:login", "bob:login", "logout"}))
	keyed := op.TryKeyOn("user", events, func(e string) (string, error) {
		user, _, ok := strings.Cut(e, ":")
		if !ok {
			return "", errors.New("no user name")
		}
		return user, nil
	})
	op.OutputTo("out", keyed, stdio.NewSink)
	run(flow)
	// Output:
	// ('alice', 'alice:login')
	// ('bob', 'bob:login')
	// step users_eg.user (worker 0, input users_eg.events partition "list" in the batch ending at position 3): item 'logout': no user name
}

func ExampleTryStatefulMap() {
	flow := runnel.NewDataflow("balance_eg")
	moves := op.Input("moves", flow, runneltest.NewSource([]int{5, -3, -4}))
	keyed := op.KeyOn("account", moves, func(int) string { return "acct-1" })
	balances := op.TryStatefulMap("balance", keyed, func(bal int, _ bool, move int) (int, bool, int, error) {
		if bal+move < 0 {
			return bal, true, 0, fmt.Errorf("overdrawn: balance %d, move %d", bal, move)
		}
		return bal + move, true, bal + move, nil
	})
	op.OutputTo("out", balances, stdio.NewSink)
	run(flow)
	// Output:
	// ('acct-1', 5)
	// ('acct-1', 2)
	// step balance_eg.balance (worker 0, key "acct-1", input balance_eg.moves partition "list" in the batch ending at position 3): item -4: overdrawn: balance 2, move -4
}

func ExampleContext_Fail() {
	flow := runnel.NewDataflow("session_eg")
	clicks := op.Input("clicks", flow, runneltest.NewSource([]string{"home", "cart", ""}))
	keyed := op.KeyOn("user", clicks, func(string) string { return "u1" })
	pages := op.Stateful("pages", keyed, func(c *op.Context[string, int], n int, _ bool, page string) (int, bool) {
		if page == "" {
			c.Fail(errors.New("empty page name"))
		}
		c.Emit(n + 1)
		return n + 1, true
	})
	op.OutputTo("out", pages, stdio.NewSink)
	run(flow)
	// Output:
	// ('u1', 1)
	// ('u1', 2)
	// step session_eg.pages (worker 0, key "u1", input session_eg.clicks partition "list" in the batch ending at position 3): empty page name
}

func ExampleTryEnrichCached() {
	flow := runnel.NewDataflow("prices_eg")
	orders := op.Input("orders", flow, runneltest.NewSource([]string{"apple", "pear", "kiwi"}))
	prices := map[string]int{"apple": 3, "pear": 4}
	priced := op.TryEnrichCached("price", orders, func(fruit string) (int, error) {
		p, ok := prices[fruit]
		if !ok {
			return 0, errors.New("no price")
		}
		return p, nil
	}, 0, func(c *op.TTLCache[string, int], fruit string) string {
		return fmt.Sprint(fruit, " costs ", c.Get(fruit))
	})
	op.OutputTo("out", priced, stdio.NewSink)
	run(flow)
	// Output:
	// apple costs 3
	// pear costs 4
	// step prices_eg.price (worker 0, input prices_eg.orders partition "list" in the batch ending at position 3): get 'kiwi': no price
}
