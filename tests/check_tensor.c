#include "testutil.h"
Suite *tensor_suite(void) { return suite_create("tensor"); }
