package runnel_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// README's "Use Runnel in your own module" is a promise to a new user: its
// main.go builds as shown and its terminal transcript is what the program
// prints. The program is built inside this module through a build overlay
// (README shows it in a module of its own, which needs this module
// published); the commands run in a temporary directory, with `go build`
// and `go run .../cmd/runnel` replaced by binaries built here.
func TestReadmeOwnModule(t *testing.T) {
	if testing.Short() {
		t.Skip("builds programs")
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	section := string(readme)
	start := strings.Index(section, "## Use Runnel in your own module")
	if start < 0 {
		t.Fatal(`README.md has no "## Use Runnel in your own module"`)
	}
	section = section[start:]
	section = section[:strings.Index(section[3:], "\n## ")+3]
	blocks := fencedBlocks(section)
	var program, transcript string
	for _, b := range blocks {
		switch {
		case b.lang == "go" && program == "":
			program = b.text
		case b.lang == "console" && strings.Contains(b.text, "./wordfreq"):
			transcript = b.text
		}
	}
	if program == "" || transcript == "" {
		t.Fatalf("README's section lacks the Go program or the transcript that runs it")
	}

	dir := t.TempDir()
	bin := t.TempDir()
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte(program), 0o644); err != nil {
		t.Fatal(err)
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	overlay, _ := json.Marshal(map[string]any{"Replace": map[string]string{
		filepath.Join(wd, "internal", "readmeprog", "main.go"): src,
	}})
	overlayFile := filepath.Join(dir, "overlay.json")
	if err := os.WriteFile(overlayFile, overlay, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, b := range []struct{ name, pkg string }{{"wordfreq", "./internal/readmeprog"}, {"runnel", "./cmd/runnel"}} {
		out, err := exec.Command("go", "build", "-overlay="+overlayFile, "-o", filepath.Join(bin, b.name), b.pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("building README's %s: %v\n%s", b.name, err, out)
		}
	}

	work := t.TempDir()
	var cmd string
	var want []string
	check := func() {
		if cmd == "" {
			return
		}
		c := cmd
		switch {
		case strings.HasPrefix(c, "go build"):
			c = "cp " + filepath.Join(bin, "wordfreq") + " ."
		case strings.HasPrefix(c, "go run github.com/runnel-dev/runnel/cmd/runnel "):
			c = filepath.Join(bin, "runnel") + strings.TrimPrefix(c, "go run github.com/runnel-dev/runnel/cmd/runnel")
		}
		sh := exec.Command("sh", "-c", c)
		sh.Dir = work
		out, err := sh.Output()
		if err != nil {
			t.Fatalf("README command %q: %v\n%s", cmd, err, out)
		}
		if got, w := strings.TrimSuffix(string(out), "\n"), strings.Join(want, "\n"); got != w {
			t.Errorf("README command %q printed:\n%s\nREADME shows:\n%s", cmd, got, w)
		}
	}
	for _, line := range strings.Split(strings.TrimSuffix(transcript, "\n"), "\n") {
		if rest, ok := strings.CutPrefix(line, "$ "); ok {
			check()
			cmd, want = rest, nil
			continue
		}
		want = append(want, line)
	}
	check()
}

type fenced struct{ lang, text string }

// fencedBlocks returns the ``` blocks of Markdown text, with their language.
func fencedBlocks(md string) []fenced {
	var blocks []fenced
	for {
		i := strings.Index(md, "```")
		if i < 0 {
			return blocks
		}
		md = md[i+3:]
		nl := strings.Index(md, "\n")
		lang := md[:nl]
		md = md[nl+1:]
		end := strings.Index(md, "```")
		if end < 0 {
			return blocks
		}
		blocks = append(blocks, fenced{lang, md[:end]})
		md = md[end+3:]
	}
}
