package trace

import "testing"

func TestRecordSizes(t *testing.T) {
	r := New(Config{Rank: 3, Size: 4})
	r.Begin(KindBarrier, Args{}).End(Args{}) // name the track
	r.Drain()
	r.Begin(KindSend, Args{Peer: 2, Tag: 7, Bytes: 8, Flow: r.NewFlow()}).End(Args{})
	send := len(r.Drain())
	sp := r.Begin(KindRecv, Args{Peer: 2, Tag: 7})
	sp.End(Args{Peer: 2, Tag: 7, Bytes: 8, Flow: 3<<40 | 12345})
	recv := len(r.Drain())
	t.Logf("a traced Send costs %d bytes, a Recv %d", send, recv)
	if send > 40 || recv > 40 {
		t.Errorf("records grew: send %d, recv %d bytes", send, recv)
	}
}
