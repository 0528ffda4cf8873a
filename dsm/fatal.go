package dsm

import (
	"fmt"
	"os"
)

// fatal ends the process: shared memory that cannot be made coherent (a lost
// rank held a page) must not let the program go on with wrong data.
func fatal(err error) {
	fmt.Fprintf(os.Stderr, "%v\n", err)
	os.Exit(1)
}
