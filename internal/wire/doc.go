// Package wire frames messages on a stream: a fixed 12-byte header
// (version, channel, type, flags, source rank, body length) and a body
// whose length is checked against a maximum before it is allocated.
// spec.md in this folder describes every byte dsmexec sends.
//
// Usage:
//
//	w := wire.NewWriter(conn, myRank)                  // one per connection, safe for concurrent use
//	w.Write(wire.ChanUser, typ, 0, header, payload)    // one frame, never interleaved with another
//	w.WriteMessage(wire.ChanUser, typ, prefix, big)    // any size: fragments with FlagMore
//	f, err := wire.ReadMessage(bufio.NewReader(conn))  // a frame, fragments reassembled
//
// User messages between ranks (channel 1) start with a prefix of context,
// tag and total length (PutUserPrefix, ParseUserPrefix); package rank's
// engine writes and parses those frames itself, placing the payload where
// the receive wants it.
package wire
