package runnel_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/runnel-dev/runnel/internal/config"
)

// Every example binary describes itself in --help: its own usage line and
// description, and example commands whose flags parse (and, for a program
// without arguments, that pass it none).
func TestExampleBinariesHelp(t *testing.T) {
	for _, tc := range []struct {
		name, usage, about string
		takesArgs          bool
	}{
		{"recovery", "Usage: recovery [flags] [--] [N...]\n", "Prints a running sum of the numbers N", true},
		{"wordcount", "Usage: wordcount [flags] [--] [FILE]\n", "Counts the words of FILE", true},
		{"windowing", "Usage: windowing [flags]\n", "Counts events per user in 30-second", false},
		{"join", "Usage: join [flags]\n", "Joins user names and purchases", false},
		{"migrate", "Usage: migrate [flags] [--] [N...]\n", "Prints a running sum of the numbers N", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := exec.Command(bin(t, tc.name), "--help").Output()
			if err != nil {
				t.Fatalf("--help: %v", err)
			}
			help := string(out)
			if !strings.HasPrefix(help, tc.usage+"\n"+tc.about) {
				t.Errorf("--help starts:\n%s\nwant %q then %q", help[:min(len(help), 200)], tc.usage, tc.about)
			}
			_, examples, ok := strings.Cut(help, "\nExamples:\n")
			if !ok {
				t.Fatalf("--help has no examples:\n%s", help)
			}
			n := 0
			for _, line := range strings.Split(examples, "\n") {
				args := strings.Fields(line)
				if len(args) == 0 || args[0] != tc.name {
					continue
				}
				n++
				for i, a := range args {
					args[i] = strings.Trim(a, `"`)
				}
				_, rest, err := config.Parse(tc.name, args[1:], nil)
				if err != nil || !tc.takesArgs && len(rest) > 0 {
					t.Errorf("example %q: arguments %q, %v", line, rest, err)
				}
			}
			if n < 2 {
				t.Errorf("--help shows %d example commands of %s, want the program's own and the shared ones:\n%s", n, tc.name, examples)
			}
		})
	}
}
