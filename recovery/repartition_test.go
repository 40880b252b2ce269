package recovery

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/runnel-dev/runnel/internal/codec"
)

// committedState is what a run on dir would resume from.
func committedState(t *testing.T, dir string) (Resume, []Entry) {
	t.Helper()
	s, err := OpenReadOnly(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	v, err := s.Check()
	if err != nil || v.Err() != nil {
		t.Fatalf("check: %v %v", err, v.Err())
	}
	_, newest, ok, err := s.Committed()
	if err != nil {
		t.Fatal(err)
	}
	var es []Entry
	if ok {
		if es, err = s.StateAt(newest, ""); err != nil {
			t.Fatal(err)
		}
	}
	return v.Resume, es
}

func TestRepartition(t *testing.T) {
	dir := mustInit(t, 3)
	s := mustOpen(t, dir)
	r := begin(t, s, "f", 2, map[string]string{"f.count": "int", "f.inp": "position int"})
	for e := r.Epoch; e < 6; e++ {
		var rows []Row
		for i := range 200 {
			k := fmt.Sprint("k", i)
			switch {
			case (int(e)+i)%5 == 0:
				rows = append(rows, Row{Step: "f.count", Key: k, Deleted: true})
			case (int(e)+i)%2 == 0:
				v, _ := codec.Marshal(int(e)*1000 + i)
				rows = append(rows, Row{Step: "f.count", Key: k, Value: v})
			}
		}
		pos, _ := codec.Marshal(int(e) * 10)
		rows = append(rows, Row{Step: "f.inp", Key: "part-0", Value: pos})
		if err := s.WriteEpoch(e, rows); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(r.Execution, []int{0, 1}, e+1, 2); err != nil {
			t.Fatal(err)
		}
	}
	// An uncommitted epoch, as a crash leaves it: not carried over.
	v, _ := codec.Marshal(-1)
	if err := s.WriteEpoch(6, []Row{{Step: "f.count", Key: "k1", Value: v}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	want, wantState := committedState(t, dir)
	if len(wantState) < 100 {
		t.Fatalf("only %d keys", len(wantState))
	}
	for _, m := range []int{5, 3, 1, 2, 7} {
		res, err := Repartition(dir, m)
		if err != nil {
			t.Fatal(err)
		}
		if res.To != m || res.Keys != len(wantState) {
			t.Errorf("repartition to %d: %+v", m, res)
		}
		got, gotState := committedState(t, dir)
		if got != want {
			t.Errorf("after repartition to %d: resume %+v, want %+v", m, got, want)
		}
		if diff := cmp.Diff(wantState, gotState); diff != "" {
			t.Errorf("after repartition to %d: state (-want +got):\n%s", m, diff)
		}
		if rep := verified(t, dir); len(rep.Findings) != 0 || len(rep.Partitions) != m {
			t.Errorf("verify after repartition to %d:\n%s", m, rep)
		}
		if left, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), ".rec.repartition-*")); len(left) != 0 {
			t.Errorf("left %v", left)
		}
	}
	// A run resumes on the result with the same state.
	s = mustOpen(t, dir)
	r2 := begin(t, s, "f", 3, map[string]string{"f.count": "int", "f.inp": "position int"})
	if r2.Epoch != want.Epoch || r2.Execution != want.Execution {
		t.Errorf("resumed at %+v, want %+v", r2, want)
	}
	loaded := map[string]string{}
	if err := s.Load(r2.Epoch, func(step, key string, v []byte) error { loaded[step+"/"+key] = string(v); return nil }); err != nil {
		t.Fatal(err)
	}
	for _, e := range wantState {
		if loaded[e.Step+"/"+e.Key] != string(e.Value) {
			t.Errorf("loaded %s/%s = %x, want %x", e.Step, e.Key, loaded[e.Step+"/"+e.Key], e.Value)
		}
	}
	if len(loaded) != len(wantState) {
		t.Errorf("loaded %d keys, want %d", len(loaded), len(wantState))
	}
	// While a run holds the directory: refused, nothing changed.
	if err := s.Lock(); err != nil {
		t.Fatal(err)
	}
	before := snapshotDir(t, dir)
	if _, err := Repartition(dir, 2); !errors.Is(err, ErrLocked) {
		t.Errorf("repartition of a locked directory: %v", err)
	}
	if diff := cmp.Diff(before, snapshotDir(t, dir)); diff != "" {
		t.Errorf("a refused repartition changed files:\n%s", diff)
	}
	s.Close()
	if _, err := Repartition(dir, 0); err == nil {
		t.Error("repartition to 0 accepted")
	}
}
