// Package uffd is a thin, cgo-free wrapper around Linux userfaultfd(2):
// the kernel structures and ioctl numbers written out by hand, one ioctl
// helper, and a message reader that parks in the Go netpoller.
//
// The process whose memory is covered must create the descriptor (New),
// negotiate the API (API) and register its ranges (Register). Any process
// holding the descriptor may then serve the faults: read messages
// (ReadMsgs), install pages (Copy), write-protect or unprotect them
// (WriteProtect) and wake waiting threads (Wake). dsmexec serves faults from
// a separate pager process so that a Go thread blocked in a fault can never
// deadlock its own runtime; see internal/pagemem.
//
// Usage, in the application process:
//
//	u, err := uffd.New(true) // falls back to UFFD_USER_MODE_ONLY when unprivileged
//	if err != nil { ... }
//	if _, err := u.API(uffd.FeatureMissingShmem | uffd.FeatureWPHugetlbfsShmem); err != nil { ... }
//	if _, err := u.Register(base, size, uffd.ModeMissing|uffd.ModeWP); err != nil { ... }
//	// hand u.File() to the pager (exec.Cmd.ExtraFiles), then close u.
//
// In the pager process:
//
//	u, err := uffd.FromFile(os.NewFile(3, "uffd"))
//	msgs := make([]uffd.Msg, 16)
//	n, err := u.ReadMsgs(msgs) // blocks in the netpoller; SetReadDeadline or Close to stop
//	for _, m := range msgs[:n] {
//		_ = u.Copy(m.Address&^(pageSize-1), page, !m.IsWrite())
//	}
//
// A pager with an event loop of its own adopts the descriptor with
// FromFileUnpolled instead (kept out of the netpoller, which would wake a
// second thread on every fault), waits for it in its own epoll (Fd) and
// reads with TryReadMsgs, which never blocks. dsmexec's page server does.
//
// On systems other than Linux on amd64 or arm64 every function returns
// ErrNotSupported.
package uffd
