/* idle MS: rank 1 sends rank 0 its pid and blocks in MPI_Recv; rank 0 reads
 * rank 1's utime+stime from /proc/PID/stat over MS milliseconds (sleeping,
 * outside MPI), then releases it. Prints "BENCH idle.rank_pct X" (% of one
 * CPU), as scripts/bench/ranks idle. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* cpu_ticks is utime+stime of /proc/PID/stat, counted after the last ')'. */
static long long cpu_ticks(int pid)
{
	char path[64], buf[1024], *p;
	long long ut = 0, st = 0;
	FILE *f;
	size_t n;

	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	if (!(f = fopen(path, "r")))
		return -1;
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	if (!(p = strrchr(buf, ')')))
		return -1;
	/* state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
	if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lld %lld", &ut, &st) != 2)
		return -1;
	return ut + st;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
	int rank, pid, ms = argc > 1 ? atoi(argv[1]) : 1000;
	char go = 1;

	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	if (rank == 1) {
		pid = getpid();
		MPI_Send(&pid, 1, MPI_INT, 0, 31, MPI_COMM_WORLD);
		MPI_Recv(&go, 1, MPI_BYTE, 0, 32, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
	} else if (rank == 0) {
		long long c0, c1;
		double t0, t1;
		struct timespec d = {ms / 1000, (ms % 1000) * 1000000L};

		MPI_Recv(&pid, 1, MPI_INT, 1, 31, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
		c0 = cpu_ticks(pid);
		t0 = now();
		nanosleep(&d, NULL);
		c1 = cpu_ticks(pid);
		t1 = now();
		MPI_Send(&go, 1, MPI_BYTE, 1, 32, MPI_COMM_WORLD);
		if (c0 >= 0 && c1 >= 0)
			printf("BENCH idle.rank_pct %g\n", 100.0 * ((c1 - c0) / (double)sysconf(_SC_CLK_TCK)) / (t1 - t0));
	}
	MPI_Barrier(MPI_COMM_WORLD);
	MPI_Finalize();
	return 0;
}
