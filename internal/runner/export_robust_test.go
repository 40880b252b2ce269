package runner

// SetBeforeWrite makes the committer of every run started afterwards call
// f with the number of epochs it is about to persist, and returns a
// function that undoes it.
func SetBeforeWrite(f func(epochs int)) (undo func()) {
	old := testBeforeWrite
	testBeforeWrite = f
	return func() { testBeforeWrite = old }
}
