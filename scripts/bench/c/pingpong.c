/* pingpong SMALL N SIZE BIG: rank 0 sends, rank 1 echoes; N round trips of
 * SMALL bytes, then BIG round trips of SIZE bytes, each after a few untimed
 * ones. One-way time is half the mean round trip; bandwidth is SIZE per
 * one-way time. Output keys match scripts/bench/ranks. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double run(int rank, char *buf, int size, int iters, int tag)
{
	int i, warm = iters / 10 + 1 < 100 ? iters / 10 + 1 : 100;
	double t = 0;

	for (i = -warm; i < iters; i++) {
		if (i == 0)
			t = MPI_Wtime();
		if (rank == 0) {
			MPI_Send(buf, size, MPI_BYTE, 1, tag, MPI_COMM_WORLD);
			MPI_Recv(buf, size, MPI_BYTE, 1, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
		} else if (rank == 1) {
			MPI_Recv(buf, size, MPI_BYTE, 0, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
			MPI_Send(buf, size, MPI_BYTE, 0, tag, MPI_COMM_WORLD);
		}
	}
	return MPI_Wtime() - t;
}

int main(int argc, char **argv)
{
	int rank, small = 8, n = 20000, size = 1 << 20, big = 200;
	double t, oneway;
	char *buf;

	MPI_Init(&argc, &argv);
	if (argc > 4) {
		small = atoi(argv[1]);
		n = atoi(argv[2]);
		size = atoi(argv[3]);
		big = atoi(argv[4]);
	}
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	buf = malloc(size > small ? size : small);
	memset(buf, 1, size > small ? size : small);
	t = run(rank, buf, small, n, 1);
	MPI_Barrier(MPI_COMM_WORLD);
	if (rank == 0) {
		printf("BENCH pingpong.small_bytes %d\n", small);
		printf("BENCH pingpong.oneway_ns %g\n", t * 1e9 / (2.0 * n));
	}
	t = run(rank, buf, size, big, 2);
	if (rank == 0) {
		oneway = t / (2.0 * big);
		printf("BENCH pingpong.big_bytes %d\n", size);
		printf("BENCH pingpong.big_oneway_ns %g\n", oneway * 1e9);
		printf("BENCH pingpong.bandwidth_Bps %g\n", size / oneway);
	}
	free(buf);
	MPI_Finalize();
	return 0;
}
