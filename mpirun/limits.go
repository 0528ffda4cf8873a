package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"

	"github.com/dsmexec/dsmexec/internal/proc"

	"github.com/dsmexec/dsmexec/internal/limits"
)

// limitsJob describes the job for the descriptor formulas of package
// limits.
func (cfg *config) limitsJob() limits.Job {
	j := limits.Job{Size: cfg.np, DSM: cfg.dsmSize > 0, Mesh: limits.CurrentMesh, MemMesh: limits.CurrentMemMesh, Pagers: limits.CurrentPagers}
	for _, hp := range cfg.plan.hosts {
		if len(hp.ranks) > 0 {
			j.Hosts++
			j.PerHost = max(j.PerHost, len(hp.ranks))
		}
	}
	fault := os.Getenv("DSMEXEC_FAULT")
	for _, a := range cfg.apps {
		for _, v := range append(append([]envVar(nil), cfg.genv...), a.env...) {
			if v.name == "DSMEXEC_FAULT" && !v.unset {
				fault = v.value
			}
		}
	}
	j.SIGSEGV = strings.TrimSpace(fault) == "sigsegv"
	return j
}

// mpirunFDs is what mpirun itself holds for the job: 3 per rank it forks,
// 1 per remote host (its agent relays the rendezvous of the host's ranks).
func (cfg *config) mpirunFDs() int {
	local, hosts := 0, 0
	for _, hp := range cfg.plan.hosts {
		if hp.local {
			local += len(hp.ranks)
		} else {
			hosts++
		}
	}
	return limits.MpirunFDs(local, hosts, 0)
}

// checkLimits raises mpirun's soft limit of open files to the hard one
// (the ranks it forks inherit it) and refuses a job that needs more
// descriptors per process than the hard limit, or more ephemeral ports
// than there are, before anything starts: such a job would otherwise time
// out half-connected. Remote hosts are checked when their agents say hello
// (checkHostLimits).
func (d *driver) checkLimits() *cliError {
	hard, err := limits.Raise()
	if err != nil {
		d.vlogf("%v", err)
		if _, hard, err = limits.NoFile(); err != nil {
			d.vlogf("%v", err)
			return nil
		}
	}
	cfg := d.cfg
	j := cfg.limitsJob()
	var local []int
	for _, hp := range cfg.plan.hosts {
		if hp.local {
			local = append(local, hp.ranks...)
		}
	}
	need := 0
	if len(local) > 0 {
		need = j.ProcessFDs()
	}
	mp := cfg.mpirunFDs()
	d.vlogf("open files: each rank ~%d, its page server ~%d, mpirun ~%d; the hard limit here is %d", j.RankFDs(), j.PagerFDs(), mp, hard)
	if err := limits.Check(cfg.np, need, mp, "", hard); err != nil {
		return failErr(limits.Hint, "%v", err)
	}
	if len(local) == 0 {
		return nil
	}
	lo, hi, err := limits.PortRange()
	if err != nil {
		d.vlogf("%v", err)
		return nil
	}
	note, err := limits.CheckPorts(len(local), j.Dials(local), hi-lo+1, "")
	if err != nil {
		return failErr("widen it with sysctl net.ipv4.ip_local_port_range, or use fewer ranks per host", "%v", err)
	}
	if note != "" {
		d.vlogf("%s", note)
	}
	return nil
}

// masterWarnf prints the master's warnings; one about running out of
// descriptors (its accept loop's EMFILE) names the limit.
func (d *driver) masterWarnf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if strings.Contains(msg, syscall.EMFILE.Error()) {
		msg += " (" + limits.Explain(syscall.EMFILE) + ")"
	}
	d.out.Printf(proc.Stderr, "mpirun: warning: %s", msg)
}

// checkHostLimits checks the limits each agent reported in its Hello
// against what the host's ranks need (and the agent itself: it forks them
// as mpirun does), before any rank starts.
func (d *driver) checkHostLimits(hosts []*hostPlan) *cliError {
	j := d.cfg.limitsJob()
	for _, hp := range hosts {
		rh := d.ssh.hosts[hp]
		if rh == nil || rh.agent == nil {
			continue
		}
		h := rh.agent.Hello()
		if h.NoFile != 0 {
			agent := limits.MpirunFDs(len(hp.ranks), 0, 0)
			if err := limits.Check(d.cfg.np, j.ProcessFDs(), agent, hp.name, h.NoFile); err != nil {
				return failErr(limits.Hint+" on "+hp.name, "%v", err)
			}
		}
		if h.Ports != 0 {
			note, err := limits.CheckPorts(len(hp.ranks), j.Dials(hp.ranks), h.Ports, hp.name)
			if err != nil {
				return failErr("widen it with sysctl net.ipv4.ip_local_port_range on "+hp.name+", or use fewer ranks per host", "%v", err)
			}
			if note != "" {
				d.vlogf("%s", note)
			}
		}
	}
	return nil
}
