package main

import (
	"strconv"
	"strings"
)

// baseEnv is mpirun's environment without the launch variables of any
// enclosing job and without the names -x sets, followed by the -x values.
func baseEnv(environ []string, xs []envVar) []string {
	drop := map[string]bool{}
	for _, v := range launchVars {
		drop[v] = true
	}
	for _, x := range xs {
		drop[x.name] = true
	}
	env := make([]string, 0, len(environ)+len(xs)+len(launchVars))
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !drop[name] {
			env = append(env, kv)
		}
	}
	for _, x := range xs {
		if !x.unset {
			env = append(env, x.name+"="+x.value)
		}
	}
	return env
}

// launchEnv is the DSMEXEC_* launch environment of one rank (README:
// "Environment"; rank.Init reads it).
func launchEnv(base []string, rank, size int, master, token, host string, dsmSize int64) []string {
	env := make([]string, len(base), len(base)+len(launchVars))
	copy(env, base)
	return append(env,
		"DSMEXEC_RANK="+strconv.Itoa(rank),
		"DSMEXEC_SIZE="+strconv.Itoa(size),
		"DSMEXEC_MASTER="+master,
		"DSMEXEC_TOKEN="+token,
		"DSMEXEC_HOST="+host,
		"DSMEXEC_DSM_SIZE="+strconv.FormatInt(dsmSize, 10),
	)
}
