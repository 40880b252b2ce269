package file_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/connector/file"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/runneltest"
)

// Read the lines of a file: line endings are removed, and a last line
// without a newline counts too.
func ExampleNewSource() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	in := filepath.Join(dir, "in.txt")
	os.WriteFile(in, []byte("one\r\ntwo\n\nfour"), 0o644)

	flow := runnel.NewDataflow("read")
	lines := op.Input("inp", flow, file.NewSource(in, file.BatchSize(100)))
	sink := runneltest.NewSink[string]()
	op.Output("out", lines, sink)
	if err := runneltest.Run(flow, 1); err != nil {
		fmt.Println(err)
	}
	fmt.Printf("%q\n", sink.Items())
	// Output:
	// ["one" "two" "" "four"]
}

// Read every matching file of a directory, one partition per file, on
// several workers.
func ExampleNewDirSource() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	os.WriteFile(filepath.Join(dir, "a.log"), []byte("a1\na2\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "b.log"), []byte("b1\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("skipped\n"), 0o644)

	flow := runnel.NewDataflow("read")
	lines := op.Input("inp", flow, file.NewDirSource(dir, "*.log"))
	sink := runneltest.NewSink[string]()
	op.Output("out", lines, sink)
	if err := runneltest.Run(flow, 2); err != nil {
		fmt.Println(err)
	}
	items := sink.Items()
	slices.Sort(items) // files are read in parallel
	fmt.Println(items)
	// Output:
	// [a1 a2 b1]
}

// Copy a file, upper-cased. With a recovery directory (runnel.Config's
// RecoveryDir, or -r under runnel.Main), a crashed run resumed later
// leaves out.txt exactly as an uninterrupted run would.
func ExampleNewSink() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	in, out := filepath.Join(dir, "in.txt"), filepath.Join(dir, "out.txt")
	os.WriteFile(in, []byte("hello\nworld\n"), 0o644)

	flow := runnel.NewDataflow("upper")
	lines := op.Input("inp", flow, file.NewSource(in))
	upper := op.Map("upper", lines, strings.ToUpper)
	op.Output("out", upper, file.NewSink(out))
	if err := runneltest.Run(flow, 1); err != nil {
		fmt.Println(err)
	}
	b, _ := os.ReadFile(out)
	fmt.Print(string(b))
	// Output:
	// HELLO
	// WORLD
}

// Spread lines over two files by a function of the item: its result is
// taken modulo the number of files.
func ExampleNewDirSink() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)

	flow := runnel.NewDataflow("split")
	words := op.Input("inp", flow, runneltest.NewSource([]string{"a", "bb", "cc", "ddd"}))
	op.Output("out", words, file.NewDirSink(dir, 2, func(w string) int { return len(w) }))
	if err := runneltest.Run(flow, 2); err != nil {
		fmt.Println(err)
	}
	for _, name := range []string{"part-0.txt", "part-1.txt"} {
		b, _ := os.ReadFile(filepath.Join(dir, name))
		fmt.Printf("%s: %q\n", name, b)
	}
	// Output:
	// part-0.txt: "bb\ncc\n"
	// part-1.txt: "a\nddd\n"
}

// Write typed items: the function picks the file, format makes the line.
func ExampleNewDirSinkFunc() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)

	type reading struct {
		Sensor int
		Value  float64
	}
	flow := runnel.NewDataflow("readings")
	rs := op.Input("inp", flow, runneltest.NewSource([]reading{{0, 1.5}, {1, 2}, {0, 3.25}}))
	op.Output("out", rs, file.NewDirSinkFunc(dir, 2,
		func(r reading) int { return r.Sensor },
		func(r reading) string { return fmt.Sprintf("sensor %d: %g", r.Sensor, r.Value) }))
	if err := runneltest.Run(flow, 1); err != nil {
		fmt.Println(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "part-0.txt"))
	fmt.Print(string(b))
	// Output:
	// sensor 0: 1.5
	// sensor 0: 3.25
}

// Decode a CSV file into structs by its header's column names: the order
// of the columns does not matter, and columns without a field are ignored.
func ExampleNewCSVSource() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	in := filepath.Join(dir, "trades.csv")
	os.WriteFile(in, []byte("price,symbol,venue\n101.5,ACME,X\n99.25,\"Foo, Inc\",Y\n"), 0o644)

	type trade struct {
		Symbol string  `csv:"symbol"`
		Price  float64 `csv:"price"`
	}
	flow := runnel.NewDataflow("trades")
	trades := op.Input("inp", flow, file.NewCSVSource[trade](in))
	sink := runneltest.NewSink[trade]()
	op.Output("out", trades, sink)
	if err := runneltest.Run(flow, 1); err != nil {
		fmt.Println(err)
	}
	for _, t := range sink.Items() {
		fmt.Printf("%s %.2f\n", t.Symbol, t.Price)
	}
	// Output:
	// ACME 101.50
	// Foo, Inc 99.25
}

// Read every CSV file of a directory, one partition per file, each with
// its own header; map[string]string receives every column.
func ExampleNewCSVDirSource() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	os.WriteFile(filepath.Join(dir, "eu.csv"), []byte("city;temp\nOslo;-3\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "us.csv"), []byte("temp;city\n25;Austin\n"), 0o644)

	flow := runnel.NewDataflow("temps")
	rows := op.Input("inp", flow, file.NewCSVDirSource[map[string]string](dir, "*.csv", file.Comma(';')))
	lines := op.Map("fmt", rows, func(r map[string]string) string { return r["city"] + "=" + r["temp"] })
	sink := runneltest.NewSink[string]()
	op.Output("out", lines, sink)
	if err := runneltest.Run(flow, 2); err != nil {
		fmt.Println(err)
	}
	items := sink.Items()
	slices.Sort(items)
	fmt.Println(items)
	// Output:
	// [Austin=25 Oslo=-3]
}

// A line longer than the limit stops the run, naming the file and the
// line's byte offset, instead of filling memory.
func ExampleMaxLineLength() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	in := filepath.Join(dir, "in.txt")
	os.WriteFile(in, []byte("short\n"+strings.Repeat("x", 100)+"\n"), 0o644)

	flow := runnel.NewDataflow("read")
	op.Output("out", op.Input("inp", flow, file.NewSource(in, file.MaxLineLength(80))), runneltest.NewSink[string]())
	err := runneltest.Run(flow, 1)
	fmt.Println(errors.Is(err, file.ErrLineTooLong), strings.Contains(err.Error(), "in.txt at offset 6"))
	// Output:
	// true true
}

// Write items of any type, formatted by a function, one per line.
func ExampleNewSinkFunc() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "counts.txt")

	flow := runnel.NewDataflow("counts")
	words := op.Input("inp", flow, runneltest.NewSource([]string{"a", "b", "a"}))
	counts := op.CountFinal("count", words, func(w string) string { return w })
	op.Output("out", counts, file.NewSinkFunc(out, func(kv runnel.KV[string, int]) string {
		return fmt.Sprintf("%s\t%d", kv.Key, kv.Value)
	}))
	if err := runneltest.Run(flow, 1); err != nil {
		fmt.Println(err)
	}
	b, _ := os.ReadFile(out)
	fmt.Print(string(b))
	// Output:
	// a	2
	// b	1
}
