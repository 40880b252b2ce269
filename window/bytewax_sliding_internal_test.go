package window

import (
	"slices"
	"testing"
	"time"
)

// TestBytewaxSlidingIntersects holds the cases of Bytewax's
// pytests/operators/windowing/test_sliding_windower.py
// (_SlidingWindowerLogic.intersects): which window ids contain an instant,
// for offsets that divide the length, that do not, and equal to it
// (tumbling), in the bulk of a window and exactly on its edges, before and
// after align_to. Runnel numbers windows as Bytewax does.
func TestBytewaxSlidingIntersects(t *testing.T) {
	align := time.Date(2023, 3, 16, 9, 0, 0, 0, time.UTC)
	at := func(h, m, s, ms int) time.Time {
		return time.Date(2023, 3, 16, h, m, s, ms*int(time.Millisecond), time.UTC)
	}
	for _, tc := range []struct {
		name   string
		offset time.Duration
		at     time.Time
		want   []int64
	}{
		{"test_intersect_overlap_offset_divisible_by_length_bulk_positive", 5, at(9, 0, 13, 0), []int64{1, 2}},
		{"test_intersect_overlap_offset_divisible_by_length_bulk_negative", 5, at(8, 59, 57, 0), []int64{-2, -1}},
		{"test_intersect_overlap_offset_divisible_by_length_bulk_zero_negative", 5, at(9, 0, 3, 0), []int64{-1, 0}},
		{"test_intersect_overlap_offset_divisible_by_length_bulk_zero_positive", 5, at(9, 0, 7, 0), []int64{0, 1}},
		{"test_intersect_overlap_offset_divisible_by_length_edge_positive", 5, at(9, 0, 15, 0), []int64{2, 3}},
		{"test_intersect_overlap_offset_divisible_by_length_edge_negative", 5, at(8, 59, 55, 0), []int64{-2, -1}},
		{"test_intersect_overlap_offset_divisible_by_length_edge_start_zero", 5, at(9, 0, 0, 0), []int64{-1, 0}},
		{"test_intersect_overlap_offset_divisible_by_length_edge_end_zero", 5, at(9, 0, 10, 0), []int64{1, 2}},
		{"test_intersect_overlap_offset_indivisible_by_length_bulk_positive", 3, at(9, 0, 11, 0), []int64{1, 2, 3}},
		{"test_intersect_overlap_offset_indivisible_by_length_bulk_positive_remainder", 3, at(9, 0, 11, 500), []int64{1, 2, 3}},
		{"test_intersect_overlap_offset_indivisible_by_length_bulk_negative", 3, at(8, 59, 59, 0), []int64{-3, -2, -1}},
		{"test_intersect_overlap_offset_indivisible_by_length_bulk_negative_remainder", 3, at(8, 59, 58, 500), []int64{-3, -2, -1}},
		{"test_intersect_overlap_offset_indivisible_by_length_bulk_zero", 3, at(9, 0, 5, 0), []int64{-1, 0, 1}},
		{"test_intersect_overlap_offset_indivisible_by_length_edge_start_positive", 7, at(9, 0, 14, 0), []int64{1, 2}},
		{"test_intersect_overlap_offset_indivisible_by_length_edge_start_negative", 7, at(8, 59, 53, 0), []int64{-2, -1}},
		{"test_intersect_overlap_offset_indivisible_by_length_edge_start_zero", 7, at(9, 0, 0, 0), []int64{-1, 0}},
		{"test_intersect_overlap_offset_indivisible_by_length_edge_end_positive", 7, at(9, 0, 17, 0), []int64{2}},
		{"test_intersect_overlap_offset_indivisible_by_length_edge_end_negative", 7, at(8, 59, 56, 0), []int64{-1}},
		{"test_intersect_overlap_offset_indivisible_by_length_edge_end_zero", 7, at(9, 0, 10, 0), []int64{1}},
		{"test_intersect_tumble_bulk_positive", 10, at(9, 0, 15, 0), []int64{1}},
		{"test_intersect_tumble_bulk_negative", 10, at(8, 59, 55, 0), []int64{-1}},
		{"test_intersect_tumble_bulk_zero", 10, at(9, 0, 5, 0), []int64{0}},
		{"test_intersect_tumble_edge_positive", 10, at(9, 0, 20, 0), []int64{2}},
		{"test_intersect_tumble_edge_negative", 10, at(8, 59, 50, 0), []int64{-1}},
		{"test_intersect_tumble_edge_zero_start", 10, at(9, 0, 0, 0), []int64{0}},
		{"test_intersect_tumble_edge_zero_end", 10, at(9, 0, 10, 0), []int64{1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := Sliding(10*time.Second, tc.offset*time.Second, align)
			if tc.offset == 10 {
				w = Tumbling(10*time.Second, align)
			}
			if err := w.check(); err != "" {
				t.Fatal(err)
			}
			first, last := w.fixedRange(tc.at.UnixNano())
			var got []int64
			for id := first; id <= last; id++ {
				got = append(got, id)
				// Each id's bounds contain the instant: [open, close).
				open, end, _ := w.Bounds(id)
				if tc.at.Before(open) || !tc.at.Before(end) {
					t.Errorf("window %d is [%v, %v), does not contain %v", id, open, end, tc.at)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("windows %v, want %v", got, tc.want)
			}
		})
	}
}
