package engine

import (
	"errors"
	"strings"
)

func asStepError(err error, se **StepError) bool { return errors.As(err, se) }
func contains(s, sub string) bool                { return strings.Contains(s, sub) }
