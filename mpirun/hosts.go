package main

import (
	"errors"
	"fmt"
	"slices"

	"github.com/dsmexec/dsmexec/internal/hostfile"
)

// hostPlan is one machine of the job: the ranks of every machine-file line
// with the same SSH destination (user@host:port), which share one agent and
// one SSH connection, or one fork launcher for this machine.
type hostPlan struct {
	entry hostfile.Entry // the first line naming it
	// name is what the user sees: output tags, DSMEXEC_HOST, -summary. The
	// host as written, or user@host:port if that is ambiguous.
	name  string
	local bool  // forked here rather than started over SSH
	ranks []int // in order
}

// plan says where every rank runs.
type plan struct {
	hosts  []*hostPlan // in order of first appearance
	hostOf []int       // rank → index in hosts
}

func (p *plan) host(rank int) *hostPlan { return p.hosts[p.hostOf[rank]] }

func (p *plan) anyLocal() bool {
	for _, h := range p.hosts {
		if h.local {
			return true
		}
	}
	return false
}

func (p *plan) remote() []*hostPlan {
	var r []*hostPlan
	for _, h := range p.hosts {
		if !h.local {
			r = append(r, h)
		}
	}
	return r
}

// multiHost: more than one machine name is involved, so output lines carry
// the host in their tag.
func (p *plan) multiHost() bool { return len(p.hosts) > 1 }

// names returns the host name of every rank.
func (p *plan) names() []string {
	n := make([]string, len(p.hostOf))
	for r := range n {
		n[r] = p.host(r).name
	}
	return n
}

// makePlan places np ranks on the hosts of hf (nil: all on this machine,
// "localhost") with hostfile.Place. sshAlways sends even this machine's
// entries through SSH. warning is Place's oversubscription warning.
func makePlan(hf *hostfile.File, np int, sshAlways bool) (*plan, string, *cliError) {
	if hf == nil {
		h := &hostPlan{entry: hostfile.Entry{Host: "localhost", Slots: np}, name: "localhost", local: !sshAlways}
		p := &plan{hosts: []*hostPlan{h}, hostOf: make([]int, np)}
		for r := range np {
			h.ranks = append(h.ranks, r)
		}
		return p, "", nil
	}
	lineOf, warning, err := hostfile.Place(hf.Entries, np)
	if err != nil {
		if errors.Is(err, hostfile.ErrFull) {
			return nil, "", failErr("raise max_slots in the machine file, or ask for fewer ranks with -np", "%s: %v", hf.Name, err)
		}
		return nil, "", failErr("", "%s: %v", hf.Name, err)
	}
	p := &plan{hostOf: make([]int, np)}
	byKey := map[string]int{}
	for r, line := range lineOf {
		e := hf.Entries[line]
		i, ok := byKey[e.Key()]
		if !ok {
			i = len(p.hosts)
			byKey[e.Key()] = i
			p.hosts = append(p.hosts, &hostPlan{entry: e, name: e.Host, local: !sshAlways && hostfile.IsLocal(e)})
		}
		p.hostOf[r] = i
		p.hosts[i].ranks = append(p.hosts[i].ranks, r)
	}
	// Two destinations on one host (alice@h and bob@h, or h:22 and
	// [h]:2222) are told apart by their full key.
	count := map[string]int{}
	for _, h := range p.hosts {
		count[h.name]++
	}
	for _, h := range p.hosts {
		if count[h.entry.Host] > 1 {
			h.name = h.entry.Key()
		}
	}
	if warning != "" {
		warning = fmt.Sprintf("%s: %s (allowed, as with Open MPI's --oversubscribe, which silences this; ranks share CPUs)", hf.Name, warning)
	}
	return p, warning, nil
}

// rankList formats ranks as "rank 3" or "ranks 0, 4, 8" (sorted).
func rankList(ranks []int) string {
	ranks = slices.Sorted(slices.Values(ranks))
	if len(ranks) == 1 {
		return fmt.Sprintf("rank %d", ranks[0])
	}
	s := "ranks "
	for i, r := range ranks {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprint(r)
	}
	return s
}
