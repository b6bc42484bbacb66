/* cmd_build.c - `kiln build`: flags -> kiln_build_opts and the exporters'
 * options, then kiln_build_run and kiln_exporter_run. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cmd.h"
#include "kiln/build.h"
#include "kiln/cache_export.h"
#include "kiln/cleanup.h"
#include "kiln/exporter.h"
#include "kiln/fs.h"
#include "kiln/log.h"
#include "kiln/plan.h"
#include "kiln/util.h"

static const char usage_text[]
    = "usage: kiln build [OPTIONS] CONTEXT\n\n"
      "  -f, --file FILE               Dockerfile (default CONTEXT/Dockerfile)\n"
      "  -t, --tag REF                 name the image (repeatable)\n"
      "      --build-arg K=V           set a build argument (repeatable; K alone takes it from the environment)\n"
      "      --target NAME             build up to this stage\n"
      "      --jobs N                  stages built at once (default: the number of CPUs; 1: one after another)\n"
      "      --no-cache                do not use the layer cache\n"
      "      --cache-to type=registry,ref=REF[,mode=min|max] | type=local,dest=DIR[,tag=NAME][,mode=..]\n"
      "                                export the layer cache after the build\n"
      "      --cache-from type=registry,ref=REF | type=local,src=DIR[,tag=NAME]\n"
      "                                use an exported cache (repeatable; layers are fetched only when needed)\n"
      "      --cache-ttl DURATION      ignore cache records older than this (e.g. 72h, 14d; 0 = no limit; default 14d)\n"
      "  -o, --output type=tar,dest=FILE  the image's filesystem as a tar (FILE `-` = stdout)\n"
      "                  | type=local,dest=DIR  the image's filesystem as a directory\n"
      "                  | type=oci,dest=DIR[,tar=true]  OCI layout (tar=true: an oci-archive, also type=oci-archive)\n"
      "                  | type=docker,dest=FILE  docker-archive (also type=docker-archive)\n"
      "      --compression gzip|zstd|none\n"
      "      --compression-level N\n"
      "      --force-compression       recompress inherited layers that use another compression\n"
      "      --format oci|docker       manifest and config media types (default oci; docker: v2 schema 2, gzip or\n"
      "                                uncompressed layers only)\n"
      "      --source-date-epoch N     clamp new files' mtimes and set `created` (also SOURCE_DATE_EPOCH)\n"
      "      --iidfile FILE            write the image (manifest) digest to FILE\n"
      "      --metadata-file FILE      write build metadata as JSON to FILE\n"
      "      --progress auto|plain|tty|quiet\n"
      "      --pull[=POLICY]           when to pull FROM images: newer (default: when the tag moved since kiln\n"
      "                                pulled it; a registry that cannot be asked keeps the local copy), always\n"
      "                                (also --pull alone), missing, never\n"
      "      --push                    push every -t name to its registry after the build\n"
      "      --label K=V               set a label on the image (repeatable)\n"
      "      --annotation [manifest[OS/ARCH]:]K=V  annotate the image manifest (repeatable)\n"
      "      --network host|none|default  RUN steps' network when they do not choose (default: host)\n"
      "      --add-host HOST:IP        an /etc/hosts entry for every RUN step (repeatable; also HOST=IP)\n"
      "      --ulimit NAME=SOFT[:HARD] a resource limit of every RUN step (repeatable; e.g. nofile=1024:4096)\n"
      "      --shm-size SIZE           size of every RUN step's /dev/shm (e.g. 256m; default 64m)\n"
      "      --secret id=ID,src=PATH|env=NAME  a secret for RUN --mount=type=secret\n"
      "      --tls-verify[=BOOL]       verify registry TLS (default true; false also allows plain HTTP)\n"
      "      --authfile FILE           registry credentials (default: containers auth.json, docker config)\n"
      "      --cert-dir DIR            registry CA and client certificates\n"
      "      --retry N, --retry-delay D  registry request retries\n";

struct build_cli {
  struct kiln_build_opts o;
  bool push;
  char **tags;
  const char *file, *output, *iidfile, *metadata_file;
  char *dockerfile_path;
  char **cache_to, **cache_from; /* raw --cache-to / --cache-from values */
};

enum {
  OPT_BUILD_ARG = 256,
  OPT_TARGET,
  OPT_NO_CACHE,
  OPT_COMPRESSION,
  OPT_LEVEL,
  OPT_EPOCH,
  OPT_IIDFILE,
  OPT_METADATA,
  OPT_PROGRESS,
  OPT_TLS,
  OPT_PUSH,
  OPT_AUTHFILE,
  OPT_CERTDIR,
  OPT_RETRY,
  OPT_RETRY_DELAY,
  OPT_NO_CACHE_FILTER,
  OPT_SECRET,
  OPT_CACHE_TO,
  OPT_CACHE_FROM,
  OPT_CACHE_TTL,
  OPT_FORCE_COMPRESSION,
  OPT_FORMAT,
  OPT_JOBS,
  OPT_PULL,
  OPT_LABEL,
  OPT_NETWORK,
  OPT_ADD_HOST,
  OPT_ANNOTATION,
  OPT_ULIMIT,
  OPT_SHM_SIZE,
  OPT_UNSUPPORTED
};

static const struct option options[] = {
  { "file", required_argument, NULL, 'f' },
  { "tag", required_argument, NULL, 't' },
  { "build-arg", required_argument, NULL, OPT_BUILD_ARG },
  { "target", required_argument, NULL, OPT_TARGET },
  { "jobs", required_argument, NULL, OPT_JOBS },
  { "no-cache", no_argument, NULL, OPT_NO_CACHE },
  { "output", required_argument, NULL, 'o' },
  { "compression", required_argument, NULL, OPT_COMPRESSION },
  { "compression-level", required_argument, NULL, OPT_LEVEL },
  { "force-compression", no_argument, NULL, OPT_FORCE_COMPRESSION },
  { "format", required_argument, NULL, OPT_FORMAT },
  { "source-date-epoch", required_argument, NULL, OPT_EPOCH },
  { "iidfile", required_argument, NULL, OPT_IIDFILE },
  { "metadata-file", required_argument, NULL, OPT_METADATA },
  { "progress", required_argument, NULL, OPT_PROGRESS },
  { "tls-verify", optional_argument, NULL, OPT_TLS },
  { "push", no_argument, NULL, OPT_PUSH },
  { "pull", optional_argument, NULL, OPT_PULL },
  { "label", required_argument, NULL, OPT_LABEL },
  { "network", required_argument, NULL, OPT_NETWORK },
  { "add-host", required_argument, NULL, OPT_ADD_HOST },
  { "annotation", required_argument, NULL, OPT_ANNOTATION },
  { "ulimit", required_argument, NULL, OPT_ULIMIT },
  { "shm-size", required_argument, NULL, OPT_SHM_SIZE },
  { "authfile", required_argument, NULL, OPT_AUTHFILE },
  { "cert-dir", required_argument, NULL, OPT_CERTDIR },
  { "retry", required_argument, NULL, OPT_RETRY },
  { "retry-delay", required_argument, NULL, OPT_RETRY_DELAY },
  { "no-cache-filter", required_argument, NULL, OPT_NO_CACHE_FILTER },
  { "cache-to", required_argument, NULL, OPT_CACHE_TO },
  { "cache-from", required_argument, NULL, OPT_CACHE_FROM },
  { "cache-ttl", required_argument, NULL, OPT_CACHE_TTL },
  { "platform", required_argument, NULL, OPT_UNSUPPORTED },
  { "secret", required_argument, NULL, OPT_SECRET },
  { "help", no_argument, NULL, 'h' },
  { NULL, 0, NULL, 0 },
};

static unsigned
default_jobs (void)
{
  long n = sysconf (_SC_NPROCESSORS_ONLN);
  return n < 1 ? 1 : n > 256 ? 256 : (unsigned) n;
}

static int
parse_epoch (const char *s, int64_t *out, struct kiln_error **err)
{
  char *end;
  errno = 0;
  long long v = strtoll (s, &end, 10);
  if (!*s || *end || errno || v < 0)
    return kiln_error_set (err, 0, KILN_E_USAGE, "invalid source date epoch `%s` (want seconds since 1970)", s);
  *out = v;
  return 0;
}

/* --jobs N: 0..256, 0 for the default (buildah: 0 means as many as there
 * are stages; here the CPUs bound it, as memory grows with the stages
 * running). */
static int
parse_jobs (const char *s, unsigned *out, struct kiln_error **err)
{
  uint64_t v;
  if (!kiln_parse_uint (s, strlen (s), 10, 256, &v))
    return kiln_error_set (err, 0, KILN_E_USAGE, "invalid --jobs `%s` (want a number from 0 to 256)", s);
  *out = v == 0 ? default_jobs () : (unsigned) v;
  return 0;
}

/* "3600", "90s", "30m", "72h", "14d"; 0 = no limit. */
static int
parse_ttl (const char *s, int64_t *out, struct kiln_error **err)
{
  char *end;
  errno = 0;
  long long v = strtoll (s, &end, 10);
  long long unit = !*end || strcmp (end, "s") == 0 ? 1
                   : strcmp (end, "m") == 0        ? 60
                   : strcmp (end, "h") == 0        ? 3600
                   : strcmp (end, "d") == 0        ? 86400
                                                   : -1;
  if (end == s || errno || v < 0 || unit < 0 || v > INT64_MAX / 86400)
    return kiln_error_set (err, 0, KILN_E_USAGE, "invalid --cache-ttl `%s` (e.g. 72h, 14d, 0 for no limit)", s);
  *out = v * unit;
  return 0;
}

static int
add_build_arg (struct build_cli *c, const char *kv, struct kiln_error **err)
{
  const char *eq = strchr (kv, '=');
  if (eq == kv)
    return kiln_error_set (err, 0, KILN_E_USAGE, "invalid --build-arg `%s` (want KEY=VALUE)", kv);
  /* before the list grows: each insertion is a linear lookup */
  if (c->o.build_args.n > KILN_PLAN_MAX_BUILD_ARGS)
    return kiln_error_set (err, E2BIG, KILN_E_USAGE, "more than %d build arguments (--build-arg) given (the limit)",
                           KILN_PLAN_MAX_BUILD_ARGS);
  if (!eq)
    {
      /* docker: `--build-arg NAME` takes the value from the environment, if set */
      const char *v = getenv (kv);
      if (v)
        kiln_kvlist_set (&c->o.build_args, kv, v);
      return 0;
    }
  kiln_autofree char *k = kiln_xstrndup (kv, (size_t) (eq - kv));
  kiln_kvlist_set (&c->o.build_args, k, eq + 1);
  return 0;
}

/* --secret id=ID,src=PATH | id=ID,env=NAME (type=file|env accepted): only
 * where to find the value is kept; it is read when a RUN mounts it. */
static int
add_secret (struct build_cli *c, const char *spec, struct kiln_error **err)
{
  kiln_autofree char *copy = kiln_xstrdup (spec), *id = NULL, *how = NULL;
  char *save = NULL;
  for (char *kv = strtok_r (copy, ",", &save); kv; kv = strtok_r (NULL, ",", &save))
    {
      if (kiln_str_has_prefix (kv, "id="))
        free (id), id = kiln_xstrdup (kv + 3);
      else if (kiln_str_has_prefix (kv, "src=") || kiln_str_has_prefix (kv, "source="))
        free (how), how = kiln_xasprintf ("src=%s", strchr (kv, '=') + 1);
      else if (kiln_str_has_prefix (kv, "env="))
        free (how), how = kiln_xasprintf ("env=%s", kv + 4);
      else if (!kiln_str_has_prefix (kv, "type="))
        return kiln_error_set (err, 0, KILN_E_USAGE, "--secret: unknown key in `%s` (id, src, env, type)", kv);
    }
  if (!id || !*id)
    return kiln_error_set (err, 0, KILN_E_USAGE, "--secret needs id=ID");
  if (!how)
    how = kiln_xasprintf ("env=%s", id);
  kiln_kvlist_set (&c->o.secrets, id, how);
  return 0;
}

/* --compression-level, --retry: a number in [min, max] */
static int
parse_int_flag (const char *flag, const char *arg, long min, long max, int *out, struct kiln_error **err)
{
  long v;
  if (kiln_cmd_parse_long (arg, min, max, &v) < 0)
    return kiln_error_set (err, 0, KILN_E_USAGE, "invalid %s `%s`", flag, arg);
  *out = (int) v;
  return 0;
}

static int
parse_progress (const char *arg, enum kiln_progress *out, struct kiln_error **err)
{
  if (strcmp (arg, "quiet") == 0)
    *out = KILN_PROGRESS_QUIET;
  else if (strcmp (arg, "plain") == 0 || strcmp (arg, "auto") == 0 || strcmp (arg, "tty") == 0)
    *out = KILN_PROGRESS_PLAIN;
  else
    return kiln_error_set (err, 0, KILN_E_USAGE, "invalid --progress `%s` (auto, plain, tty or quiet)", arg);
  return 0;
}

/* --tls-verify alone means true */
static int
parse_tls_verify (const char *arg, bool *out, struct kiln_error **err)
{
  if (!arg || strcmp (arg, "true") == 0)
    *out = true;
  else if (strcmp (arg, "false") == 0)
    *out = false;
  else
    return kiln_error_set (err, 0, KILN_E_USAGE, "invalid --tls-verify `%s` (true or false)", arg);
  return 0;
}

/* --label K=V (V may be empty) */
static int
add_label (struct build_cli *c, const char *arg, struct kiln_error **err)
{
  const char *eq = strchr (arg, '=');
  if (eq == NULL || eq == arg)
    return kiln_error_set (err, 0, KILN_E_USAGE, "invalid --label `%s` (want KEY=VALUE)", arg);
  kiln_autofree char *key = kiln_xstrndup (arg, (size_t) (eq - arg));
  kiln_kvlist_set (&c->o.labels, key, eq + 1);
  return 0;
}

/* --annotation [TYPE[PLATFORM]:]K=V as buildx spells it.  Only `manifest`
 * (the default) has a place in a one-platform image; the other types
 * annotate an image index, which kiln does not make yet. */
static int
add_annotation (struct build_cli *c, const char *arg, struct kiln_error **err)
{
  const char *eq = strchr (arg, '='), *key = arg, *colon = memchr (arg, ':', eq ? (size_t) (eq - arg) : 0);
  kiln_autofree char *type = NULL, *plat = NULL;
  if (colon)
    {
      type = kiln_xstrndup (arg, (size_t) (colon - arg));
      char *br = strchr (type, '[');
      if (br && type[strlen (type) - 1] == ']')
        {
          plat = kiln_xstrndup (br + 1, strlen (br + 1) - 1);
          *br = '\0';
        }
      static const char *const types[] = { "manifest", "index", "manifest-descriptor", "index-descriptor" };
      bool known = false;
      for (size_t i = 0; i < sizeof types / sizeof *types; i++)
        known = known || strcmp (type, types[i]) == 0;
      if (!known) /* a key with a colon, not a type */
        free (type), free (plat), type = plat = NULL;
      else
        key = colon + 1;
    }
  if (eq == NULL || eq == key || (plat && !*plat))
    return kiln_error_set (err, 0, KILN_E_USAGE, "invalid --annotation `%s` (want [manifest:]KEY=VALUE)", arg);
  if (type && strcmp (type, "manifest") != 0)
    return kiln_error_set (err, 0, KILN_E_UNSUPPORTED,
                           "--annotation `%s`: `%s` annotations need an image index, and kiln builds one platform", arg,
                           type);
  c->o.annotations = kiln_xrealloc (c->o.annotations, (c->o.nannotations + 1) * sizeof *c->o.annotations);
  c->o.annotations[c->o.nannotations++] = (struct kiln_build_annotation){
    .platform = kiln_steal_ptr (&plat),
    .key = kiln_xstrndup (key, (size_t) (eq - key)),
    .value = kiln_xstrdup (eq + 1),
  };
  return 0;
}

/* --ulimit NAME=SOFT[:HARD]; a later one of the same name replaces it */
static int
add_ulimit (struct build_cli *c, const char *arg, struct kiln_error **err)
{
  struct kiln_sandbox_rlimit l;
  if (kiln_sandbox_rlimit_parse (arg, &l, err) < 0)
    return -1;
  size_t i = 0;
  while (i < c->o.nulimits && c->o.ulimits[i].resource != l.resource)
    i++;
  if (i == c->o.nulimits)
    c->o.ulimits = kiln_xrealloc (c->o.ulimits, ++c->o.nulimits * sizeof *c->o.ulimits);
  c->o.ulimits[i] = l;
  return 0;
}

/* --shm-size as Docker reads it: a number with an optional k, m, g or t
 * (powers of 1024; a trailing b or ib is allowed), from 4 KiB to 1 TiB. */
static int
parse_shm_size (const char *arg, unsigned long long *out, struct kiln_error **err)
{
  char *end;
  errno = 0;
  unsigned long long v = strtoull (arg, &end, 10);
  int shift = 0;
  const char *units = "kmgt", *u = *end ? strchr (units, tolower ((unsigned char) *end)) : NULL;
  if (u)
    shift = 10 * (int) (u - units + 1), end++;
  if (*end == 'i' || *end == 'I')
    end++;
  if (*end == 'b' || *end == 'B')
    end++;
  if (end == arg || arg[0] == '-' || *end || errno || v == 0 || v > ((1ull << 40) >> shift) || (v << shift) < 4096)
    return kiln_error_set (err, 0, KILN_E_USAGE, "invalid --shm-size `%s` (e.g. 64m, 1g; from 4k to 1t)", arg);
  *out = v << shift;
  return 0;
}

/* --network: the default of RUN steps that do not choose */
static int
parse_network (const char *arg, bool *none, struct kiln_error **err)
{
  if (strcmp (arg, "none") != 0 && strcmp (arg, "host") != 0 && strcmp (arg, "default") != 0)
    return kiln_error_set (err, 0, KILN_E_USAGE, "invalid --network `%s` (host, none or default)", arg);
  *none = strcmp (arg, "none") == 0;
  return 0;
}

/* --add-host HOST:IP (Docker's form: split at the first colon, so an IPv6
 * address keeps its colons) or HOST=IP; kept as an /etc/hosts line. */
static int
add_host (struct build_cli *c, const char *arg, struct kiln_error **err)
{
  size_t n = strcspn (arg, "=:");
  const char *ip = arg[n] ? arg + n + 1 : NULL;
  unsigned char addr[16];
  if (n == 0 || ip == NULL || arg[strcspn (arg, " \t\r\n#")] != '\0')
    return kiln_error_set (err, 0, KILN_E_USAGE, "invalid --add-host `%s` (want HOST:IP)", arg);
  if (strcmp (ip, "host-gateway") == 0)
    return kiln_error_set (err, 0, KILN_E_UNSUPPORTED, "--add-host `%s`: host-gateway is not supported", arg);
  if (inet_pton (AF_INET, ip, addr) != 1 && inet_pton (AF_INET6, ip, addr) != 1)
    return kiln_error_set (err, 0, KILN_E_USAGE, "invalid --add-host `%s`: `%s` is not an IP address", arg, ip);
  kiln_strv_push_take (&c->o.add_hosts, kiln_xasprintf ("%s\t%.*s", ip, (int) n, arg));
  return 0;
}

/* --no-cache-filter a,b adds both stages */
static void
add_no_cache_filter (struct build_cli *c, const char *arg)
{
  kiln_autofree char *copy = kiln_xstrdup (arg);
  char *save = NULL;
  for (char *t = strtok_r (copy, ",", &save); t; t = strtok_r (NULL, ",", &save))
    kiln_strv_push (&c->o.no_cache_filter, t);
}

static int
parse_option (struct build_cli *c, int opt, const char *arg, struct kiln_error **err)
{
  switch (opt)
    {
    case 'f': c->file = arg; return 0;
    case 't': kiln_strv_push (&c->tags, arg); return 0;
    case OPT_BUILD_ARG: return add_build_arg (c, arg, err);
    case OPT_TARGET: c->o.target = arg; return 0;
    case OPT_NO_CACHE: c->o.no_cache = true; return 0;
    case 'o': c->output = arg; return 0;
    case OPT_COMPRESSION:
      if (kiln_compression_parse (arg, &c->o.layer.compression, err) < 0)
        return -1;
      return 0;
    case OPT_FORCE_COMPRESSION: c->o.force_compression = true; return 0;
    case OPT_FORMAT: return kiln_image_format_parse (arg, &c->o.format, err);
    case OPT_LEVEL: return parse_int_flag ("--compression-level", arg, 0, 22, &c->o.layer.level, err);
    case OPT_EPOCH: c->o.have_epoch = true; return parse_epoch (arg, &c->o.epoch, err);
    case OPT_IIDFILE: c->iidfile = arg; return 0;
    case OPT_METADATA: c->metadata_file = arg; return 0;
    case OPT_PROGRESS: return parse_progress (arg, &c->o.progress, err);
    case OPT_TLS: return parse_tls_verify (arg, &c->o.registry.tls_verify, err);
    case OPT_PUSH: c->push = true; return 0;
    case OPT_PULL: return kiln_image_pull_policy_parse (arg ? arg : "always", &c->o.pull, err);
    case OPT_LABEL: return add_label (c, arg, err);
    case OPT_NETWORK: return parse_network (arg, &c->o.network_none, err);
    case OPT_ADD_HOST: return add_host (c, arg, err);
    case OPT_ANNOTATION: return add_annotation (c, arg, err);
    case OPT_ULIMIT: return add_ulimit (c, arg, err);
    case OPT_SHM_SIZE: return parse_shm_size (arg, &c->o.shm_size, err);
    case OPT_SECRET: return add_secret (c, arg, err);
    case OPT_CACHE_TO: kiln_strv_push (&c->cache_to, arg); return 0;
    case OPT_CACHE_FROM: kiln_strv_push (&c->cache_from, arg); return 0;
    case OPT_CACHE_TTL: return parse_ttl (arg, &c->o.cache_ttl, err);
    case OPT_JOBS: return parse_jobs (arg, &c->o.jobs, err);
    case OPT_AUTHFILE: c->o.registry.auth_file = arg; return 0;
    case OPT_CERTDIR: c->o.registry.cert_dir = arg; return 0;
    case OPT_NO_CACHE_FILTER: add_no_cache_filter (c, arg); return 0;
    case OPT_RETRY: return parse_int_flag ("--retry", arg, 0, 100, &c->o.registry.retries, err);
    case OPT_RETRY_DELAY:
      if (kiln_cmd_parse_delay_ms (arg, &c->o.registry.retry_delay_ms) < 0)
        return kiln_error_set (err, 0, KILN_E_USAGE, "invalid --retry-delay `%s` (e.g. 500ms, 2s)", arg);
      return 0;
    default: return kiln_error_set (err, 0, KILN_E_USAGE, "unknown or invalid option");
    }
}

/* A missing file named `Dockerfile` is read as `dockerfile` when that exists,
 * as BuildKit's dockerui does (moby/moby#10858); its ignore file keeps the
 * name given (Dockerfile.dockerignore). */
static void
lowercase_dockerfile (struct build_cli *c)
{
  if (strcmp (c->o.dockerfile_name, "Dockerfile") != 0 || access (c->dockerfile_path, F_OK) == 0 || errno != ENOENT)
    return;
  size_t dirlen = strlen (c->dockerfile_path) - strlen ("Dockerfile");
  kiln_autofree char *lower = kiln_xasprintf ("%.*sdockerfile", (int) dirlen, c->dockerfile_path);
  if (access (lower, F_OK) == 0)
    {
      free (c->dockerfile_path);
      c->dockerfile_path = kiln_steal_ptr (&lower);
    }
}

static int
parse_args (struct build_cli *c, int argc, char **argv, struct kiln_error **err)
{
  int opt, idx = 0;
  optind = 1;
  opterr = 0;
  while ((opt = getopt_long (argc, argv, ":f:t:o:h", options, &idx)) != -1)
    {
      if (opt == '?' || opt == ':')
        return kiln_error_set (err, 0, KILN_E_USAGE, "%s option `%s`", opt == '?' ? "unknown" : "missing value for",
                               argv[optind - 1]);
      if (opt == OPT_UNSUPPORTED)
        return kiln_error_set (err, 0, KILN_E_UNSUPPORTED, "option `--%s` is not supported yet", options[idx].name);
      if (parse_option (c, opt, optarg, err) < 0)
        return -1;
    }
  if (optind != argc - 1)
    return kiln_error_set (err, 0, KILN_E_USAGE, "expected exactly one CONTEXT directory");
  c->o.context = argv[optind];
  if (!c->o.have_epoch && getenv ("SOURCE_DATE_EPOCH") && *getenv ("SOURCE_DATE_EPOCH"))
    {
      c->o.have_epoch = true;
      if (parse_epoch (getenv ("SOURCE_DATE_EPOCH"), &c->o.epoch, err) < 0)
        return -1;
    }
  c->o.layer.clamp_mtime = c->o.have_epoch;
  c->o.layer.epoch = c->o.epoch;
  c->dockerfile_path = c->file ? kiln_xstrdup (c->file) : kiln_xasprintf ("%s/Dockerfile", c->o.context);
  kiln_autofree char *copy = kiln_xstrdup (c->dockerfile_path);
  c->o.dockerfile_name = kiln_xstrdup (basename (copy));
  lowercase_dockerfile (c);
  c->o.dockerfile = c->dockerfile_path;
  return 0;
}

static struct kiln_exporter_opts
exporters_of (struct build_cli *c)
{
  return (struct kiln_exporter_opts){
    .tags = c->tags,
    .output = c->output,
    .iidfile = c->iidfile,
    .metadata_file = c->metadata_file,
    .push = c->push,
    .cache_to = c->cache_to,
    .cache_ttl = c->o.cache_ttl,
    .registry = &c->o.registry,
    .epoch = c->o.have_epoch ? &c->o.epoch : NULL,
  };
}

static int
run (struct kiln_cli *cli, struct build_cli *c, int argc, char **argv, struct kiln_error **err)
{
  struct kiln_store *st = NULL;
  struct kiln_build_result res = { 0 };
  c->o.progress = KILN_PROGRESS_PLAIN;
  c->o.progress_out = stderr;
  c->o.layer.level = -1;
  c->o.cache_ttl = KILN_CACHE_TTL_DEFAULT;
  c->o.jobs = default_jobs ();
  kiln_registry_opts_init (&c->o.registry);
  c->o.pull = KILN_PULL_NEWER;
  if (parse_args (c, argc, argv, err) < 0)
    return -1;
  if (c->o.format == KILN_IMAGE_DOCKER && c->o.layer.compression == KILN_COMP_ZSTD)
    return kiln_error_set (err, 0, KILN_E_USAGE, "--format docker: Docker manifests cannot hold zstd layers");
  for (size_t i = 0; c->tags && c->tags[i]; i++)
    {
      char *norm = NULL;
      if (kiln_cmd_normalize_ref (c->tags[i], &norm, err) < 0)
        return kiln_error_wrap (err, "-t");
      free (c->tags[i]);
      c->tags[i] = norm;
    }
  struct kiln_exporter_opts ex = exporters_of (c);
  /* as buildx: checked before anything is built */
  if (kiln_exporter_check (&ex, err) < 0 || kiln_cache_check_sources (c->cache_from, err) < 0)
    return -1;
  if (kiln_exporter_to_stdout (&ex) && isatty (STDOUT_FILENO))
    return kiln_error_set (err, 0, KILN_E_USAGE, "--output `%s`: refusing to write an archive to a terminal",
                           c->output);
  static volatile sig_atomic_t interrupted;
  /* without namespaces a build of COPY and metadata steps still works; a
   * RUN step then fails with the reason */
  kiln_autoerror struct kiln_error *iso = NULL;
  if (kiln_cmd_isolate (&iso) < 0)
    kiln_log_warn ("no private namespaces (%s): RUN steps will not work", iso->msg);
  kiln_cmd_on_signals (&interrupted);
  c->o.interrupted = &interrupted;
  if (kiln_cmd_open_context (cli, &c->o.registry, &st, err) < 0)
    return -1;
  /* --cache-from: records (manifests and configs only) into the local cache;
   * layers come from the registry only when a step needs them, so base
   * images are pulled lazily too */
  int ret = kiln_cache_import_sources (st, c->cache_from, c->o.cache_ttl, &c->o.registry, err);
  c->o.registry.lazy = c->o.cache_sources = c->cache_from != NULL;
  if (ret == 0)
    ret = kiln_build_run (st, &c->o, &res, err);
  if (ret == 0)
    ret = kiln_exporter_run (st, &ex, &res, err);
  /* with dest=- stdout carries the archive and nothing else */
  if (ret == 0 && !kiln_exporter_to_stdout (&ex))
    printf ("%s\n", res.manifest.digest.s);
  kiln_build_result_clear (&res);
  kiln_store_free (st);
  return ret;
}

int
kiln_cmd_build (struct kiln_cli *cli, int argc, char **argv)
{
  struct build_cli c = { 0 };
  struct kiln_error *err = NULL;
  if (kiln_cmd_wants_help (argc, argv))
    return fputs (usage_text, stdout), 0;
  int ret = run (cli, &c, argc, argv, &err);
  kiln_strv_free (c.tags);
  kiln_kvlist_clear (&c.o.build_args);
  kiln_kvlist_clear (&c.o.secrets);
  kiln_strv_free (c.o.no_cache_filter);
  kiln_kvlist_clear (&c.o.labels);
  kiln_strv_free (c.o.add_hosts);
  for (size_t i = 0; i < c.o.nannotations; i++)
    free (c.o.annotations[i].platform), free (c.o.annotations[i].key), free (c.o.annotations[i].value);
  free (c.o.annotations);
  free (c.o.ulimits);
  kiln_strv_free (c.cache_to);
  kiln_strv_free (c.cache_from);
  free (c.dockerfile_path);
  free ((char *) c.o.dockerfile_name);
  if (ret < 0)
    {
      bool usage = err && err->kind == KILN_E_USAGE;
      int status = kiln_cmd_fail (&err);
      if (usage)
        fputs ("see `kiln build --help`\n", stderr);
      return status;
    }
  return 0;
}
