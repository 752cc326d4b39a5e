#include "testutil.h"
Suite *kernels_suite(void) { return suite_create("kernels"); }
