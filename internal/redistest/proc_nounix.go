//go:build !unix

package redistest

import (
	"errors"
	"os"
)

var errNoSignals = errors.New("Freeze and Thaw need a Unix system")

func signalStop(*os.Process) error { return errNoSignals }
func signalCont(*os.Process) error { return errNoSignals }
