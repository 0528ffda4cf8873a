package rank_test

import (
	"errors"
	"fmt"
	"log"

	"github.com/dsmexec/dsmexec/dsm"
	"github.com/dsmexec/dsmexec/rank"
)

// The examples run as a world of one rank: without mpirun (no DSMEXEC_*
// environment) Init makes a singleton, and the same program runs unchanged
// under mpirun -np N. Errors are fatal by default, so the examples only
// check the errors that are the caller's own mistakes.

// Without mpirun, Init makes a world of one rank; the same program runs
// unchanged under mpirun -np N.
func Example() {
	w, err := rank.Init()
	if err != nil {
		log.Fatal(err)
	}
	defer w.Finalize()
	w.Send(w.Rank(), 1, []byte("to myself"))
	b, _ := w.Recv(rank.AnySource, 1)
	sum, _ := rank.Allreduce(w, []int{w.Rank() + 1}, rank.Sum)
	v := dsm.Slice[int64](w.Memory(), 0, 1)
	v[0] = 42
	fmt.Println(w.Size(), string(b), sum[0], v[0])
	// Output: 1 to myself 1 42
}

// A rank may send to itself: Send returns once the message is handed
// over, and the Recv that follows gets it. RecvStatus also says who sent
// it, with which tag, and how many bytes.
func ExampleWorld_Send() {
	w, err := rank.Init()
	if err != nil {
		log.Fatal(err)
	}
	defer w.Finalize()
	if err := w.Send(0, 5, []byte("hello")); err != nil {
		log.Fatal(err)
	}
	if err := w.Send(0, 6, []byte("world!")); err != nil {
		log.Fatal(err)
	}
	b, err := w.Recv(0, 5)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(b))
	b, st, err := w.RecvStatus(rank.AnySource, rank.AnyTag)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s from rank %d, tag %d, %d bytes\n", b, st.Source, st.Tag, st.Count)
	// Output:
	// hello
	// world! from rank 0, tag 6, 6 bytes
}

// Barrier returns once every rank has called it; at once on one rank.
func ExampleWorld_Barrier() {
	w, err := rank.Init()
	if err != nil {
		log.Fatal(err)
	}
	defer w.Finalize()
	if err := w.Barrier(); err != nil {
		log.Fatal(err)
	}
	fmt.Println("every rank is past the barrier")
	// Output: every rank is past the barrier
}

// Bcast gives every rank the root's bytes; the other ranks' argument is
// ignored.
func ExampleWorld_Bcast() {
	w, err := rank.Init()
	if err != nil {
		log.Fatal(err)
	}
	defer w.Finalize()
	var msg []byte
	if w.Rank() == 0 {
		msg = []byte("settings from rank 0")
	}
	got, err := w.Bcast(0, msg)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(got))
	// Output: settings from rank 0
}

// Allreduce combines every rank's slice element-wise and gives every rank
// the result: here the sum of the ranks' counts and the largest error.
func ExampleAllreduce() {
	w, err := rank.Init()
	if err != nil {
		log.Fatal(err)
	}
	defer w.Finalize()
	counts, err := rank.Allreduce(w, []int64{10, 20}, rank.Sum)
	if err != nil {
		log.Fatal(err)
	}
	worst, err := rank.Allreduce(w, []float64{0.25}, rank.Max)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(counts, worst)
	// Output: [10 20] [0.25]
}

// Isend and Irecv start a send and a receive and return at once; Waitall
// waits for both. Posting the receive first is how a ring exchange avoids
// deadlock.
func ExampleWorld_Isend() {
	w, err := rank.Init()
	if err != nil {
		log.Fatal(err)
	}
	defer w.Finalize()
	right := (w.Rank() + 1) % w.Size()
	left := (w.Rank() + w.Size() - 1) % w.Size()
	recv := w.Irecv(left, 0)
	send := w.Isend(right, 0, []byte(fmt.Sprintf("from rank %d", w.Rank())))
	if err := rank.Waitall(recv, send); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s (tag %d)\n", recv.Bytes(), recv.Status().Tag)
	// Output: from rank 0 (tag 0)
}

// Probe waits for a message without receiving it: its Status says how
// long it is, so the receiver can make a buffer of the right size.
func ExampleWorld_Probe() {
	w, err := rank.Init()
	if err != nil {
		log.Fatal(err)
	}
	defer w.Finalize()
	w.Send(0, 3, []byte("a message of some length"))
	st, err := w.Probe(rank.AnySource, rank.AnyTag)
	if err != nil {
		log.Fatal(err)
	}
	buf := make([]byte, st.Count)
	n, _, err := w.RecvInto(st.Source, st.Tag, buf)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d bytes with tag %d: %s\n", n, st.Tag, buf)
	// Output: 24 bytes with tag 3: a message of some length
}

// Split makes communicators of the ranks with the same color, numbered by
// key. Here every rank's color is its rank modulo 2 (even and odd ranks).
// A reduction on the new communicator involves only its ranks.
func ExampleWorld_Split() {
	w, err := rank.Init()
	if err != nil {
		log.Fatal(err)
	}
	defer w.Finalize()
	half, err := w.Split(w.Rank()%2, w.Rank())
	if err != nil {
		log.Fatal(err)
	}
	defer half.Free()
	sum, err := rank.Allreduce(half, []int{w.Rank()}, rank.Sum)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("rank %d of %d in its half (world rank %d), sum of world ranks %d\n",
		half.Rank(), half.Size(), half.WorldRank(half.Rank()), sum[0])
	// Output: rank 0 of 1 in its half (world rank 0), sum of world ranks 0
}

// With ErrorsReturn a failed call returns its error instead of ending the
// rank; mistakes at the call site, such as a rank that does not exist,
// are returned in both modes.
func ExampleInitWith() {
	w, err := rank.InitWith(rank.ErrorsReturn)
	if err != nil {
		log.Fatal(err)
	}
	defer w.Finalize()
	err = w.Send(5, 0, []byte("nobody"))
	fmt.Println(errors.Is(err, rank.ErrBadRank))
	// Output: true
}

// SendSlice and RecvSlice send a []T of numbers (or structs of them)
// without encoding by hand; Status.Count is still in bytes.
func ExampleSendSlice() {
	w, err := rank.Init()
	if err != nil {
		log.Fatal(err)
	}
	defer w.Finalize()
	if err := rank.SendSlice(w, 0, 2, []float64{0.5, 1.5, 2.5}); err != nil {
		log.Fatal(err)
	}
	v, st, err := rank.RecvSlice[float64](w, 0, 2)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(v, st.Count)
	// Output: [0.5 1.5 2.5] 24
}
