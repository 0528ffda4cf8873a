package proc_test

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// onDyingThread runs f in a goroutine locked to a thread that the runtime
// ends when f returns, and returns that thread's id. The runtime never ends
// the main thread (it parks it instead), so if the goroutine lands there it
// keeps the main thread occupied until the test ends and tries again.
func onDyingThread(t *testing.T, f func()) int {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	tidc := make(chan int)
	var try func()
	try = func() {
		runtime.LockOSThread()
		tid := unix.Gettid()
		if tid == unix.Getpid() {
			go try() // cannot land on this thread while it is locked here
			<-release
			runtime.UnlockOSThread()
			return
		}
		f()
		tidc <- tid // and return locked: the thread ends
	}
	go try()
	return <-tidc
}
