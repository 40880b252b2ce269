package api

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"go.uber.org/goleak"
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
