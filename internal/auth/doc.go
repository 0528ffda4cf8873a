// Package auth proves, both ways, that the two ends of a new connection know
// the job's secret token, without sending the token.
//
// Three frames on the control channel, each under a deadline:
//
//	dialer   -> acceptor  HELLO     from(i32) to(i32) nonceD[16]
//	acceptor -> dialer    CHALLENGE nonceA[16] mac("acceptor", from, to, nonceD, nonceA)
//	dialer   -> acceptor  PROOF     mac("dialer", from, to, nonceD, nonceA)
//
// mac is HMAC-SHA256 keyed with the token. The acceptor answers a failed
// proof with REJECT and a reason and closes the connection; nothing of the
// job is affected.
package auth
