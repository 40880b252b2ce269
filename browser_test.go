package runnel_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/recovery"
	"github.com/runnel-dev/runnel/runneltest"
)

// findChromium returns a headless-capable Chromium: $RUNNEL_CHROMIUM, or
// the first of the usual names on $PATH.
func findChromium() (string, error) {
	if p := os.Getenv("RUNNEL_CHROMIUM"); p != "" {
		return exec.LookPath(p)
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless_shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no chromium, chromium-browser, google-chrome or headless_shell on $PATH and RUNNEL_CHROMIUM unset")
}

// chromium runs a fresh headless browser on url with extra arguments (a
// --dump-dom or --screenshot) and returns its standard output. The virtual
// time budget lets the page run its polls before the DOM is taken.
func chromium(t *testing.T, bin, url string, extra ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--no-first-run", "--no-default-browser-check", "--mute-audio",
		"--user-data-dir=" + t.TempDir(), "--virtual-time-budget=5000"}
	cmd := exec.CommandContext(ctx, bin, append(append(args, extra...), url)...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			stderr = ee.Stderr
		}
		t.Fatalf("%s %v: %v\n%s", bin, extra, err, stderr)
	}
	return string(out)
}

var countRE = regexp.MustCompile(`<text[^>]*class="count"[^>]*data-step="([^"]+)"[^>]*data-items="(\d+)"`)
var nodeRE = regexp.MustCompile(`<g[^>]*class="node[^"]*"[^>]*data-step="([^"]+)"`)

// pageCounts reads, from the page's DOM, the steps drawn in the graph and
// the item count each shows.
func pageCounts(dom string) (nodes map[string]bool, counts map[string]int64) {
	nodes, counts = map[string]bool{}, map[string]int64{}
	for _, m := range nodeRE.FindAllStringSubmatch(dom, -1) {
		nodes[m[1]] = true
	}
	for _, m := range countRE.FindAllStringSubmatch(dom, -1) {
		counts[m[1]], _ = strconv.ParseInt(m[2], 10, 64)
	}
	return nodes, counts
}

// TestWebViewInBrowser opens the live web view in headless Chromium while
// a flow runs: the graph shows every step, and the counts it shows are the
// exact items processed, at a point where the input is held halfway and
// again after it is released. A screenshot is saved for a human to look
// at (its path is logged; on failure it is copied out of the temp dir).
func TestWebViewInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a browser")
	}
	bin, err := findChromium()
	if err != nil {
		t.Skipf("skipping the browser test: %v (.ci/run installs Debian's chromium with apt-get)", err)
	}
	const n = 2000
	dir := t.TempDir()
	if err := recovery.Init(dir, 1); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	release, stop := make(chan struct{}), make(chan struct{})
	sink := runneltest.NewSink[runnel.KV[string, int]]()
	flow := metricsFlow(heldSource{n: n, release: release}, sink)
	done := make(chan error, 1)
	go func() {
		done <- runnel.Run(context.Background(), flow, runneltest.Config(2, 50*time.Millisecond, dir),
			runnel.WithAPIListener(ln), runnel.WithStop(stop))
	}()
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
			<-done
		}
	}()

	var half, all []int
	for w := range 2 {
		for x := w * n; x < (w+1)*n; x++ {
			all = append(all, x)
			if x < w*n+n/2 {
				half = append(half, x)
			}
		}
	}
	url := "http://" + addr + "/"
	check := func(when string, items []int) {
		t.Helper()
		want := wantCounts(items)
		waitFor(t, addr, when, func(m map[string]float64) error { return checkCounts(m, want) })
		nodes, counts := pageCounts(chromium(t, bin, url, "--dump-dom"))
		for _, s := range flow.Graph().Steps {
			if !nodes[s.ID] {
				t.Errorf("%s: the graph does not show step %s (it shows %v)", when, s.ID, nodes)
			}
			if got, w := counts[s.ID], int64(want[s.ID].in); got != w {
				t.Errorf("%s: the page shows %d items into %s, want %d", when, got, s.ID, w)
			}
		}
	}
	check("input held halfway", half)
	close(release)
	check("input released", all)

	shot := filepath.Join(t.TempDir(), "web-view.png")
	chromium(t, bin, url, "--window-size=1280,1400", "--hide-scrollbars", "--screenshot="+shot)
	if fi, err := os.Stat(shot); err != nil || fi.Size() < 10_000 {
		t.Errorf("screenshot %s: %v (size %d)", shot, err, sizeOf(fi))
	}
	t.Logf("screenshot: %s", shot)
	t.Cleanup(func() {
		if t.Failed() {
			keep := filepath.Join(os.TempDir(), fmt.Sprintf("runnel-web-view-%d.png", time.Now().UnixNano()))
			if b, err := os.ReadFile(shot); err == nil && os.WriteFile(keep, b, 0o644) == nil {
				t.Logf("screenshot kept at %s", keep)
			}
		}
	})

	close(stop)
	if err := <-done; !errors.Is(err, runnel.ErrInterrupted) {
		t.Fatalf("Run = %v", err)
	}
}

func sizeOf(fi os.FileInfo) int64 {
	if fi == nil {
		return 0
	}
	return fi.Size()
}
