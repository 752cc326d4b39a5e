/*
 * lstm_mpi.h - data-parallel training over MPI (built with `make MPI=1`,
 * which compiles lib/mpi/mpi.c into the library with mpicc). Each process
 * of the communicator runs the same program on the same data;
 * lstm_trainer_distribute(t, &mpi.dist) makes the trainer split every
 * batch across them (lstm_train.h says how):
 *
 *     MPI_Init(&argc, &argv);
 *     lstm_mpi mpi;
 *     lstm_mpi_init(&mpi, MPI_COMM_WORLD);
 *     ... lstm_trainer_init, lstm_trainer_data ...
 *     lstm_trainer_distribute(&t, &mpi.dist);
 *     lstm_trainer_fit(&t);              // only rank 0 should write files
 *     MPI_Finalize();
 */
#ifndef LSTM_MPI_H
#define LSTM_MPI_H

#include <mpi.h>

#include "lstm_train.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    lstm_dist dist;           /* rank, size and the sums, over comm */
    MPI_Comm comm;
} lstm_mpi;

/* Sets comm's error handler to MPI_ERRORS_RETURN, so that a failed sum
 * (a process that died, a broken link) becomes an error of fit naming
 * MPI's message instead of an abort; under mpirun, a process that dies
 * makes mpirun end the others. */
int lstm_mpi_init(lstm_mpi *m, MPI_Comm comm);

#ifdef __cplusplus
}
#endif
#endif /* LSTM_MPI_H */
