/*
 * mpi.c - lstm_dist over an MPI communicator: each sum the trainer asks
 * for (the step's flags and loss sums, then its gradients) one
 * MPI_Allreduce in place (in chunks of at most INT_MAX elements, MPI's
 * count type).
 */
#include <limits.h>

#include "internal.h"
#include "lstm_mpi.h"

static int allreduce(void *buf, size_t n, MPI_Datatype type, size_t size,
                     void *ctx)
{
    const lstm_mpi *m = ctx;
    for (size_t done = 0; done < n;) {
        const size_t k = n - done < (size_t)INT_MAX ? n - done
                                                    : (size_t)INT_MAX;
        int rc = MPI_Allreduce(MPI_IN_PLACE, (char *)buf + done * size,
                               (int)k, type, MPI_SUM, m->comm);
        if (rc != MPI_SUCCESS) {
            char msg[MPI_MAX_ERROR_STRING];
            int len = 0;
            MPI_Error_string(rc, msg, &len);
            return lstm_error(LSTM_EIO, "MPI_Allreduce over %zu values "
                              "failed on rank %d of %d: %.*s", n,
                              m->dist.rank, m->dist.size, len, msg);
        }
        done += k;
    }
    return LSTM_OK;
}

static int sum_floats(float *buf, size_t n, void *ctx)
{
    return allreduce(buf, n, MPI_FLOAT, sizeof *buf, ctx);
}

static int sum_doubles(double *buf, size_t n, void *ctx)
{
    return allreduce(buf, n, MPI_DOUBLE, sizeof *buf, ctx);
}

int lstm_mpi_init(lstm_mpi *m, MPI_Comm comm)
{
    m->comm = comm;
    m->dist = (lstm_dist){0, 1, sum_floats, sum_doubles, m};
    if (MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN) != MPI_SUCCESS ||
        MPI_Comm_rank(comm, &m->dist.rank) != MPI_SUCCESS ||
        MPI_Comm_size(comm, &m->dist.size) != MPI_SUCCESS)
        return lstm_error(LSTM_EIO, "MPI: cannot query the communicator");
    return LSTM_OK;
}
