/* collectives WHAT N SMALL LARGE BIG: mean time of MPI_Alltoall,
 * MPI_Scan or MPI_Reduce_scatter_block (WHAT = alltoall, scan or
 * reducescatter) on doubles: N calls of the small size, then BIG of the
 * large one, each after a few untimed ones and a barrier. Sizes are in
 * doubles: for alltoall and reducescatter, per block (each rank's input
 * holds Size() blocks); for scan, the vector. Every rank times its own
 * calls and the slowest rank's time counts (rank 0 alone would time only
 * its sends in a Scan). Rank 0 prints "BENCH WHAT.<doubles>.mean_ns X" (as
 * scripts/bench/ranksapi). */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int run(const char *what, int rank, int size, int elems, int iters)
{
	int i, k, warm = iters / 10 + 1 < 20 ? iters / 10 + 1 : 20;
	long in_n = strcmp(what, "scan") == 0 ? elems : (long)elems * size;
	long out_n = strcmp(what, "alltoall") == 0 ? in_n : elems;
	double *in = malloc(in_n * sizeof(double)), *out = malloc(out_n * sizeof(double));
	double t = 0, tmax = 0, want, got;

	for (k = 0; k < in_n; k++)
		in[k] = rank + k;
	for (i = -warm; i < iters; i++) {
		if (i == 0) {
			MPI_Barrier(MPI_COMM_WORLD);
			t = MPI_Wtime();
		}
		if (strcmp(what, "alltoall") == 0)
			MPI_Alltoall(in, elems, MPI_DOUBLE, out, elems, MPI_DOUBLE, MPI_COMM_WORLD);
		else if (strcmp(what, "scan") == 0)
			MPI_Scan(in, out, elems, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
		else
			MPI_Reduce_scatter_block(in, out, elems, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
	}
	t = MPI_Wtime() - t;
	/* Check the last element. */
	got = out[out_n - 1];
	if (strcmp(what, "alltoall") == 0) /* block size-1 from rank size-1: its block `rank` */
		want = (size - 1) + (double)rank * elems + elems - 1;
	else if (strcmp(what, "scan") == 0) /* sum over r <= rank of r + elems-1 */
		want = rank * (rank + 1) / 2.0 + (rank + 1.0) * (elems - 1);
	else /* block `rank` summed: sum of r + rank*elems + elems-1 */
		want = size * (size - 1) / 2.0 + (double)size * ((double)rank * elems + elems - 1);
	if (got != want) {
		fprintf(stderr, "collectives: %s: rank %d: got %g, want %g\n", what, rank, got, want);
		return 1;
	}
	MPI_Reduce(&t, &tmax, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
	if (rank == 0)
		printf("BENCH %s.%d.mean_ns %g\n", what, elems, tmax * 1e9 / iters);
	free(in);
	free(out);
	return 0;
}

int main(int argc, char **argv)
{
	int rank, size, rc;
	int n = 2000, small = 1, large = 16384, big = 20;
	const char *what;

	MPI_Init(&argc, &argv);
	if (argc < 2) {
		fprintf(stderr, "usage: collectives alltoall|scan|reducescatter [N SMALL LARGE BIG]\n");
		MPI_Abort(MPI_COMM_WORLD, 2);
	}
	what = argv[1];
	if (argc > 5) {
		n = atoi(argv[2]);
		small = atoi(argv[3]);
		large = atoi(argv[4]);
		big = atoi(argv[5]);
	}
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	rc = run(what, rank, size, small, n) || run(what, rank, size, large, big);
	if (rc)
		MPI_Abort(MPI_COMM_WORLD, 1);
	MPI_Finalize();
	return 0;
}
