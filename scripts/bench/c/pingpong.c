/* pingpong SMALL N SIZE BIG: rank 0 sends, rank 1 echoes; N round trips of
 * SMALL bytes, then BIG round trips of SIZE bytes, each after a few untimed
 * ones. One-way time is half the mean round trip; bandwidth is SIZE per
 * one-way time. Around the timed small round trips each rank reads its
 * context switches and CPU time (getrusage, every thread); rank 0 prints the
 * two ranks' sum per round trip. Output keys match scripts/bench/ranks. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static double usage[2]; /* context switches, CPU ns: end minus start */

static void rusage_now(double u[2])
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	u[0] = (double)ru.ru_nvcsw + (double)ru.ru_nivcsw;
	u[1] = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e9 + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e3;
}

static double run(int rank, char *buf, int size, int iters, int tag)
{
	int i, warm = iters / 10 + 1 < 100 ? iters / 10 + 1 : 100;
	double t = 0, u0[2], u1[2];

	for (i = -warm; i < iters; i++) {
		if (i == 0) {
			rusage_now(u0);
			t = MPI_Wtime();
		}
		if (rank == 0) {
			MPI_Send(buf, size, MPI_BYTE, 1, tag, MPI_COMM_WORLD);
			MPI_Recv(buf, size, MPI_BYTE, 1, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
		} else if (rank == 1) {
			MPI_Recv(buf, size, MPI_BYTE, 0, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
			MPI_Send(buf, size, MPI_BYTE, 0, tag, MPI_COMM_WORLD);
		}
	}
	t = MPI_Wtime() - t;
	rusage_now(u1);
	usage[0] = u1[0] - u0[0];
	usage[1] = u1[1] - u0[1];
	return t;
}

int main(int argc, char **argv)
{
	int rank, small = 8, n = 20000, size = 1 << 20, big = 200;
	double t, oneway, mine[2], sum[2] = {0, 0};
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
	mine[0] = rank < 2 ? usage[0] : 0;
	mine[1] = rank < 2 ? usage[1] : 0;
	MPI_Reduce(mine, sum, 2, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
	MPI_Barrier(MPI_COMM_WORLD);
	if (rank == 0) {
		printf("BENCH pingpong.small_bytes %d\n", small);
		printf("BENCH pingpong.oneway_ns %g\n", t * 1e9 / (2.0 * n));
		printf("BENCH pingpong.ctxsw_per_rt %g\n", sum[0] / n);
		printf("BENCH pingpong.cpu_ns_per_rt %g\n", sum[1] / n);
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
