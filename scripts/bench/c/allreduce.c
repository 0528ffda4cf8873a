/* allreduce SMALL N LARGE BIG: mean MPI_Allreduce (MPI_SUM of doubles) time
 * for N vectors of SMALL elements, then BIG vectors of LARGE elements, each
 * after a few untimed ones and a barrier; rank 0 prints
 * "BENCH allreduce.<elements>.mean_ns X" (as scripts/bench/allreduce). */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

static int run(int rank, int size, int elems, int iters)
{
	int i, k, warm = iters / 10 + 1 < 20 ? iters / 10 + 1 : 20;
	double *in = malloc(elems * sizeof(double)), *out = malloc(elems * sizeof(double));
	double t = 0, want;

	for (k = 0; k < elems; k++)
		in[k] = rank + k;
	for (i = -warm; i < iters; i++) {
		if (i == 0) {
			MPI_Barrier(MPI_COMM_WORLD);
			t = MPI_Wtime();
		}
		MPI_Allreduce(in, out, elems, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
	}
	t = MPI_Wtime() - t;
	want = size * (size - 1) / 2.0 + (double)size * (elems - 1);
	if (out[elems - 1] != want) {
		fprintf(stderr, "allreduce: rank %d: got %g, want %g\n", rank, out[elems - 1], want);
		return 1;
	}
	if (rank == 0)
		printf("BENCH allreduce.%d.mean_ns %g\n", elems, t * 1e9 / iters);
	free(in);
	free(out);
	return 0;
}

int main(int argc, char **argv)
{
	int rank, size, rc;
	int small = 1, n = 2000, large = 1 << 17, big = 20;

	MPI_Init(&argc, &argv);
	if (argc > 4) {
		small = atoi(argv[1]);
		n = atoi(argv[2]);
		large = atoi(argv[3]);
		big = atoi(argv[4]);
	}
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	rc = run(rank, size, small, n) || run(rank, size, large, big);
	if (rc)
		MPI_Abort(MPI_COMM_WORLD, 1);
	MPI_Finalize();
	return 0;
}
