//go:build !dsmexec_notrace

package rank

// traceBuilt: the tracing call sites are compiled in (the default); see
// tracer.off.
const traceBuilt = true
