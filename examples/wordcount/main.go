// Command wordcount counts the words of a text, like Bytewax's wordcount
// example: lines → lower-cased words → CountFinal → one ('word', n) line per
// word, printed when the input ends.
//
// The text is read from the file named by the positional argument, or from
// standard input without one:
//
//	$ printf 'To be, or not to be\n' | go run ./examples/wordcount
//	('be', 2)
//	('not', 1)
//	('or', 1)
//	('to', 2)
//	$ go run ./examples/wordcount -w 4 book.txt
//
// Words are the runs of characters between white space, digits and the
// punctuation !,.?":; (as in Bytewax's example). Lines are read on worker 0
// and spread over all workers (-w) before they are split; each word is
// counted on the worker that owns it, after a per-batch pre-count; at the
// end the counts are gathered on one worker and printed sorted by word,
// whatever the worker count.
package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"unicode"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/connector/stdio"
	"github.com/runnel-dev/runnel/op"
)

func main() {
	runnel.MainFunc(build,
		runnel.WithUsage("[FILE]", "Counts the words of FILE, or of standard input without one, and prints\n"+
			"one ('word', n) line per word, sorted, when the input ends."),
		runnel.WithExample("Count the words of a book on four workers.", "wordcount -w 4 book.txt"))
}

// build makes the flow of the positional arguments: at most one file name.
func build(args []string) (*runnel.Dataflow, error) {
	switch len(args) {
	case 0:
		return wordcount(stdio.NewSource(), os.Stdout), nil
	case 1:
		f, err := os.Open(args[0])
		if err != nil {
			return nil, err
		}
		return wordcount(stdio.NewReaderSource(f), os.Stdout), nil
	}
	return nil, fmt.Errorf("want at most one file name, got %q", args)
}

// wordcount builds the flow: lines from src, counts printed to out.
func wordcount(src runnel.Source[string], out io.Writer) *runnel.Dataflow {
	flow := runnel.NewDataflow("wordcount")
	lines := op.Input("inp", flow, src)
	lines = op.Redistribute("spread", lines)
	words := op.FlatMap("tokenize", lines, tokenize)
	counts := op.CountFinal("count", words, func(w string) string { return w })
	// Gather the counts on one worker and sort them by word, so that the
	// output does not depend on the worker count.
	all := op.KeyOn("gather_key", counts, func(runnel.KV[string, int]) string { return "ALL" })
	gathered := op.FoldFinal("gather", all, func() []runnel.KV[string, int] { return nil },
		func(acc []runnel.KV[string, int], c runnel.KV[string, int]) []runnel.KV[string, int] {
			return append(acc, c)
		})
	sorted := op.FlatMap("sort", gathered, func(g runnel.KV[string, []runnel.KV[string, int]]) []runnel.KV[string, int] {
		slices.SortFunc(g.Value, func(a, b runnel.KV[string, int]) int { return strings.Compare(a.Key, b.Key) })
		return g.Value
	})
	op.Output("out", sorted, stdio.NewWriterSink[runnel.KV[string, int]](out))
	return flow
}

func tokenize(line string) []string {
	return strings.FieldsFunc(strings.ToLower(line), func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsDigit(r) || strings.ContainsRune(`!,.?":;`, r)
	})
}
