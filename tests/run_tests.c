/*
 * run_tests.c - runs every Check suite; exits non-zero on any failure.
 * LSTM_TEST_QUICK=1 trims the largest shapes (used under valgrind).
 */
#include <stdlib.h>

#include "testutil.h"

int main(void)
{
    SRunner *sr = srunner_create(tensor_suite());
    srunner_add_suite(sr, kernels_suite());
    srunner_add_suite(sr, layers_suite());
    srunner_add_suite(sr, gradcheck_suite());
    srunner_add_suite(sr, golden_suite());
    srunner_add_suite(sr, alloc_suite());
    srunner_add_suite(sr, data_suite());
    srunner_add_suite(sr, train_suite());
    srunner_add_suite(sr, cli_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
