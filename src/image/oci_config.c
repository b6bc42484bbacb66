/* oci_config.c - the OCI image config (plus Docker's extensions) <-> JSON. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/cleanup.h"
#include "kiln/oci.h"
#include "kiln/util.h"
#include "oci-internal.h"

#define DOC "image config"

static char *
dup_or_null (const char *s)
{
  return s ? kiln_xstrdup (s) : NULL;
}

/* NULL stays NULL: an unset vector differs from an empty one (Entrypoint []). */
static char **
strv_dup_or_null (char *const *v)
{
  return v ? kiln_strv_dup (v) : NULL;
}

static void
healthcheck_free (struct kiln_healthcheck *h)
{
  if (h == NULL)
    return;
  kiln_strv_free (h->test);
  free (h);
}

void
kiln_image_config_clear (struct kiln_image_config *c)
{
  char **strs[] = { &c->created, &c->author, &c->architecture, &c->os,
                    &c->variant, &c->user,   &c->working_dir,  &c->stop_signal };
  char ***vecs[] = { &c->env,     &c->entrypoint, &c->cmd,     &c->exposed_ports,
                     &c->volumes, &c->shell,      &c->onbuild, &c->diff_ids };
  for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
    free (*strs[i]);
  for (size_t i = 0; i < sizeof vecs / sizeof vecs[0]; i++)
    kiln_strv_free (*vecs[i]);
  kiln_kvlist_clear (&c->labels);
  healthcheck_free (c->healthcheck);
  for (size_t i = 0; i < c->nhistory; i++)
    {
      free (c->history[i].created);
      free (c->history[i].created_by);
      free (c->history[i].comment);
    }
  free (c->history);
  memset (c, 0, sizeof *c);
}

void
kiln_image_config_copy (struct kiln_image_config *dst, const struct kiln_image_config *src)
{
  struct kiln_image_config t = { 0 };
  t.created = dup_or_null (src->created);
  t.author = dup_or_null (src->author);
  t.architecture = dup_or_null (src->architecture);
  t.os = dup_or_null (src->os);
  t.variant = dup_or_null (src->variant);
  t.user = dup_or_null (src->user);
  t.env = strv_dup_or_null (src->env);
  t.entrypoint = strv_dup_or_null (src->entrypoint);
  t.cmd = strv_dup_or_null (src->cmd);
  t.working_dir = dup_or_null (src->working_dir);
  t.exposed_ports = strv_dup_or_null (src->exposed_ports);
  t.volumes = strv_dup_or_null (src->volumes);
  kiln_kvlist_copy (&t.labels, &src->labels);
  t.stop_signal = dup_or_null (src->stop_signal);
  t.shell = strv_dup_or_null (src->shell);
  t.onbuild = strv_dup_or_null (src->onbuild);
  if (src->healthcheck)
    {
      t.healthcheck = kiln_xmalloc (sizeof *t.healthcheck);
      *t.healthcheck = *src->healthcheck;
      t.healthcheck->test = strv_dup_or_null (src->healthcheck->test);
    }
  t.args_escaped = src->args_escaped;
  t.diff_ids = strv_dup_or_null (src->diff_ids);
  for (size_t i = 0; i < src->nhistory; i++)
    {
      const struct kiln_history *h = &src->history[i];
      kiln_image_config_add_history (&t, h->created, h->created_by, h->empty_layer);
      t.history[i].comment = dup_or_null (h->comment);
    }
  /* built aside so that dst == src is safe */
  kiln_image_config_clear (dst);
  *dst = t;
}

const char *
kiln_image_config_getenv (const struct kiln_image_config *c, const char *key)
{
  size_t kl = strlen (key);
  for (size_t i = 0; c->env && c->env[i]; i++)
    if (strncmp (c->env[i], key, kl) == 0 && c->env[i][kl] == '=')
      return c->env[i] + kl + 1;
  return NULL;
}

void
kiln_image_config_setenv (struct kiln_image_config *c, const char *key, const char *value)
{
  size_t kl = strlen (key);
  char *kv = kiln_xasprintf ("%s=%s", key, value);
  for (size_t i = 0; c->env && c->env[i]; i++)
    if (strncmp (c->env[i], key, kl) == 0 && c->env[i][kl] == '=')
      {
        free (c->env[i]);
        c->env[i] = kv; /* keeps the variable's position, as Docker does */
        return;
      }
  kiln_strv_push_take (&c->env, kv);
}

void
kiln_image_config_add_history (struct kiln_image_config *c, const char *created, const char *created_by,
                               bool empty_layer)
{
  c->history = kiln_xrealloc (c->history, (c->nhistory + 1) * sizeof *c->history);
  c->history[c->nhistory] = (struct kiln_history){
    .created = dup_or_null (created),
    .created_by = dup_or_null (created_by),
    .empty_layer = empty_layer,
  };
  c->nhistory++;
}

/* ---- serialise ---- */

static void
set_strv (json_t *o, const char *key, char *const *v)
{
  if (v)
    json_object_set_new (o, key, kiln_oci_strv_to_json (v));
}

static void
set_nonzero (json_t *o, const char *key, int64_t v)
{
  if (v)
    json_object_set_new (o, key, json_integer (v));
}

static json_t *
healthcheck_to_json (const struct kiln_healthcheck *h)
{
  json_t *o = json_object ();
  set_strv (o, "Test", h->test);
  set_nonzero (o, "Interval", h->interval);
  set_nonzero (o, "Timeout", h->timeout);
  set_nonzero (o, "StartPeriod", h->start_period);
  set_nonzero (o, "StartInterval", h->start_interval);
  set_nonzero (o, "Retries", h->retries);
  return o;
}

static json_t *
exec_config_to_json (const struct kiln_image_config *c)
{
  json_t *o = json_object ();
  kiln_oci_set_str (o, "User", c->user);
  set_strv (o, "Env", c->env);
  set_strv (o, "Entrypoint", c->entrypoint);
  set_strv (o, "Cmd", c->cmd);
  kiln_oci_set_str (o, "WorkingDir", c->working_dir);
  if (c->exposed_ports)
    json_object_set_new (o, "ExposedPorts", kiln_oci_keyset_to_json (c->exposed_ports));
  if (c->volumes)
    json_object_set_new (o, "Volumes", kiln_oci_keyset_to_json (c->volumes));
  if (c->labels.n)
    json_object_set_new (o, "Labels", kiln_oci_kvlist_to_json (&c->labels));
  kiln_oci_set_str (o, "StopSignal", c->stop_signal);
  set_strv (o, "Shell", c->shell);
  set_strv (o, "OnBuild", c->onbuild);
  if (c->healthcheck)
    json_object_set_new (o, "Healthcheck", healthcheck_to_json (c->healthcheck));
  if (c->args_escaped)
    json_object_set_new (o, "ArgsEscaped", json_true ());
  return o;
}

static json_t *
history_to_json (const struct kiln_history *h, size_t n)
{
  json_t *a = json_array ();
  for (size_t i = 0; i < n; i++)
    {
      json_t *o = json_object ();
      kiln_oci_set_str (o, "created", h[i].created);
      kiln_oci_set_str (o, "created_by", h[i].created_by);
      kiln_oci_set_str (o, "comment", h[i].comment);
      if (h[i].empty_layer)
        json_object_set_new (o, "empty_layer", json_true ());
      json_array_append_new (a, o);
    }
  return a;
}

int
kiln_image_config_to_json (const struct kiln_image_config *c, char **out, size_t *len, struct kiln_error **err)
{
  kiln_autojson json_t *o = json_object ();
  json_t *rootfs = json_object ();
  kiln_oci_set_str (o, "created", c->created);
  kiln_oci_set_str (o, "author", c->author);
  kiln_oci_set_str (o, "architecture", c->architecture);
  kiln_oci_set_str (o, "os", c->os);
  kiln_oci_set_str (o, "variant", c->variant);
  json_object_set_new (o, "config", exec_config_to_json (c));
  /* rootfs is required by the spec even for an image without layers */
  json_object_set_new (rootfs, "type", json_string ("layers"));
  json_object_set_new (rootfs, "diff_ids", kiln_oci_strv_to_json (c->diff_ids));
  json_object_set_new (o, "rootfs", rootfs);
  if (c->nhistory)
    json_object_set_new (o, "history", history_to_json (c->history, c->nhistory));
  return kiln_oci_dump (o, DOC, out, len, err);
}

/* ---- parse: every type check of the document happens below ---- */

static int
healthcheck_from_json (json_t *hj, struct kiln_image_config *c, struct kiln_error **err)
{
  static const struct kiln_jpath p = { DOC, "config.Healthcheck." };
  struct kiln_healthcheck *h = kiln_xcalloc (1, sizeof *h);
  int64_t retries = 0;
  c->healthcheck = h;
  if (kiln_oci_get_strv (hj, "Test", &p, &h->test, err) < 0
      || kiln_oci_get_int (hj, "Interval", &p, false, &h->interval, err) < 0
      || kiln_oci_get_int (hj, "Timeout", &p, false, &h->timeout, err) < 0
      || kiln_oci_get_int (hj, "StartPeriod", &p, false, &h->start_period, err) < 0
      || kiln_oci_get_int (hj, "StartInterval", &p, false, &h->start_interval, err) < 0
      || kiln_oci_get_int (hj, "Retries", &p, false, &retries, err) < 0)
    return -1;
  if (retries < 0 || retries > 1000000)
    return kiln_oci_type_error (&p, "Retries", "is out of range", err);
  h->retries = (int) retries;
  return 0;
}

static int
exec_config_from_json (json_t *cj, struct kiln_image_config *c, struct kiln_error **err)
{
  static const struct kiln_jpath p = { DOC, "config." };
  json_t *hj = NULL;
  if (kiln_oci_get_str (cj, "User", &p, false, &c->user, err) < 0 || kiln_oci_get_strv (cj, "Env", &p, &c->env, err) < 0
      || kiln_oci_get_strv (cj, "Entrypoint", &p, &c->entrypoint, err) < 0
      || kiln_oci_get_strv (cj, "Cmd", &p, &c->cmd, err) < 0
      || kiln_oci_get_str (cj, "WorkingDir", &p, false, &c->working_dir, err) < 0
      || kiln_oci_get_keyset (cj, "ExposedPorts", &p, &c->exposed_ports, err) < 0
      || kiln_oci_get_keyset (cj, "Volumes", &p, &c->volumes, err) < 0
      || kiln_oci_get_kvlist (cj, "Labels", &p, &c->labels, err) < 0
      || kiln_oci_get_str (cj, "StopSignal", &p, false, &c->stop_signal, err) < 0
      || kiln_oci_get_strv (cj, "Shell", &p, &c->shell, err) < 0
      || kiln_oci_get_strv (cj, "OnBuild", &p, &c->onbuild, err) < 0
      || kiln_oci_get_bool (cj, "ArgsEscaped", &p, &c->args_escaped, err) < 0
      || kiln_oci_get_obj (cj, "Healthcheck", &p, false, &hj, err) < 0)
    return -1;
  return hj ? healthcheck_from_json (hj, c, err) : 0;
}

static int
history_from_json (json_t *a, struct kiln_image_config *c, struct kiln_error **err)
{
  size_t i;
  json_t *e;
  c->history = kiln_xcalloc (json_array_size (a) + 1, sizeof *c->history);
  json_array_foreach (a, i, e)
    {
      char pre[40];
      snprintf (pre, sizeof pre, "history[%zu].", i);
      struct kiln_jpath p = { DOC, pre };
      struct kiln_history *h = &c->history[i];
      c->nhistory = i + 1;
      if (!json_is_object (e))
        return kiln_error_set (err, 0, KILN_E_PARSE, "%s: `history[%zu]` must be an object", DOC, i);
      if (kiln_oci_get_str (e, "created", &p, false, &h->created, err) < 0
          || kiln_oci_get_str (e, "created_by", &p, false, &h->created_by, err) < 0
          || kiln_oci_get_str (e, "comment", &p, false, &h->comment, err) < 0
          || kiln_oci_get_bool (e, "empty_layer", &p, &h->empty_layer, err) < 0)
        return -1;
    }
  return 0;
}

static int
rootfs_from_json (json_t *r, struct kiln_image_config *c, struct kiln_error **err)
{
  static const struct kiln_jpath p = { DOC, "rootfs." };
  kiln_autofree char *type = NULL;
  if (kiln_oci_get_str (r, "type", &p, true, &type, err) < 0
      || kiln_oci_get_strv (r, "diff_ids", &p, &c->diff_ids, err) < 0)
    return -1;
  if (strcmp (type, "layers") != 0)
    return kiln_oci_type_error (&p, "type", "must be \"layers\"", err);
  size_t n = kiln_strv_len (c->diff_ids);
  if (n > KILN_OCI_MAX_LAYERS)
    return kiln_error_set (err, E2BIG, KILN_E_PARSE,
                           "%s: `rootfs.diff_ids` lists %zu layers, more than the limit of %d", DOC, n,
                           KILN_OCI_MAX_LAYERS);
  for (size_t i = 0; c->diff_ids && c->diff_ids[i]; i++)
    if (!kiln_digest_valid (c->diff_ids[i]))
      return kiln_error_set (err, 0, KILN_E_PARSE, "%s: `rootfs.diff_ids[%zu]` is not a sha256 digest", DOC, i);
  return 0;
}

static int
config_fields (json_t *o, struct kiln_image_config *c, struct kiln_error **err)
{
  static const struct kiln_jpath p = { DOC, "" };
  json_t *cj = NULL, *rj = NULL, *hj = NULL;
  if (kiln_oci_get_str (o, "created", &p, false, &c->created, err) < 0
      || kiln_oci_get_str (o, "author", &p, false, &c->author, err) < 0
      || kiln_oci_get_str (o, "architecture", &p, false, &c->architecture, err) < 0
      || kiln_oci_get_str (o, "os", &p, false, &c->os, err) < 0
      || kiln_oci_get_str (o, "variant", &p, false, &c->variant, err) < 0
      || kiln_oci_get_obj (o, "config", &p, false, &cj, err) < 0
      || kiln_oci_get_obj (o, "rootfs", &p, false, &rj, err) < 0
      || kiln_oci_get_array (o, "history", &p, false, &hj, err) < 0)
    return -1;
  if ((cj && exec_config_from_json (cj, c, err) < 0) || (rj && rootfs_from_json (rj, c, err) < 0)
      || (hj && history_from_json (hj, c, err) < 0))
    return -1;
  return 0;
}

int
kiln_image_config_from_json (const char *data, size_t len, struct kiln_image_config *out, struct kiln_error **err)
{
  kiln_autojson json_t *o = NULL;
  struct kiln_image_config c = { 0 };
  if (kiln_oci_load (data, len, DOC, &o, err) < 0)
    return -1;
  if (config_fields (o, &c, err) < 0)
    {
      kiln_image_config_clear (&c);
      return -1;
    }
  *out = c; /* out is an output: whatever it held is not freed */
  return 0;
}
