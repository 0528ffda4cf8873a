package rank

// peerCounts returns the messages this rank sent to each world rank and
// those that arrived from each (every communicator; counters.go).
func (w *World) peerCounts() (sent, arrived []uint64) {
	pc := w.e.ctr.snapshot()
	sent, arrived = make([]uint64, len(pc)), make([]uint64, len(pc))
	for i, p := range pc {
		sent[i], arrived[i] = p.SentMsgs, p.ArrivedMsgs
	}
	return sent, arrived
}
