/* jinja.h: a Jinja2-subset interpreter for the chat templates models ship in
 * GGUF `tokenizer.chat_template`, configured like transformers'
 * apply_chat_template (trim_blocks and lstrip_blocks on, loopcontrols,
 * `tojson` = Python json.dumps(ensure_ascii=False), default Undefined that is
 * lenient for lookups and iteration).
 *
 * The context is a jansson object (messages, tools, add_generation_prompt,
 * bos_token, eos_token and any extra variables); a key that is absent is
 * *undefined* in the template. Globals: raise_exception(msg), strftime_now(
 * fmt), range(), dict(), namespace().
 *
 * Known differences from Jinja2 (none matter to the templates tested):
 * Undefined is lenient (undefined.attr is undefined, not an error); tuples
 * are lists (str() prints [a, b], not (a, b)); integers are 64-bit; case
 * filters/methods (upper, lower, title, capitalize) map ASCII only; no
 * `{% call %}`, `{% filter %}`, `{% include %}`, recursive loops or
 * str.format (each a clear error); `fmt % list` spreads the list.
 *
 * Pure library: knows nothing of HTTP, the server, models or tokenizers.
 * A parsed jinja_template is read-only while rendering: share it between
 * threads. Every template is safe to render: recursion, loops and output are
 * bounded and reported as errors, never crashes or exits. */
#ifndef HEARTH_JINJA_H
#define HEARTH_JINJA_H

#include <jansson.h>
#include <stddef.h>

typedef struct jinja_template jinja_template;

/* Error detail: line (1-based, 0 when unknown) and message. When the template
 * called raise_exception(msg), `raised` is 1 and `msg` is exactly msg. */
typedef struct {
  int line;
  int raised;
  char msg[512];
} jinja_error;

/* Render limits and the clock. Zero fields take the defaults. */
typedef struct {
  size_t max_output; /* bytes; default 16 MiB */
  long max_steps;    /* evaluation steps; default 10 million */
  int max_depth;     /* macro-call / expression nesting; default 64 */
  long long now;     /* strftime_now() time, Unix seconds UTC; 0 = now */
} jinja_options;

/* Parse src (len bytes). Returns 0 and *out, or -1 with *err filled (err
 * may be NULL, here and in jinja_render, when the detail is not wanted). */
int jinja_parse(const char *src, size_t len, jinja_template **out,
                jinja_error *err);

/* Render t with context ctx (a JSON object, borrowed, never modified; NULL =
 * empty). opts may be NULL. On success returns 0 and *out (NUL-terminated,
 * malloc'd, caller frees; *out_len = its length when out_len is non-NULL);
 * on failure returns -1 with *err filled and *out = NULL. */
int jinja_render(const jinja_template *t, json_t *ctx,
                 const jinja_options *opts, char **out, size_t *out_len,
                 jinja_error *err);

void jinja_free(jinja_template *t);

/* Parse + render + free in one call. */
int jinja_render_string(const char *src, json_t *ctx, const jinja_options *opts,
                        char **out, jinja_error *err);

#endif
