package file

import "errors"

// ErrPastEnd is wrapped by the error a source's or sink's BuildPart returns
// (and so the run's error, before the first item) when the recovered
// position lies past the end of the file: the file was truncated, replaced
// or removed since the position was committed. Resuming would skip input
// or leave a gap in the output, so the run refuses; restore the file, or
// start over with a fresh recovery directory.
var ErrPastEnd = errors.New("recovered position is past the end of the file")

// ErrLineTooLong is wrapped by the error that stops a run when a source
// with MaxLineLength meets a longer line (or CSV record). The error names
// the file and the line's byte offset.
var ErrLineTooLong = errors.New("line too long")
