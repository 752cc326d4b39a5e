/*
 * tensor.c - a tensor is a shape over a float array; there is no autograd
 * and no broadcasting: layers know their shapes.
 */
#include <string.h>

#include "internal.h"

int lstm__shape_numel(int ndim, const size_t *shape, size_t *numel)
{
    if (ndim < 0 || ndim > LSTM_MAXDIM)
        return lstm_error(LSTM_EINVAL, "tensor: %d dimensions (at most %d)",
                          ndim, LSTM_MAXDIM);
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] && n > SIZE_MAX / sizeof(float) / shape[i])
            return lstm_error(LSTM_EINVAL, "tensor: shape overflows");
        n *= shape[i];
    }
    *numel = n;
    return LSTM_OK;
}

int lstm_tensor_init(lstm_tensor *t, int ndim, const size_t *shape)
{
    memset(t, 0, sizeof *t);
    size_t n;
    int err = lstm__shape_numel(ndim, shape, &n);
    if (err)
        return err;
    t->data = lstm_alloc(n * sizeof(float));
    if (!t->data)
        return LSTM_ENOMEM;
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    t->numel = n;
    t->owner = 1;
    return LSTM_OK;
}

lstm_tensor lstm_tensor_view(float *data, int ndim, const size_t *shape)
{
    lstm_tensor t;
    memset(&t, 0, sizeof t);
    size_t n;
    int err = lstm__shape_numel(ndim, shape, &n);
    assert(err == LSTM_OK);
    (void)err;
    t.data = data;
    t.ndim = ndim;
    memcpy(t.shape, shape, (size_t)ndim * sizeof *shape);
    t.numel = n;
    return t;
}

int lstm_tensor_reshape(lstm_tensor *t, int ndim, const size_t *shape)
{
    size_t n;
    int err = lstm__shape_numel(ndim, shape, &n);
    if (err)
        return err;
    if (n != t->numel)
        return lstm_error(LSTM_EINVAL, "reshape: %zu elements into %zu", t->numel,
                          n);
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    return LSTM_OK;
}

void lstm_tensor_free(lstm_tensor *t)
{
    if (t->owner)
        lstm_free(t->data);
    memset(t, 0, sizeof *t);
}
