package api

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/runnel-dev/runnel/internal/engine"
	"github.com/runnel-dev/runnel/internal/plan"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Profiles are served only with --api-pprof; before a run is attached the
// state says it is not running and /dataflow is unavailable.
func TestPprofAndNotYetRunning(t *testing.T) {
	for _, pprof := range []bool{false, true} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s := Start(ln, Options{Pprof: pprof})
		base := "http://" + s.Addr().String()
		code, body := get(t, base+"/debug/pprof/")
		if pprof && (code != http.StatusOK || !strings.Contains(body, "goroutine")) {
			t.Errorf("pprof on: /debug/pprof/ = %d %q", code, body)
		}
		if !pprof && code != http.StatusNotFound {
			t.Errorf("pprof off: /debug/pprof/ = %d, want 404", code)
		}
		if pprof {
			if code, body := get(t, base+"/debug/pprof/goroutine?debug=1"); code != http.StatusOK || !strings.Contains(body, "goroutine profile") {
				t.Errorf("goroutine profile = %d %.80q", code, body)
			}
		}
		code, body = get(t, base+"/api/state")
		var st State
		if err := json.Unmarshal([]byte(body), &st); code != http.StatusOK || err != nil || st.Running {
			t.Errorf("/api/state before a run = %d %q (%v)", code, body, err)
		}
		if code, _ := get(t, base+"/dataflow"); code != http.StatusServiceUnavailable {
			t.Errorf("/dataflow before a run = %d, want 503", code)
		}
		if code, body := get(t, base+"/"); code != http.StatusOK || !strings.Contains(body, "app.js") {
			t.Errorf("/ = %d %.80q", code, body)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// The --progress line shows each input's rate and percent read, the open
// epoch and the last commit's age.
func TestProgressLine(t *testing.T) {
	g := plan.Graph{Flow: "f", Steps: []plan.GraphStep{
		{ID: "f.inp", Name: "inp", Kind: "input", Outputs: 1, Input: true},
		{ID: "f.out", Name: "out", Kind: "output", Inputs: []string{"f.inp"}, Output: true},
	}}
	st := engine.NewStats(func() time.Duration { return 0 })
	inp := &engine.StepStats{}
	st.Steps = []*engine.StepStats{inp, {}}
	st.Epoch.Store(3)
	r := &Run{Graph: g, Workers: []*engine.Stats{st}, Commits: NewCommits()}
	now := time.Unix(1000, 0)
	a := Sample(r, now.Add(-time.Second))
	inp.ItemsIn.Add(1500)
	inp.SourceKnown.Store(true)
	inp.SourceDone.Store(50)
	inp.SourceTotal.Store(200)
	r.Commits.Epoch.Store(2)
	r.Commits.At.Store(now.Add(-1500 * time.Millisecond).UnixNano())
	b := Sample(r, now)
	want := "inp 1500 items/s 25% · epoch 3 · committed 2, 1.5s ago"
	if got := ProgressLine(r, a, b, now); got != want {
		t.Errorf("progress line %q, want %q", got, want)
	}
	r.Commits = nil
	inp.SourceKnown.Store(false)
	if got, want := ProgressLine(r, a, b, now), "inp 1500 items/s · epoch 3"; got != want {
		t.Errorf("without recovery or size: %q, want %q", got, want)
	}
}
