// Package units parses the byte sizes users type (mpirun -dsm-size,
// DSMEXEC_DSM_SIZE): a count with an optional K, M, G or T suffix (also
// KiB, MiB, GiB, TiB, KB, MB, GB, TB, any case), all powers of 1024, up to
// MaxRegion (16 TiB, what 2^32 pages of 4 KiB can name).
package units
