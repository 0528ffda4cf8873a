// Package units parses the byte sizes users type (mpirun -dsm-size,
// DSMEXEC_DSM_SIZE): a count with an optional K, M, G suffix (also KiB,
// MiB, GiB, KB, MB, GB), all powers of 1024.
package units
