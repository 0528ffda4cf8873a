//go:build dsmexec_notrace

package rank

// traceBuilt is false with the build tag dsmexec_notrace: every tracing
// call site is dead code, the baseline make bench measures "tracing off"
// against (docs/TRACING.md section 3).
const traceBuilt = false
