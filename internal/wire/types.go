package wire

// Frame types on ChanControl: one number space for every connection the
// system makes (handshake, rendezvous, meshes, the rank ↔ page server
// socket), so that a frame on the wrong connection is never taken for
// another. spec.md lists the same numbers; TestSpecListsEveryControlType
// keeps the two equal. Packages name these constants instead of numbers.
const (
	// Handshake (internal/auth).
	TypeHello     uint8 = 1
	TypeChallenge uint8 = 2
	TypeProof     uint8 = 3
	TypeReject    uint8 = 5

	// Rendezvous: rank ↔ mpirun's master or a host's relay (internal/rendezvous).
	TypeJoin   uint8 = 10
	TypeTable  uint8 = 11
	TypeCell   uint8 = 12
	TypeStats  uint8 = 13
	TypeBye    uint8 = 15
	TypeWhere  uint8 = 16
	TypeAbort  uint8 = 17
	TypeFailed uint8 = 18
	TypeJoins  uint8 = 19 // relay → master only
	TypeWarn   uint8 = 20 // relay → master only
	TypeLost   uint8 = 21 // master → rank, master → relay, relay → master
	TypeState  uint8 = 22 // master → rank, rank → master: the deadlock detector's question
	TypeTrace  uint8 = 26 // rank → master: a piece of a trace stream
	TypeClock  uint8 = 27 // rank ↔ master: a clock sample

	// Meshes: the application mesh (rank) and the memory mesh (page servers).
	TypeMeshBye   uint8 = 30
	TypeDoorbell  uint8 = 31
	TypeRingOffer uint8 = 32
	TypeRingReply uint8 = 33
	TypeMeshOK    uint8 = 34

	// The memory mesh's acceptor, after the handshake: 0 accepted, 1 my
	// own dial to you wins (dsm).
	TypeMemVerdict uint8 = 38
	// Between host page servers: a rank of the sender's host was lost.
	TypeMemLost uint8 = 39

	// The rank ↔ page server control socket (dsm).
	TypePagerConfig  uint8 = 40
	TypePagerConnect uint8 = 41
	TypePagerLock    uint8 = 42
	TypePagerUnlock  uint8 = 43
	TypePagerStats   uint8 = 44
	TypePagerClose   uint8 = 45
	TypePagerReset   uint8 = 46
	TypePagerReport  uint8 = 47
	TypePagerListen  uint8 = 50
	TypePagerReply   uint8 = 51
	TypePagerFatal   uint8 = 52
	TypePagerLog     uint8 = 53
)

// ControlTypes names every ChanControl frame type as spec.md does.
var ControlTypes = map[uint8]string{
	TypeHello: "HELLO", TypeChallenge: "CHALLENGE", TypeProof: "PROOF", TypeReject: "REJECT",
	TypeJoin: "JOIN", TypeTable: "TABLE", TypeCell: "CELL", TypeStats: "STATS", TypeBye: "BYE",
	TypeWhere: "WHERE", TypeAbort: "ABORT", TypeFailed: "FAILED", TypeJoins: "JOINS", TypeWarn: "WARN", TypeLost: "LOST", TypeState: "STATE",
	TypeMeshBye: "BYE", TypeDoorbell: "DOORBELL", TypeRingOffer: "RING OFFER", TypeRingReply: "RING REPLY", TypeMeshOK: "MESH OK",
	TypeMemVerdict: "VERDICT", TypeMemLost: "LOST RANK",
	TypePagerConfig: "CONFIG", TypePagerConnect: "CONNECT", TypePagerLock: "LOCK", TypePagerUnlock: "UNLOCK",
	TypePagerStats: "STATS", TypePagerClose: "CLOSE", TypePagerReset: "RESETSTATS", TypePagerListen: "LISTEN",
	TypePagerReply: "REPLY", TypePagerFatal: "FATAL", TypePagerLog: "LOG",
}
