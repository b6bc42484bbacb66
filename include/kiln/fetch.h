/* kiln/fetch.h - ADD <url>: download one http(s) URL into a file, hashing it
 * as it streams, so the build never holds the body in memory.
 *
 * Ownership: the fd stays the caller's; _redact and _filename return
 * malloc'd strings for the caller; a result is a value whose etag is freed
 * by kiln_fetch_result_clear. */
#ifndef KILN_FETCH_H
#define KILN_FETCH_H

#include <curl/curl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include "kiln/digest.h"
#include "kiln/error.h"

struct kiln_fetch_result {
  struct kiln_digest digest; /* sha256 of the body */
  uint64_t size;
  int64_t mtime; /* from Last-Modified; -1 when the server sent none */
  char *etag;    /* the response's ETag, or NULL */
};

/* http:// or https:// (what Dockerfile ADD downloads; other schemes are not URLs to it). */
bool kiln_fetch_is_url (const char *s);

/* The URL without user:password, for messages and logs.  Never NULL. */
char *kiln_fetch_redact (const char *url);

/* The file name ADD gives a download: the last element of the URL's path,
 * or "__unnamed__" when the path has none (BuildKit's rule). */
char *kiln_fetch_filename (const char *url);

/* Streams url's body into fd (empty, writable), following redirects to http
 * and https only, verifying TLS.  Connection failures, 5xx and 429 are tried
 * again (3 attempts); other statuses fail at once; a set *cancel (may be
 * NULL) stops the transfer.  With if_none_match (an ETag from an earlier
 * download) a 304 answer returns 1 and writes nothing.  Errors name the
 * redacted URL and the HTTP status.  Clear *out after a 0. */
int kiln_fetch_url (const char *url, int fd, volatile sig_atomic_t *cancel, const char *if_none_match,
                    struct kiln_fetch_result *out, struct kiln_error **err);
void kiln_fetch_result_clear (struct kiln_fetch_result *r);

/* The transfer policy every kiln HTTP request shares (downloads and the
 * registry client): no signals, 30 s to connect, given up below 1 byte/s
 * for 60 s, our user agent, libcurl's error text into errbuf. */
void kiln_fetch_defaults (CURL *h, char *errbuf);

#endif
