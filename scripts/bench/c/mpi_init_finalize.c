/* mpi_init_finalize: the Open MPI launch baseline of `make bench`.
 * Nothing but MPI_Init and MPI_Finalize, so the wall time of
 * `mpirun -np N ./mpi_init_finalize` is what a job costs before it does work. */
#include <mpi.h>

int main(int argc, char **argv)
{
	MPI_Init(&argc, &argv);
	MPI_Finalize();
	return 0;
}
