/* barrier N: mean MPI_Barrier time over N barriers after 100 untimed ones,
 * printed by rank 0 as "BENCH barrier.mean_ns X" (same as scripts/bench/ranks). */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
	int rank, i, n = argc > 1 ? atoi(argv[1]) : 10000;
	double t;

	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	for (i = 0; i < 100; i++)
		MPI_Barrier(MPI_COMM_WORLD);
	t = MPI_Wtime();
	for (i = 0; i < n; i++)
		MPI_Barrier(MPI_COMM_WORLD);
	t = MPI_Wtime() - t;
	if (rank == 0)
		printf("BENCH barrier.mean_ns %g\n", t * 1e9 / n);
	MPI_Finalize();
	return 0;
}
