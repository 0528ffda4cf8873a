// Package transporttest provides the test transports shared by the barrier
// and collective tests: an in-memory network of N endpoints (FIFO per
// ordered pair, optionally reordered across pairs, with killable ranks)
// and a small full mesh over loopback TCP. Both implement the Transport
// interface of those packages (Rank, Size, Send, Recv). RunRanks runs one
// goroutine per rank and turns a hang into a test failure with a goroutine
// dump; the barrier, collective and rank tests use it.
package transporttest
