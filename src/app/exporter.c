/* exporter.c - a finished build's tags, outputs, files, push and cache
 * export, in the one order kiln/exporter.h gives. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "kiln/build.h"
#include "kiln/buf.h"
#include "kiln/cache_export.h"
#include "kiln/cleanup.h"
#include "kiln/exporter.h"
#include "kiln/fs.h"
#include "kiln/ref.h"
#include "kiln/registry.h"
#include "kiln/store.h"
#include "kiln/util.h"

struct output_spec {
  enum kiln_export_format fmt;
  char *dest;
};

/* BuildKit's exporter names; kiln's older names stay as aliases. */
static const struct {
  const char *name;
  enum kiln_export_format fmt;
} output_types[] = {
  { "tar", KILN_EXPORT_ROOTFS_TAR },        { "local", KILN_EXPORT_ROOTFS_DIR },
  { "oci", KILN_EXPORT_OCI_DIR },           { "oci-archive", KILN_EXPORT_OCI_ARCHIVE },
  { "docker", KILN_EXPORT_DOCKER_ARCHIVE }, { "docker-archive", KILN_EXPORT_DOCKER_ARCHIVE },
};

static int
output_type (const char *spec, const char *type, enum kiln_export_format *fmt, struct kiln_error **err)
{
  for (size_t i = 0; i < sizeof output_types / sizeof *output_types; i++)
    if (strcmp (type, output_types[i].name) == 0)
      {
        *fmt = output_types[i].fmt;
        return 0;
      }
  return kiln_error_set (err, 0, KILN_E_USAGE,
                         "--output `%s`: unknown type `%s` (tar, local, oci, oci-archive, docker, docker-archive)",
                         spec, type);
}

/* "type=tar,dest=FILE" and friends; checked before the build, so a bad
 * spec writes nothing.  type=oci is a layout directory unless tar=true (or
 * dest=-): BuildKit's type=oci defaults to tar=true, kiln's predates that. */
static int
parse_output (const char *spec, struct output_spec *out, struct kiln_error **err)
{
  kiln_autofree char *copy = kiln_xstrdup (spec);
  char *save = NULL, *type = NULL, *tar = NULL;
  for (char *kv = strtok_r (copy, ",", &save); kv; kv = strtok_r (NULL, ",", &save))
    {
      if (kiln_str_has_prefix (kv, "type="))
        type = kv + 5;
      else if (kiln_str_has_prefix (kv, "dest="))
        free (out->dest), out->dest = kiln_xstrdup (kv + 5);
      else if (kiln_str_has_prefix (kv, "tar="))
        tar = kv + 4;
      else
        return kiln_error_set (err, 0, KILN_E_USAGE, "--output `%s`: unknown key `%s` (type, dest, tar)", spec, kv);
    }
  if (!type || !out->dest || !*out->dest)
    return kiln_error_set (err, 0, KILN_E_USAGE, "--output `%s`: want type=TYPE,dest=PATH", spec);
  if (output_type (spec, type, &out->fmt, err) < 0)
    return -1;
  bool to_stdout = strcmp (out->dest, "-") == 0;
  if (tar && out->fmt != KILN_EXPORT_OCI_DIR)
    return kiln_error_set (err, 0, KILN_E_USAGE, "--output `%s`: key `tar` is only for type=oci", spec);
  if (tar && strcmp (tar, "true") != 0 && strcmp (tar, "false") != 0)
    return kiln_error_set (err, 0, KILN_E_USAGE, "--output `%s`: tar=%s (want true or false)", spec, tar);
  if (out->fmt == KILN_EXPORT_OCI_DIR && ((tar && strcmp (tar, "true") == 0) || (!tar && to_stdout)))
    out->fmt = KILN_EXPORT_OCI_ARCHIVE;
  if (to_stdout && (out->fmt == KILN_EXPORT_OCI_DIR || out->fmt == KILN_EXPORT_ROOTFS_DIR))
    return kiln_error_set (err, 0, KILN_E_USAGE, "--output `%s`: a directory cannot go to stdout", spec);
  return 0;
}

static bool
output_to_stdout (const char *spec)
{
  struct output_spec out = { 0 };
  kiln_autoerror struct kiln_error *ignored = NULL;
  bool r = parse_output (spec, &out, &ignored) == 0 && strcmp (out.dest, "-") == 0;
  free (out.dest);
  return r;
}

static int
write_text_file (const char *path, const char *text, struct kiln_error **err)
{
  kiln_autoclose int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "create `%s`", path);
  if (kiln_fs_write_all (fd, text, strlen (text), err) < 0)
    return kiln_error_wrap (err, "write `%s`", path);
  return 0;
}

static int
write_metadata (const char *path, const struct kiln_build_result *r, char **tags, struct kiln_error **err)
{
  kiln_autojson json_t *steps = json_array ();
  for (size_t i = 0; i < r->nsteps; i++)
    json_array_append_new (steps, json_pack ("{s:s, s:s, s:b, s:s?, s:s?, s:f}", "step", r->steps[i].text, "key",
                                             r->steps[i].key.s, "cached", r->steps[i].cached, "miss", r->steps[i].miss,
                                             "layer", r->steps[i].has_layer ? r->steps[i].layer.s : NULL, "seconds",
                                             r->steps[i].seconds));
  kiln_autojson json_t *bases = json_array ();
  for (size_t i = 0; i < r->nbases; i++)
    json_array_append_new (bases, json_pack ("{s:s, s:s}", "ref", r->bases[i].ref, "digest", r->bases[i].digest.s));
  struct kiln_buf names = KILN_BUF_INIT;
  for (size_t i = 0; tags && tags[i]; i++)
    kiln_buf_addf (&names, "%s%s", i ? "," : "", tags[i]);
  kiln_autojson json_t *doc = json_pack ("{s:s, s:s, s:s, s:O, s:O}", "containerimage.digest", r->manifest.digest.s,
                                         "containerimage.config.digest", r->config.s, "image.name", names.buf,
                                         "kiln.steps", steps, "kiln.bases", bases);
  kiln_buf_release (&names);
  kiln_autofree char *text = json_dumps (doc, JSON_INDENT (2) | JSON_SORT_KEYS);
  return write_text_file (path, text, err);
}

static int
export_caches (struct kiln_store *st, const struct kiln_exporter_opts *o, const struct kiln_build_result *r,
               struct kiln_error **err)
{
  if (!o->cache_to)
    return 0;
  struct kiln_digest *keys = kiln_xcalloc (r->nsteps + 1, sizeof *keys);
  int ret = 0;
  for (size_t i = 0; i < r->nsteps; i++)
    keys[i] = r->steps[i].key;
  for (size_t i = 0; ret == 0 && o->cache_to[i]; i++)
    {
      struct kiln_cache_spec spec;
      ret = kiln_cache_spec_parse (o->cache_to[i], true, &spec, err);
      if (ret == 0)
        ret = kiln_cache_export (st, keys, r->nsteps, &r->manifest, &spec, o->cache_ttl, o->registry, err);
      kiln_cache_spec_clear (&spec);
    }
  free (keys);
  return ret;
}

int
kiln_exporter_check (const struct kiln_exporter_opts *o, struct kiln_error **err)
{
  for (char **v = o->cache_to; v && *v; v++)
    {
      struct kiln_cache_spec spec;
      if (kiln_cache_spec_parse (*v, true, &spec, err) < 0)
        return kiln_error_wrap (err, "--cache-to");
      kiln_cache_spec_clear (&spec);
    }
  if (o->push && !o->tags)
    return kiln_error_set (err, 0, KILN_E_USAGE, "--push needs at least one -t name");
  if (!o->output)
    return 0;
  struct output_spec out = { 0 };
  int r = parse_output (o->output, &out, err);
  free (out.dest);
  return r;
}

bool
kiln_exporter_to_stdout (const struct kiln_exporter_opts *o)
{
  return o->output && output_to_stdout (o->output);
}

static int
write_output (struct kiln_store *st, const struct kiln_exporter_opts *o, const struct kiln_build_result *r,
              struct kiln_error **err)
{
  struct output_spec out = { 0 };
  int ret = parse_output (o->output, &out, err);
  kiln_autofree char *tag = o->tags ? kiln_ref_tag_or_latest (o->tags[0]) : kiln_xstrdup ("latest");
  if (ret == 0 && (out.fmt == KILN_EXPORT_ROOTFS_TAR || out.fmt == KILN_EXPORT_ROOTFS_DIR))
    ret = kiln_store_export_rootfs (st, &r->manifest, out.fmt, out.dest, o->epoch, err);
  else if (ret == 0)
    ret = kiln_store_export (st, &r->manifest, o->tags ? o->tags[0] : NULL, tag, out.fmt, out.dest, err);
  free (out.dest);
  return ret < 0 ? kiln_error_wrap (err, "write output `%s`", o->output) : 0;
}

int
kiln_exporter_run (struct kiln_store *st, const struct kiln_exporter_opts *o, const struct kiln_build_result *r,
                   struct kiln_error **err)
{
  for (size_t i = 0; o->tags && o->tags[i]; i++)
    if (kiln_store_tag (st, o->tags[i], &r->manifest, err) < 0)
      return kiln_error_wrap (err, "tag `%s`", o->tags[i]);
  if (o->output && write_output (st, o, r, err) < 0)
    return -1;
  if (o->iidfile && write_text_file (o->iidfile, r->manifest.digest.s, err) < 0)
    return -1;
  if (o->metadata_file && write_metadata (o->metadata_file, r, o->tags, err) < 0)
    return -1;
  for (size_t i = 0; o->push && o->tags && o->tags[i]; i++)
    {
      struct kiln_digest pushed;
      if (kiln_registry_push (st, o->tags[i], NULL, o->registry, &pushed, err) < 0)
        return kiln_error_wrap (err, "push `%s`", o->tags[i]);
    }
  /* after the push: the cache's layers are then found there (HEAD/mount) */
  return export_caches (st, o, r, err);
}
