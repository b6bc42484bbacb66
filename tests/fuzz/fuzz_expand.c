/* fuzz_expand - Dockerfile word expansion alone (src/frontend/expand.c).
 *
 * Input: one mode byte, then "VALUE\0WORD": VALUE is what $V (and ${V})
 * holds, WORD the text expanded.  The mode picks the entry point (word,
 * words, heredoc, raw split) and the escape character ('\\' or '`').
 * Other names: E and EMPTY are set empty, SP holds blanks, N is unset.
 * Oracles: the sanitizers and libFuzzer's time and memory limits (an
 * expansion must stay linear-ish in its input). */
#include "fuzz.h"

#include "kiln/expand.h"

struct vars {
  const char *v;
};

static const char *
lookup (void *ud, const char *name)
{
  const struct vars *vs = ud;
  if (strcmp (name, "V") == 0)
    return vs->v;
  if (strcmp (name, "E") == 0 || strcmp (name, "EMPTY") == 0)
    return "";
  if (strcmp (name, "SP") == 0)
    return " a  b ";
  if (strcmp (name, "DEF") == 0)
    return "0123456789";
  return NULL;
}

static void
free_strv (char **v)
{
  for (size_t i = 0; v && v[i]; i++)
    free (v[i]);
  free (v);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (size < 1)
    return 0;
  unsigned mode = data[0];
  char *parts[2];
  size_t lens[2];
  fuzz_split (data + 1, size - 1, parts, lens, 2);
  struct vars vs = { parts[0] };
  char escape = (mode & 4) ? '`' : '\\';
  const char *word = parts[1];
  struct kiln_error *err = NULL;
  char *out = NULL;
  char **words = NULL;
  switch (mode & 3)
    {
    case 0:
      if (kiln_expand_word (word, escape, lookup, &vs, &out, &err) == 0 && out == NULL)
        fuzz_fail ("kiln_expand_word: success without a result");
      break;
    case 1:
      if (kiln_expand_words (word, escape, lookup, &vs, &words, &err) == 0 && words == NULL)
        fuzz_fail ("kiln_expand_words: success without a vector");
      break;
    case 2: kiln_expand_heredoc (word, lookup, &vs, &out, &err); break;
    default:
      if (kiln_split_words_raw (word, escape, &words) == 0)
        for (size_t i = 0; words && words[i]; i++)
          {
            char *w = NULL;
            kiln_expand_word (words[i], escape, lookup, &vs, &w, &err);
            kiln_error_free (&err);
            free (w);
          }
      break;
    }
  free (out);
  free_strv (words);
  kiln_error_free (&err);
  fuzz_free_parts (parts, 2);
  return 0;
}
