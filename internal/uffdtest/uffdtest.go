// Package uffdtest holds the test helper that the packages built on
// userfaultfd (dsm, rank) share.
package uffdtest

import (
	"testing"

	"github.com/dsmexec/dsmexec/internal/uffd"
)

// Need skips the test where userfaultfd is not permitted (no kernel
// support, vm.unprivileged_userfaultfd=0 without CAP_SYS_PTRACE, or not
// Linux).
func Need(t testing.TB) {
	t.Helper()
	u, err := uffd.New(true)
	if err != nil {
		t.Skipf("userfaultfd is not permitted here (%v)", err)
	}
	u.Close()
}
