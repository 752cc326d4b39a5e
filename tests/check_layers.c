#include "testutil.h"
Suite *layers_suite(void) { return suite_create("layers"); }
