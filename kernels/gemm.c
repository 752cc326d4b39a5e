/*
 * gemm.c - single-thread matrix products: a plain-loop reference and the
 * OpenBLAS call. Threading is the caller's: lib/ splits the rows of C.
 */
#include <assert.h>
#include <cblas.h>

#include "kernels.h"

/* The reference: one dot product per element of C, in K order. */
void lstm__gemm_ref(int ta, int tb, size_t M, size_t N, size_t K, float alpha,
                    const float *A, size_t lda, const float *B, size_t ldb,
                    float beta, float *C, size_t ldc)
{
    for (size_t i = 0; i < M; i++) {
        for (size_t j = 0; j < N; j++) {
            float acc = 0.0f;
            for (size_t k = 0; k < K; k++) {
                float a = ta ? A[k * lda + i] : A[i * lda + k];
                float b = tb ? B[j * ldb + k] : B[k * ldb + j];
                acc += a * b;
            }
            float c = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
            C[i * ldc + j] = c + alpha * acc;
        }
    }
}

void lstm__gemm_blas(int ta, int tb, size_t M, size_t N, size_t K,
                     float alpha, const float *A, size_t lda, const float *B,
                     size_t ldb, float beta, float *C, size_t ldc)
{
    if (M == 0 || N == 0)
        return;
    if (K == 0) {  /* BLAS may skip the beta scaling when K is 0 */
        lstm__gemm_ref(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    assert(M <= 0x7fffffff && N <= 0x7fffffff && K <= 0x7fffffff);
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
                tb ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K, alpha,
                A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

void lstm__blas_single_thread(void)
{
    openblas_set_num_threads(1);
}
