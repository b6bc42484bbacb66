/* kiln/auth.h - registry credentials: containers auth.json and Docker
 * config.json, credential helpers (docker-credential-NAME).
 *
 * Lookup order: $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json,
 * $DOCKER_CONFIG/config.json, ~/.docker/config.json; in each file
 * credHelpers[host], then auths[host] (`auth` = base64 "user:pass",
 * `identitytoken`), then credsStore.  The first file that yields credentials
 * wins.  Helpers are exec'd with an argv (never a shell) and get the server
 * URL on stdin, so no secret is ever on a command line. */
#ifndef KILN_AUTH_H
#define KILN_AUTH_H

#include <stdbool.h>
#include "kiln/error.h"

struct kiln_auth_cred {
  char *username; /* NULL when anonymous */
  char *password;
  char *identity_token; /* OAuth2 refresh token (helper user "<token>", `identitytoken`) */
};
/* Zeroes the secrets, frees them; reusable. */
void kiln_auth_cred_clear (struct kiln_auth_cred *c);

/* Looks up host ("localhost:5000", "docker.io") in the default files, or
 * only in auth_file when non-NULL.  Returns 1 with *out filled, 0 when there
 * are no credentials (anonymous), < 0 on a broken file or helper. */
int kiln_auth_lookup (const char *auth_file, const char *host, struct kiln_auth_cred *out, struct kiln_error **err);

/* Looks up host in one file (missing file = 0). */
int kiln_auth_lookup_file (const char *path, const char *host, struct kiln_auth_cred *out, struct kiln_error **err);

/* The file login/logout write: $REGISTRY_AUTH_FILE, else
 * $XDG_RUNTIME_DIR/containers/auth.json, else ~/.docker/config.json.  Caller frees. */
char *kiln_auth_default_file (void);

/* Adds/replaces auths[host].auth in path (other content kept), mode 0600,
 * written atomically; missing parent directories are created 0700. */
int kiln_auth_store (const char *path, const char *host, const char *user, const char *password,
                     struct kiln_error **err);
/* Removes auths[host]; KILN_E_NOTFOUND when there was none. */
int kiln_auth_remove (const char *path, const char *host, struct kiln_error **err);

/* The auths key that matches host: "https://index.docker.io/v1/" ->
 * "docker.io", "http://h:5000/v2/" -> "h:5000".  Caller frees. */
char *kiln_auth_normalize_key (const char *key);

#endif
