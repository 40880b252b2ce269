package api

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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

// An edge's queued items are what its producer emitted minus what its
// consumer handled from that input, over all workers.
func TestEdgeQueued(t *testing.T) {
	g := plan.Graph{Flow: "f", Steps: []plan.GraphStep{
		{ID: "f.a", Name: "a", Kind: "input", Outputs: 1, Input: true},
		{ID: "f.b", Name: "b", Kind: "merge", Inputs: []string{"f.a", "f.a"}, Outputs: 1},
	}, Edges: []plan.GraphEdge{{From: "f.a", To: "f.b"}, {From: "f.a", To: "f.b", ToPort: 1}}}
	var workers []*engine.Stats
	for w := range 2 {
		st := engine.NewStats(func() time.Duration { return 0 })
		a, b := &engine.StepStats{}, &engine.StepStats{}
		a.Out = append(a.Out, new(atomic.Int64))
		a.Out[0].Store(int64(10 * (w + 1))) // 10 + 20 emitted
		b.In = append(b.In, new(atomic.Int64), new(atomic.Int64))
		b.In[0].Store(12) // 24 handled from input 0
		b.In[1].Store(15) // 30 handled from input 1
		st.Steps = []*engine.StepStats{a, b}
		workers = append(workers, st)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := Start(ln, Options{Gatherer: prometheus.NewRegistry()})
	defer s.Close()
	s.Attach(&Run{Graph: g, Workers: workers})
	st := s.state(time.Now())
	if got := []int64{st.Edges[0].Queued, st.Edges[1].Queued}; got[0] != 6 || got[1] != 0 {
		t.Errorf("queued %v, want [6 0]", got)
	}
	_, body := get(t, "http://"+s.Addr().String()+"/metrics")
	if want := `runnel_edge_queued_items{flow="f",from="f.a",input="0",output="0",to="f.b"} 6`; !strings.Contains(body, want) {
		t.Errorf("/metrics lacks %s:\n%s", want, body)
	}
}
