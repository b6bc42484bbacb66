/* tests/helpers.h - shared fixtures for the Criterion unit tests. */
#ifndef KILN_TEST_HELPERS_H
#define KILN_TEST_HELPERS_H

#include <stdbool.h>

/* A fresh temporary directory; kiln_test_tmpdir() is its path, removed by
 * kiln_test_tmp_fini.  Use as .init = kiln_test_tmp_init, .fini = kiln_test_tmp_fini. */
void kiln_test_tmp_init (void);
void kiln_test_tmp_fini (void);
const char *kiln_test_tmpdir (void);

struct kiln_store;
/* Opens (creating it) the store at kiln_test_tmpdir()/store; fails the test
 * when it cannot.  Free with kiln_store_free. */
struct kiln_store *kiln_test_store_open (void);

/* Path of a file under testdata/ (static buffer). */
const char *kiln_test_data (const char *rel);

enum { KILN_NEED_ROOT = 1, KILN_NEED_USERNS = 2 };
/* Skips the test with the reason printed, or fails it when KILN_TEST_STRICT=1
 * or CI=true. */
void kiln_test_require (int needs);
/* Skips the test with why printed; under CI=true a skip fails instead. */
void kiln_test_skip (const char *why);

#endif
