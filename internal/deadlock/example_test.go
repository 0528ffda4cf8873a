package deadlock_test

import (
	"fmt"
	"time"

	"github.com/dsmexec/dsmexec/internal/deadlock"
)

func ExampleCheck() {
	since := time.Unix(100, 0)
	recv := func(from int) deadlock.Rank {
		return deadlock.Rank{State: deadlock.Blocked, Since: since, Call: deadlock.Call{Name: "Recv", Recvs: []deadlock.Match{{From: from, Tag: 0}}}}
	}
	v := deadlock.Check(deadlock.Snapshot{Now: since.Add(3 * time.Second), Ranks: []deadlock.Rank{recv(1), recv(0)}}, 2*time.Second)
	fmt.Println("mpirun: " + v.Text)
	// Output: mpirun: deadlock: rank 0 waits in Recv(from 1, tag 0), rank 1 waits in Recv(from 0, tag 0); nobody can send
}
