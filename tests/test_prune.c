/* test_prune.c - prune on stores at their edges (the rest is t_prune*.sh). */
#include <criterion/criterion.h>
#include <sys/stat.h>
#include "helpers.h"
#include "kiln/cleanup.h"
#include "kiln/prune.h"
#include "kiln/store.h"
#include "kiln/util.h"

/* A cache/records directory with no record in it (a store whose records
 * were all pruned, or a build killed before its first record): load_records
 * once handed qsort a NULL array, undefined behaviour that UBSan aborts on
 * (make test-sanitize runs this suite under it). */
Test (prune, empty_records_directory_prunes_nothing, .init = kiln_test_tmp_init, .fini = kiln_test_tmp_fini)
{
  struct kiln_store *st = kiln_test_store_open ();
  struct kiln_error *err = NULL;
  struct kiln_prune_opts o = { .all = true, .keep_storage = -1 };
  struct kiln_prune_report r = { 0 };
  kiln_autofree char *dir = kiln_xasprintf ("%s/store/cache/records", kiln_test_tmpdir ());
  kiln_autofree char *cache = kiln_xasprintf ("%s/store/cache", kiln_test_tmpdir ());
  mkdir (cache, 0755);
  cr_assert_eq (mkdir (dir, 0755), 0);
  cr_assert_eq (kiln_prune (st, &o, &r, &err), 0, "%s", err ? err->msg : "");
  cr_assert_eq (r.records, 0);
  cr_assert_eq (r.blobs, 0);
  kiln_store_free (st);
}
