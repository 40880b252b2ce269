package runner

import (
	"strconv"
	"testing"

	"github.com/runnel-dev/runnel/internal/engine"
)

// rowList hands back every row in the order added, in blocks that never
// copy a row, for sizes around its block boundaries.
func TestRowListKeepsEveryRowInOrder(t *testing.T) {
	for _, n := range []int{0, 1, minRowBlock - 1, minRowBlock, minRowBlock + 1, 3*minRowBlock + 5, maxRowBlock, 2*maxRowBlock + 100} {
		var l rowList
		for i := range n {
			l.add(engine.StateRow{Key: strconv.Itoa(i)})
		}
		var rows []engine.StateRow
		for _, b := range l.blocks() {
			if len(b) == 0 {
				t.Fatalf("%d rows: an empty block", n)
			}
			rows = append(rows, b...)
		}
		if len(rows) != n {
			t.Fatalf("%d rows added, %d back", n, len(rows))
		}
		for i, r := range rows {
			if r.Key != strconv.Itoa(i) {
				t.Fatalf("%d rows: row %d is %q", n, i, r.Key)
			}
		}
	}
}
