/* chat.c: the platform's chat messages rendered into a prompt with the
 * model's own Jinja chat template (engine/jinja.h), or ChatML.
 *
 * Mapping of the platform's messages to what Hugging Face templates expect
 * (what transformers' apply_chat_template and llama.cpp's server hand them):
 * - content given as parts: the text parts are joined with "\n" into one
 *   string (llama.cpp's server does the same for templates that take a
 *   string; a refusal part counts as text);
 * - content null or absent (an assistant turn that only calls tools) -> "",
 *   so `message.content | trim`, `+ message.content` and `if
 *   message.content` all work;
 * - role "developer" -> "system";
 * - tool_calls[].function.arguments: the JSON string parsed into its value
 *   (templates write `arguments | tojson`), kept as is when it does not
 *   parse;
 * - every other field (name, tool_call_id, ...) is kept.
 * Templates that have no system role (Gemma's raise_exception, or one that
 * drops it silently) get the system text folded into the next user message,
 * "system\n\nuser", as llama.cpp's chat polyfills do; found once per
 * template by rendering a probe conversation. */
#include "engine/chat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/jinja.h"

struct chat_template {
  jinja_template *jt;
  int chatml;
  int add_bos;
  int system_ok; /* the template renders a system message's text */
  char *bos, *eos;
};

/* Built-in ChatML for files without a template. */
static const char CHATML[] =
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message.role + '\\n' + message.content + "
    "'<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}"
    "{%- endif -%}";

#define PROBE_TEXT "hearth-system-probe-7f3a"

static void set_err(char *err, size_t errlen, const char *msg) {
  if (err && errlen)
    snprintf(err, errlen, "%s", msg);
}

/* ---- message mapping ---------------------------------------------------*/

/* Joins the text of content parts with "\n". NULL when a part is not text. */
static json_t *join_parts(json_t *parts, char *err, size_t errlen) {
  size_t cap = 64, len = 0, i;
  char *buf = malloc(cap);
  json_t *part;
  if (!buf)
    return NULL;
  buf[0] = '\0';
  json_array_foreach(parts, i, part) {
    const char *type = json_string_value(json_object_get(part, "type"));
    const char *key = type && !strcmp(type, "refusal") ? "refusal" : "text";
    const char *text = json_string_value(json_object_get(part, key));
    if (!type || (strcmp(type, "text") && strcmp(type, "refusal")) || !text) {
      snprintf(err, errlen, "content part %zu: only text parts can be rendered",
               i);
      free(buf);
      return NULL;
    }
    size_t n = strlen(text), need = len + n + 2;
    if (need > cap) {
      while (cap < need)
        cap *= 2;
      char *nb = realloc(buf, cap);
      if (!nb) {
        free(buf);
        return NULL;
      }
      buf = nb;
    }
    if (i > 0)
      buf[len++] = '\n';
    memcpy(buf + len, text, n);
    len += n;
    buf[len] = '\0';
  }
  json_t *s = json_stringn(buf, len);
  free(buf);
  return s;
}

/* The message's content as a template-ready string value (new reference). */
static json_t *map_content(json_t *content, char *err, size_t errlen) {
  if (!content || json_is_null(content))
    return json_string("");
  if (json_is_string(content))
    return json_incref(content);
  if (json_is_array(content))
    return join_parts(content, err, errlen);
  snprintf(err, errlen, "message content must be a string or an array");
  return NULL;
}

/* tool_calls with function.arguments parsed from JSON (new reference). */
static json_t *map_tool_calls(json_t *calls) {
  json_t *out = json_deep_copy(calls);
  size_t i;
  json_t *call;
  if (!out || !json_is_array(out))
    return out;
  json_array_foreach(out, i, call) {
    json_t *fn = json_object_get(call, "function");
    json_t *args = json_object_get(fn, "arguments");
    if (!json_is_string(args))
      continue;
    json_t *parsed =
        json_loadb(json_string_value(args), json_string_length(args),
                   JSON_DECODE_ANY, NULL);
    if (parsed)
      json_object_set_new(fn, "arguments", parsed);
  }
  return out;
}

/* One platform message -> one template message (new reference). */
static json_t *map_message(json_t *msg, char *err, size_t errlen) {
  if (!json_is_object(msg)) {
    snprintf(err, errlen, "each message must be an object");
    return NULL;
  }
  json_t *out = json_object();
  const char *key;
  json_t *val;
  if (!out)
    return NULL;
  json_object_foreach(msg, key, val) {
    json_t *v;
    if (!strcmp(key, "role")) {
      const char *r = json_string_value(val);
      v = r && !strcmp(r, "developer") ? json_string("system")
                                       : json_incref(val);
    } else if (!strcmp(key, "content")) {
      v = map_content(val, err, errlen);
    } else if (!strcmp(key, "tool_calls")) {
      v = json_is_null(val) ? NULL : map_tool_calls(val);
      if (!v)
        continue;
    } else {
      v = json_incref(val);
    }
    if (!v) {
      json_decref(out);
      return NULL;
    }
    json_object_set_new(out, key, v);
  }
  if (!json_object_get(out, "content"))
    json_object_set_new(out, "content", json_string(""));
  return out;
}

static int is_system(json_t *m) {
  const char *r = json_string_value(json_object_get(m, "role"));
  return r && !strcmp(r, "system");
}

static int is_user(json_t *m) {
  const char *r = json_string_value(json_object_get(m, "role"));
  return r && !strcmp(r, "user");
}

/* Appends text to *acc with a "\n\n" separator (acc a JSON string or NULL). */
static void acc_append(json_t **acc, const char *text) {
  if (!*acc) {
    *acc = json_string(text);
    return;
  }
  const char *a = json_string_value(*acc);
  size_t n = strlen(a) + strlen(text) + 3;
  char *buf = malloc(n);
  if (!buf)
    return;
  snprintf(buf, n, "%s\n\n%s", a, text);
  json_decref(*acc);
  *acc = json_string(buf);
  free(buf);
}

/* For templates without a system role: system messages' text is prepended
 * to the next user message (or sent as a user message when none follows). */
static json_t *fold_system(json_t *msgs) {
  json_t *out = json_array(), *pending = NULL, *m;
  size_t i;
  json_array_foreach(msgs, i, m) {
    if (is_system(m)) {
      acc_append(&pending, json_string_value(json_object_get(m, "content")));
      continue;
    }
    if (pending && is_user(m)) {
      acc_append(&pending, json_string_value(json_object_get(m, "content")));
      json_object_set(m, "content", pending);
      json_decref(pending);
      pending = NULL;
    }
    json_array_append(out, m);
  }
  if (pending) {
    json_t *u = json_pack("{s:s,s:o}", "role", "user", "content", pending);
    json_array_append_new(out, u);
  }
  return out;
}

/* Maps the platform's messages (new reference), or NULL with err. */
static json_t *map_messages(const chat_template *t, json_t *messages, char *err,
                            size_t errlen) {
  if (!json_is_array(messages)) {
    set_err(err, errlen, "messages must be an array");
    return NULL;
  }
  json_t *out = json_array(), *m;
  size_t i;
  json_array_foreach(messages, i, m) {
    json_t *mm = map_message(m, err, errlen);
    if (!mm) {
      json_decref(out);
      return NULL;
    }
    json_array_append_new(out, mm);
  }
  if (t->system_ok)
    return out;
  json_t *folded = fold_system(out);
  json_decref(out);
  return folded;
}

/* ---- rendering ---------------------------------------------------------*/

static int render_mapped(const chat_template *t, json_t *msgs, json_t *tools,
                         const chat_render_opts *o, char **out, size_t *out_len,
                         char *err, size_t errlen) {
  json_t *ctx = json_object();
  const char *key;
  json_t *val;
  if (o && o->extra)
    json_object_foreach(o->extra, key, val) json_object_set(ctx, key, val);
  json_object_set(ctx, "messages", msgs);
  if (tools && json_is_array(tools) && json_array_size(tools) > 0)
    json_object_set(ctx, "tools", tools);
  json_object_set_new(ctx, "add_generation_prompt",
                      json_boolean(!(o && o->no_generation_prompt)));
  json_object_set_new(ctx, "bos_token", json_string(t->bos));
  json_object_set_new(ctx, "eos_token", json_string(t->eos));
  jinja_options jo = {0};
  jo.now = o ? o->now : 0;
  jinja_error je;
  size_t len = 0;
  int rc = jinja_render(t->jt, ctx, &jo, out, &len, &je);
  json_decref(ctx);
  if (rc != 0) {
    if (je.raised)
      set_err(err, errlen, je.msg);
    else if (err && errlen)
      snprintf(err, errlen, "chat template error (line %d): %s", je.line,
               je.msg);
    return -1;
  }
  if (out_len)
    *out_len = len;
  return 0;
}

int chat_render_ex(const chat_template *t, json_t *messages, json_t *tools,
                   const chat_render_opts *o, char **out, size_t *out_len,
                   char *err, size_t errlen) {
  *out = NULL;
  json_t *msgs = map_messages(t, messages, err, errlen);
  if (!msgs)
    return -1;
  int rc = render_mapped(t, msgs, tools, o, out, out_len, err, errlen);
  json_decref(msgs);
  return rc;
}

int chat_render(const chat_template *t, json_t *messages, json_t *tools,
                char **out, size_t *out_len, char *err, size_t errlen) {
  return chat_render_ex(t, messages, tools, NULL, out, out_len, err, errlen);
}

/* ---- construction ------------------------------------------------------*/

/* Whether the template renders a system message's text as given. */
static int probe_system(const chat_template *t) {
  json_t *msgs = json_pack("[{s:s,s:s},{s:s,s:s}]", "role", "system", "content",
                           PROBE_TEXT, "role", "user", "content", "hi");
  char *out = NULL;
  char err[64];
  int ok =
      render_mapped(t, msgs, NULL, NULL, &out, NULL, err, sizeof err) == 0 &&
      strstr(out, PROBE_TEXT) != NULL;
  free(out);
  json_decref(msgs);
  return ok;
}

chat_template *chat_template_from_source(const char *src, const char *bos,
                                         const char *eos, int add_bos,
                                         char *err, size_t errlen) {
  chat_template *t = calloc(1, sizeof *t);
  if (!t)
    return NULL;
  t->chatml = src == NULL;
  if (!src)
    src = CHATML;
  jinja_error je;
  if (jinja_parse(src, strlen(src), &t->jt, &je) != 0) {
    if (err && errlen)
      snprintf(err, errlen, "chat template does not parse (line %d): %s",
               je.line, je.msg);
    free(t);
    return NULL;
  }
  t->bos = strdup(bos ? bos : "");
  t->eos = strdup(eos ? eos : "");
  t->add_bos = add_bos && bos && *bos;
  if (!t->bos || !t->eos) {
    chat_template_free(t);
    set_err(err, errlen, "out of memory");
    return NULL;
  }
  t->system_ok = 1; /* the probe itself must not fold */
  t->system_ok = probe_system(t);
  return t;
}

/* Text of a special token ("" when tok < 0), malloc'd. */
static char *token_text(const eng_model *m, int32_t tok) {
  char small[256];
  if (tok < 0)
    return strdup("");
  int n = eng_token_piece(m, tok, 1, small, (int)sizeof small - 1);
  if (n >= 0) {
    small[n] = '\0';
    return strdup(small);
  }
  char *buf = malloc((size_t)-n + 1);
  if (!buf)
    return NULL;
  n = eng_token_piece(m, tok, 1, buf, -n);
  buf[n > 0 ? n : 0] = '\0';
  return buf;
}

/* 1 when the tokenizer adds BOS to a text (add_special = 1). */
static int model_adds_bos(const eng_model *m) {
  int32_t ids[4];
  int32_t bos = eng_token_bos(m);
  int n = eng_tokenize(m, "", 0, 1, 0, ids, 4);
  return bos >= 0 && n > 0 && ids[0] == bos;
}

chat_template *chat_template_new(const eng_model *m, char *err, size_t errlen) {
  char *bos = token_text(m, eng_token_bos(m));
  char *eos = token_text(m, eng_token_eos(m));
  chat_template *t = NULL;
  if (bos && eos)
    t = chat_template_from_source(eng_model_chat_template(m), bos, eos,
                                  model_adds_bos(m), err, errlen);
  else
    set_err(err, errlen, "out of memory");
  free(bos);
  free(eos);
  return t;
}

void chat_template_free(chat_template *t) {
  if (!t)
    return;
  jinja_free(t->jt);
  free(t->bos);
  free(t->eos);
  free(t);
}

int chat_template_is_chatml(const chat_template *t) {
  return t->chatml;
}

int chat_template_has_system_role(const chat_template *t) {
  return t->system_ok;
}

int chat_prompt_wants_bos(const chat_template *t, const char *prompt) {
  if (!t->add_bos)
    return 0;
  return strncmp(prompt, t->bos, strlen(t->bos)) != 0;
}
