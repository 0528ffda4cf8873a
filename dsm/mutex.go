package dsm

import "fmt"

// Mutex is a distributed lock: one holder in the whole job at a time,
// granted in request order by the lock's home rank (id % size). Waiting
// blocks without polling the network.
type Mutex struct {
	m  *Memory
	id int
}

// Mutex returns the job-wide lock with this id.
func (m *Memory) Mutex(id int) *Mutex {
	m.mutexMu.Lock()
	defer m.mutexMu.Unlock()
	mu := m.mutexes[id]
	if mu == nil {
		mu = &Mutex{m: m, id: id}
		m.mutexes[id] = mu
	}
	return mu
}

// Lock blocks until this rank holds the lock. A lost home rank is fatal.
func (mu *Mutex) Lock() {
	defer mu.m.lockBegin(mu.id)()
	if err := mu.m.impl.lock(mu.id); err != nil {
		fatal(fmt.Errorf("dsm: lock %d: %w", mu.id, err))
	}
}

// Unlock releases the lock.
func (mu *Mutex) Unlock() {
	mu.m.unlocked(mu.id)
	if err := mu.m.impl.unlock(mu.id); err != nil {
		fatal(fmt.Errorf("dsm: unlock %d: %w", mu.id, err))
	}
}
