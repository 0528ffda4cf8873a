package hostfile

import (
	"errors"
	"fmt"
)

// ErrFull is returned by Place when every line has reached its max_slots.
var ErrFull = errors.New("hostfile: not enough slots")

// Place assigns np ranks to entries and returns, for each rank, the index of
// its entry. Ranks fill each entry's Slots in order; when all slots are
// taken the cycle starts again at the first entry (oversubscription, with a
// warning), skipping entries whose MaxSlots is reached.
func Place(entries []Entry, np int) (hostOf []int, warning string, err error) {
	if np < 1 {
		return nil, "", fmt.Errorf("hostfile: place %d ranks: want at least 1", np)
	}
	if len(entries) == 0 {
		return nil, "", ErrNoHosts
	}
	total, limit, unlimited := 0, 0, false
	for i, e := range entries {
		if e.Slots < 1 || (e.MaxSlots != 0 && e.MaxSlots < e.Slots) {
			panic(fmt.Sprintf("hostfile: entry %d has slots=%d max_slots=%d", i, e.Slots, e.MaxSlots))
		}
		total += e.Slots
		if e.MaxSlots == 0 {
			unlimited = true
		}
		limit += e.MaxSlots
	}
	if !unlimited && np > limit {
		return nil, "", fmt.Errorf("%w: %d ranks but the hosts' max_slots add up to %d", ErrFull, np, limit)
	}
	hostOf = make([]int, 0, np)
	used := make([]int, len(entries))
	for len(hostOf) < np {
		for i, e := range entries {
			for s := 0; s < e.Slots && len(hostOf) < np; s++ {
				if e.MaxSlots != 0 && used[i] >= e.MaxSlots {
					break
				}
				used[i]++
				hostOf = append(hostOf, i)
			}
		}
	}
	if np > total {
		warning = fmt.Sprintf("%d ranks on %d slots: hosts are oversubscribed", np, total)
	}
	return hostOf, warning, nil
}
