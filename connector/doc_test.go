package connector_test

import (
	"os"
	"strings"
	"testing"
)

// TestDocShowsExamples checks that docs/connectors.md shows the example
// files of this package as they are, so the page's code is the code that
// go test compiles and runs.
func TestDocShowsExamples(t *testing.T) {
	doc, err := os.ReadFile("../docs/connectors.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"example_source_test.go", "example_sink_test.go"} {
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		marker := "<!-- " + name + " (go test checks that this block equals connector/" + name + ") -->\n```go\n"
		_, rest, ok := strings.Cut(string(doc), marker)
		if !ok {
			t.Fatalf("docs/connectors.md has no block for %s, opened by the line %q", name, strings.TrimSpace(strings.Split(marker, "\n")[0]))
		}
		block, _, ok := strings.Cut(rest, "```\n")
		if !ok {
			t.Fatalf("docs/connectors.md: the block for %s is not closed", name)
		}
		if block != string(src) {
			t.Errorf("docs/connectors.md shows another %s than connector/%s: copy the file into the page", name, name)
		}
	}
}
