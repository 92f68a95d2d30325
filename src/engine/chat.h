/* chat.h: renders a conversation into a model's prompt with the chat
 * template its GGUF ships (tokenizer.chat_template, through engine/jinja.h),
 * or ChatML when the file has none.
 *
 * Input is the platform's messages array as JSON (jansson), already
 * validated by the caller (roles, content types). The renderer maps it to
 * what Hugging Face templates expect: content parts of type text (and
 * refusal) are joined with "\n" into one string, as llama.cpp's server does;
 * null or absent content (an assistant turn with only tool_calls) becomes
 * ""; role "developer" is rendered as "system"; an assistant's tool_calls
 * keep their shape with function.arguments parsed from its JSON string into
 * an object when it parses; every other field (name, tool_call_id) is kept.
 * tools (the platform's [{type:"function", function:{...}}]) are passed
 * as is, and only when non-empty (absent = undefined in the template).
 * bos_token / eos_token are the text of the model's BOS/EOS tokens ("" when
 * it has none). A template without a system role (Gemma raises on one)
 * gets system/developer text folded into the next user message as
 * "system\n\nuser", like llama.cpp's polyfill.
 *
 * Parse once per model (chat_template_new when the model is loaded) and
 * share the result: rendering is read-only and thread-safe.
 * Knows nothing about HTTP. */
#ifndef HEARTH_ENGINE_CHAT_H
#define HEARTH_ENGINE_CHAT_H

#include <jansson.h>
#include <stddef.h>

#include "engine/engine.h"

typedef struct chat_template chat_template;

/* The model's template (or ChatML). NULL with err set when the model's
 * template does not parse. Thread-safe; free with chat_template_free. */
chat_template *chat_template_new(const eng_model *m, char *err, size_t errlen);
/* The same from a template's source (NULL = ChatML) and the BOS/EOS texts
 * (NULL = ""); add_bos: the tokenizer adds BOS to what it tokenizes. For
 * tests and tools that have a template but no model. */
chat_template *chat_template_from_source(const char *src, const char *bos,
                                         const char *eos, int add_bos,
                                         char *err, size_t errlen);
void chat_template_free(chat_template *t);
/* 1 when the model has no template of its own and ChatML is used. */
int chat_template_is_chatml(const chat_template *t);
/* 1 when the template renders system messages (0: they are folded into the
 * next user message). */
int chat_template_has_system_role(const chat_template *t);

/* Renders messages (+ tools, may be NULL) with add_generation_prompt = 1.
 * Returns 0 and *out (malloc'd, NUL-terminated; caller frees), or -1 with
 * err: the template's raise_exception message as is (e.g. "Conversation
 * roles must alternate user/assistant/user/assistant/..."), or a render
 * error. The prompt's special tokens are meant to be tokenized with
 * parse_special = 1 and add_special = 0 (a template writes its own BOS;
 * chat_prompt_wants_bos says when it does not). */
int chat_render(const chat_template *t, json_t *messages, json_t *tools,
                char **out, size_t *out_len, char *err, size_t errlen);

/* Options of chat_render_ex; all-zero = chat_render's behaviour. */
typedef struct {
  int no_generation_prompt; /* 1: add_generation_prompt = false */
  json_t *extra; /* more template variables (e.g. enable_thinking), borrowed;
                    NULL = none; messages/tools/bos/eos override them */
  long long now; /* strftime_now() time, Unix seconds UTC; 0 = now */
} chat_render_opts;
/* chat_render with options (o may be NULL). */
int chat_render_ex(const chat_template *t, json_t *messages, json_t *tools,
                   const chat_render_opts *o, char **out, size_t *out_len,
                   char *err, size_t errlen);
/* 1 when the tokenized prompt must be prefixed with BOS (the model adds BOS
 * and the rendered text does not start with the BOS token's text). */
int chat_prompt_wants_bos(const chat_template *t, const char *prompt);

#endif
