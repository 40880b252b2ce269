package runner

import (
	"strconv"
	"testing"

	"github.com/runnel-dev/runnel/internal/engine"
)

// rowList hands back every row in the order added, for sizes around its
// block boundaries.
func TestRowListKeepsEveryRowInOrder(t *testing.T) {
	for _, n := range []int{0, 1, minRowBlock - 1, minRowBlock, minRowBlock + 1, 3*minRowBlock + 5, maxRowBlock, 2*maxRowBlock + 100} {
		var l rowList
		for i := range n {
			l.add(engine.StateRow{Key: strconv.Itoa(i)})
		}
		rows := l.rows()
		if len(rows) != n {
			t.Fatalf("%d rows added, %d back", n, len(rows))
		}
		for i, r := range rows {
			if r.Key != strconv.Itoa(i) {
				t.Fatalf("%d rows: row %d is %q", n, i, r.Key)
			}
		}
		if n > minRowBlock && cap(rows) != n {
			t.Fatalf("%d rows: capacity %d", n, cap(rows))
		}
	}
}
