package output

import "time"

// SetHold changes the bounds on what a long line may hold back.
func SetHold(w *Writer, limit int, d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.holdLimit, w.holdTime = limit, d
}
