package recovery_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/runnel-dev/runnel/recovery"
)

// Create a recovery directory with two partitions, as `runnel recovery init
// DIR 2` does; a flow run with -r DIR then snapshots there. Init refuses a
// directory that already holds partitions, so recovery data is never
// overwritten by mistake.
func ExampleInit() {
	tmp, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "db_dir")

	if err := recovery.Init(dir, 2); err != nil {
		fmt.Println(err)
	}
	r, err := recovery.Inspect(dir)
	if err != nil {
		fmt.Println(err)
	}
	fmt.Println(len(r.Partitions), "partitions, flow", fmt.Sprintf("%q", r.FlowID))

	err = recovery.Init(dir, 2)
	fmt.Println(errors.Is(err, recovery.ErrAlreadyInitialized))
	// Output:
	// 2 partitions, flow ""
	// true
}
