/* Unit tests for engine/chat.h: ChatML, the mapping of the platform's
 * messages (developer role, content parts, null content, tool_calls with
 * JSON-string arguments, name, tool_call_id), BOS handling, errors, the real
 * templates in ../shared/testdata/templates (goldens.json cases plus
 * OpenAI-shaped conversations with hand-derived expected prompts for Llama
 * 3.1/3.2 and Qwen2.5; skipped with a reason when ../shared is absent), and
 * models made with the fixture writer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/chat.h"
#include "engine/fixture.h"
#include "t.h"

#define CHECK_ERR(buf, want)                                                   \
  CHECKF(strcmp((buf), (want)) == 0, "\"%s\" != \"%s\"", (buf), (want))

/* strftime_now time of the goldens: 2025-01-05 09:07:03 UTC. */
static long long golden_now(void) {
  struct tm tm = {.tm_year = 125,
                  .tm_mon = 0,
                  .tm_mday = 5,
                  .tm_hour = 9,
                  .tm_min = 7,
                  .tm_sec = 3};
  return (long long)timegm(&tm);
}

static json_t *J(const char *text) {
  json_error_t e;
  json_t *v = json_loads(text, JSON_DECODE_ANY, &e);
  if (!v)
    fprintf(stderr, "  bad test JSON: %s: %s\n", e.text, text);
  return v;
}

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
    free(buf);
    buf = NULL;
  }
  if (buf)
    buf[n] = '\0';
  fclose(f);
  return buf;
}

/* Renders messages JSON text with t; returns the prompt or NULL (err set). */
static char *render(const chat_template *t, const char *msgs, const char *tools,
                    char *err, size_t errlen) {
  json_t *m = J(msgs), *tl = tools ? J(tools) : NULL;
  char *out = NULL;
  size_t len = 0;
  chat_render_opts o = {0};
  o.now = golden_now();
  int rc = chat_render_ex(t, m, tl, &o, &out, &len, err, errlen);
  json_decref(m);
  json_decref(tl);
  if (rc == 0 && strlen(out) != len) {
    free(out);
    snprintf(err, errlen, "length mismatch");
    return NULL;
  }
  return rc == 0 ? out : NULL;
}

static void test_chatml_exact(void) {
  char err[256] = "";
  chat_template *t =
      chat_template_from_source(NULL, NULL, NULL, 0, err, sizeof err);
  CHECK(t != NULL);
  if (!t)
    return;
  CHECK(chat_template_is_chatml(t));
  CHECK(chat_template_has_system_role(t));
  char *p = render(t,
                   "[{\"role\":\"system\",\"content\":\"Be brief.\"},"
                   "{\"role\":\"user\",\"content\":\"Hi\"},"
                   "{\"role\":\"assistant\",\"content\":\"Hello!\"},"
                   "{\"role\":\"user\",\"content\":\"Bye\"}]",
                   NULL, err, sizeof err);
  CHECK_STR(p, "<|im_start|>system\nBe brief.<|im_end|>\n"
               "<|im_start|>user\nHi<|im_end|>\n"
               "<|im_start|>assistant\nHello!<|im_end|>\n"
               "<|im_start|>user\nBye<|im_end|>\n"
               "<|im_start|>assistant\n");
  free(p);
  /* developer -> system; text parts joined with "\n"; null content -> "" */
  p = render(t,
             "[{\"role\":\"developer\",\"content\":[{\"type\":\"text\","
             "\"text\":\"A\"},{\"type\":\"text\",\"text\":\"B\"}]},"
             "{\"role\":\"user\",\"content\":[{\"type\":\"text\","
             "\"text\":\"only\"}]},"
             "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":"
             "[{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":"
             "\"f\",\"arguments\":\"{}\"}}]},"
             "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"42\"}]",
             NULL, err, sizeof err);
  CHECKF(p != NULL, "%s", err);
  CHECK_STR(p, "<|im_start|>system\nA\nB<|im_end|>\n"
               "<|im_start|>user\nonly<|im_end|>\n"
               "<|im_start|>assistant\n<|im_end|>\n"
               "<|im_start|>tool\n42<|im_end|>\n"
               "<|im_start|>assistant\n");
  free(p);
  /* message text is data, never template code */
  p = render(t, "[{\"role\":\"user\",\"content\":\"{{ 7 * 6 }}{% if %}\"}]",
             NULL, err, sizeof err);
  CHECK_STR(p, "<|im_start|>user\n{{ 7 * 6 }}{% if %}<|im_end|>\n"
               "<|im_start|>assistant\n");
  free(p);
  /* without the generation prompt */
  json_t *m = J("[{\"role\":\"user\",\"content\":\"x\"}]");
  chat_render_opts o = {.no_generation_prompt = 1};
  size_t len = 0;
  CHECK_INT(chat_render_ex(t, m, NULL, &o, &p, &len, err, sizeof err), 0);
  CHECK_STR(p, "<|im_start|>user\nx<|im_end|>\n");
  CHECK_INT(len, strlen("<|im_start|>user\nx<|im_end|>\n"));
  free(p);
  json_decref(m);
  chat_template_free(t);
}

/* A template that prints what it is given, to see the mapping. */
static const char DUMP[] =
    "{% for m in messages %}[{{ m.role }}|{{ m.content }}|"
    "{{ m.name if m.name is defined else '-' }}|"
    "{{ m.tool_call_id if m.tool_call_id is defined else '-' }}|"
    "{% if m.tool_calls is defined %}{% for c in m.tool_calls %}"
    "{{ c.id }}:{{ c.function.name }}:{{ c.function.arguments | tojson }}"
    ":{{ 'obj' if c.function.arguments is mapping else 'str' }};"
    "{% endfor %}{% else %}-{% endif %}]\n{% endfor %}"
    "tools={{ tools | length if tools is defined else 'undefined' }} "
    "gen={{ add_generation_prompt }} bos={{ bos_token }} eos={{ eos_token }}"
    "{{ ' think=' ~ enable_thinking if enable_thinking is defined }}";

static void test_mapping(void) {
  char err[256] = "";
  chat_template *t =
      chat_template_from_source(DUMP, "<s>", "</s>", 1, err, sizeof err);
  CHECKF(t != NULL, "%s", err);
  if (!t)
    return;
  CHECK(!chat_template_is_chatml(t));
  const char *msgs =
      "[{\"role\":\"developer\",\"content\":\"rules\"},"
      "{\"role\":\"user\",\"name\":\"ann\",\"content\":[{\"type\":\"text\","
      "\"text\":\"l1\"},{\"type\":\"text\",\"text\":\"l2\"}]},"
      "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":["
      "{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"w\","
      "\"arguments\":\"{\\\"city\\\": \\\"Oslo\\\", \\\"n\\\": 2}\"}},"
      "{\"id\":\"c2\",\"type\":\"function\",\"function\":{\"name\":\"v\","
      "\"arguments\":\"not json\"}}]},"
      "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"cold\"},"
      "{\"role\":\"assistant\",\"content\":[{\"type\":\"refusal\","
      "\"refusal\":\"no\"}],\"tool_calls\":null}]";
  char *p = render(t, msgs, NULL, err, sizeof err);
  CHECKF(p != NULL, "%s", err);
  CHECK_STR(p, "[system|rules|-|-|-]\n"
               "[user|l1\nl2|ann|-|-]\n"
               "[assistant||-|-|c1:w:{\"city\": \"Oslo\", \"n\": 2}:obj;"
               "c2:v:\"not json\":str;]\n"
               "[tool|cold|-|c1|-]\n"
               "[assistant|no|-|-|-]\n"
               "tools=undefined gen=True bos=<s> eos=</s>");
  free(p);
  /* tools: passed when non-empty, undefined when empty */
  p = render(t, "[{\"role\":\"user\",\"content\":\"x\"}]",
             "[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]", err,
             sizeof err);
  CHECK(p && strstr(p, "tools=1 ") != NULL);
  free(p);
  p = render(t, "[{\"role\":\"user\",\"content\":\"x\"}]", "[]", err,
             sizeof err);
  CHECK(p && strstr(p, "tools=undefined ") != NULL);
  free(p);
  /* extra variables; the caller's messages are not modified */
  json_t *m = J("[{\"role\":\"developer\",\"content\":[{\"type\":\"text\","
                "\"text\":\"a\"}]}]");
  json_t *copy = json_deep_copy(m);
  chat_render_opts o = {0};
  o.extra = J("{\"enable_thinking\": false, \"messages\": []}");
  CHECK_INT(chat_render_ex(t, m, NULL, &o, &p, NULL, err, sizeof err), 0);
  CHECK(p && strstr(p, "[system|a|") != NULL);
  CHECK(p && strstr(p, " think=False") != NULL);
  CHECK(json_equal(m, copy));
  free(p);
  json_decref(o.extra);
  json_decref(m);
  json_decref(copy);
  chat_template_free(t);
}

static void test_bos(void) {
  char err[128];
  chat_template *t = chat_template_from_source("{{ bos_token }}x", "<s>", "", 1,
                                               err, sizeof err);
  CHECK(t != NULL);
  if (!t)
    return;
  CHECK_INT(chat_prompt_wants_bos(t, "<s>x"), 0);
  CHECK_INT(chat_prompt_wants_bos(t, "x"), 1);
  chat_template_free(t);
  t = chat_template_from_source(NULL, "<s>", "", 0, err, sizeof err);
  CHECK_INT(chat_prompt_wants_bos(t, "x"), 0); /* tokenizer adds none */
  chat_template_free(t);
  t = chat_template_from_source(NULL, "", "", 1, err, sizeof err);
  CHECK_INT(chat_prompt_wants_bos(t, "x"), 0); /* no BOS token */
  chat_template_free(t);
}

static void test_errors(void) {
  char err[256] = "";
  /* does not parse */
  chat_template *t =
      chat_template_from_source("{% for %}", NULL, NULL, 0, err, sizeof err);
  CHECK(t == NULL);
  CHECK(strstr(err, "does not parse") != NULL);
  /* raise_exception comes back verbatim */
  t = chat_template_from_source(
      "{% if messages[0].role != 'user' %}{{ raise_exception('Conversation "
      "roles must alternate user/assistant/user/assistant/...') }}{% endif "
      "%}ok",
      NULL, NULL, 0, err, sizeof err);
  CHECK(t != NULL);
  if (!t)
    return;
  char *p = render(t, "[{\"role\":\"assistant\",\"content\":\"x\"}]", NULL, err,
                   sizeof err);
  CHECK(p == NULL);
  CHECK_ERR(err, "Conversation roles must alternate "
                 "user/assistant/user/assistant/...");
  chat_template_free(t);
  /* a render error names the line */
  t = chat_template_from_source("a\n{{ messages | nosuchfilter }}", NULL, NULL,
                                0, err, sizeof err);
  CHECK(t != NULL);
  if (t) {
    p = render(t, "[]", NULL, err, sizeof err);
    CHECK(p == NULL);
    CHECK(strstr(err, "line 2") != NULL);
    chat_template_free(t);
  }
  t = chat_template_from_source(NULL, NULL, NULL, 0, err, sizeof err);
  /* bad shapes are errors, not crashes */
  p = render(t, "[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]",
             NULL, err, sizeof err);
  CHECK(p == NULL);
  CHECK(strstr(err, "only text parts") != NULL);
  p = render(t, "{\"role\":\"user\"}", NULL, err, sizeof err);
  CHECK(p == NULL);
  CHECK_ERR(err, "messages must be an array");
  p = render(t, "[1]", NULL, err, sizeof err);
  CHECK(p == NULL);
  p = render(t, "[{\"role\":\"user\",\"content\":7}]", NULL, err, sizeof err);
  CHECK(p == NULL);
  chat_template_free(t);
}

/* ---- real templates ----------------------------------------------------*/

static chat_template *load_tpl(const char *file, const char *bos,
                               const char *eos, int add_bos) {
  const char *sh = t_shared_dir();
  char path[512], err[512] = "";
  if (!sh)
    return NULL;
  snprintf(path, sizeof path, "%s/testdata/templates/%s", sh, file);
  char *src = slurp(path);
  if (!src)
    return NULL;
  chat_template *t =
      chat_template_from_source(src, bos, eos, add_bos, err, sizeof err);
  if (!t)
    fprintf(stderr, "  %s: %s\n", file, err);
  free(src);
  return t;
}

/* Golden case through chat_render_ex (its messages are template-shaped
 * already, which the mapping must leave as they are). */
static int golden_case(const chat_template *t, json_t *cs, const char *file) {
  json_t *in = json_object_get(cs, "input");
  const char *id = json_string_value(json_object_get(cs, "id"));
  const char *want = json_string_value(json_object_get(cs, "expected"));
  const char *want_err =
      json_string_value(json_object_get(cs, "expected_error"));
  json_t *py =
      json_object_get(json_object_get(cs, "crosscheck"), "python_jinja2");
  if (json_is_object(py) && json_object_get(py, "output")) {
    want = json_string_value(json_object_get(py, "output"));
    want_err = NULL;
  }
  json_t *msgs = json_object_get(in, "messages");
  int has_system = 0;
  for (size_t i = 0; i < json_array_size(msgs); i++) {
    const char *r =
        json_string_value(json_object_get(json_array_get(msgs, i), "role"));
    has_system |= r && (!strcmp(r, "system") || !strcmp(r, "developer"));
  }
  json_t *extra = json_deep_copy(in);
  json_object_del(extra, "messages");
  json_object_del(extra, "tools");
  chat_render_opts o = {0};
  o.extra = extra;
  o.now = golden_now();
  json_t *gp = json_object_get(in, "add_generation_prompt");
  o.no_generation_prompt = gp && !json_is_true(gp);
  char *out = NULL, err[512] = "";
  size_t len = 0;
  int rc = chat_render_ex(t, msgs, json_object_get(in, "tools"), &o, &out, &len,
                          err, sizeof err);
  int ok;
  if (!chat_template_has_system_role(t) && has_system && !want_err) {
    ok = 0; /* folding changes what such a golden expects; see below */
  } else if (!chat_template_has_system_role(t) && has_system) {
    /* the golden expects the template's refusal; we fold instead */
    const char *sys =
        json_string_value(json_object_get(json_array_get(msgs, 0), "content"));
    ok = (rc == 0 && sys && strstr(out, sys) != NULL) ||
         (rc != 0 && strcmp(want_err, "System role not supported") != 0);
  } else if (want_err) {
    ok = rc != 0 && strcmp(err, want_err) == 0;
  } else {
    ok = rc == 0 && want && strlen(want) == len && memcmp(out, want, len) == 0;
  }
  if (!ok)
    fprintf(stderr, "  golden %s/%s: %s\n", file, id,
            rc ? err : "output differs");
  free(out);
  json_decref(extra);
  return ok;
}

static void test_goldens(void) {
  const char *sh = t_shared_dir();
  if (!sh)
    SKIP("../shared not found (set HEARTH_SHARED)");
  char path[512];
  snprintf(path, sizeof path, "%s/testdata/templates/goldens.json", sh);
  json_error_t je;
  json_t *g = json_load_file(path, 0, &je);
  if (!g)
    SKIP("%s: %s", path, je.text);
  json_t *tpls = json_object_get(g, "templates");
  int pass = 0, total = 0;
  for (size_t i = 0; i < json_array_size(tpls); i++) {
    json_t *tp = json_array_get(tpls, i);
    const char *file = json_string_value(json_object_get(tp, "file"));
    chat_template *t =
        load_tpl(file, json_string_value(json_object_get(tp, "bos_token")),
                 json_string_value(json_object_get(tp, "eos_token")), 0);
    CHECKF(t != NULL, "%s", file);
    json_t *cases = json_object_get(tp, "cases");
    for (size_t c = 0; c < json_array_size(cases); c++) {
      total++;
      if (t)
        pass += golden_case(t, json_array_get(cases, c), file);
    }
    chat_template_free(t);
  }
  fprintf(stderr, "  goldens through chat_render: %d/%d\n", pass, total);
  CHECK(total > 0);
  CHECK_INT(pass, total);
  json_decref(g);
}

static const char *TOOLS =
    "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
    "\"description\":\"Weather now\",\"parameters\":{\"type\":\"object\","
    "\"properties\":{\"city\":{\"type\":\"string\"}},"
    "\"required\":[\"city\"]}}}]";

/* The round trip as an OpenAI SDK sends it: arguments as a JSON string,
 * content null beside tool_calls. */
static const char *ROUNDTRIP =
    "[{\"role\":\"system\",\"content\":\"You are terse.\"},"
    "{\"role\":\"user\",\"content\":\"Weather in Oslo?\"},"
    "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":"
    "\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
    "\"arguments\":\"{\\\"city\\\":\\\"Oslo\\\"}\"}}]},"
    "{\"role\":\"tool\",\"tool_call_id\":\"call_1\",\"content\":\"-3 C\"}]";

static void test_llama3_exact(void) {
  if (!t_shared_dir())
    SKIP("../shared not found (set HEARTH_SHARED)");
  char err[512] = "";
  chat_template *t = load_tpl("meta-llama-Llama-3.1-8B-Instruct.jinja",
                              "<|begin_of_text|>", "<|eot_id|>", 1);
  CHECK(t != NULL);
  if (!t)
    return;
  CHECK(chat_template_has_system_role(t));
  char *p = render(t,
                   "[{\"role\":\"developer\",\"content\":\"  Be brief. \"},"
                   "{\"role\":\"user\",\"content\":\"Hi\"},"
                   "{\"role\":\"assistant\",\"content\":\"Hello!\"},"
                   "{\"role\":\"user\",\"content\":[{\"type\":\"text\","
                   "\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"}]}]",
                   NULL, err, sizeof err);
  CHECKF(p != NULL, "%s", err);
  CHECK_STR(p, "<|begin_of_text|><|start_header_id|>system<|end_header_id|>"
               "\n\nCutting Knowledge Date: December 2023\nToday Date: 26 "
               "Jul 2024\n\nBe brief.<|eot_id|>"
               "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
               "<|start_header_id|>assistant<|end_header_id|>\n\nHello!"
               "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\na\nb"
               "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
  CHECK_INT(chat_prompt_wants_bos(t, p), 0);
  free(p);
  /* tool call round trip: tools go into the first user message; a string
   * tool result is "iterable" to Jinja2, so this template writes it with
   * tojson, quotes included, as transformers does */
  p = render(t, ROUNDTRIP, TOOLS, err, sizeof err);
  CHECKF(p != NULL, "%s", err);
  CHECK_STR(p,
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
            "Environment: ipython\nCutting Knowledge Date: December 2023\n"
            "Today Date: 26 Jul 2024\n\nYou are terse.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nGiven the following "
            "functions, please respond with a JSON for a function call with "
            "its proper arguments that best answers the given prompt.\n\n"
            "Respond in the format {\"name\": function name, \"parameters\": "
            "dictionary of argument name and its value}.Do not use "
            "variables.\n\n{\n    \"type\": \"function\",\n    \"function\": "
            "{\n        \"name\": \"get_weather\",\n        \"description\": "
            "\"Weather now\",\n        \"parameters\": {\n            "
            "\"type\": \"object\",\n            \"properties\": {\n          "
            "      \"city\": {\n                    \"type\": \"string\"\n   "
            "             }\n            },\n            \"required\": [\n   "
            "             \"city\"\n            ]\n        }\n    }\n}\n\n"
            "Weather in Oslo?<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n"
            "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}"
            "<|eot_id|><|start_header_id|>ipython<|end_header_id|>\n\n\"-3 C\""
            "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
  free(p);
  /* two parallel calls: the template's own refusal, verbatim */
  p = render(t,
             "[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"assistant\","
             "\"content\":null,\"tool_calls\":[{\"id\":\"a\",\"type\":"
             "\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}},"
             "{\"id\":\"b\",\"type\":\"function\",\"function\":{\"name\":"
             "\"f\",\"arguments\":\"{}\"}}]}]",
             NULL, err, sizeof err);
  CHECK(p == NULL);
  CHECK_ERR(err, "This model only supports single tool-calls at once!");
  chat_template_free(t);
  /* Llama 3.2 dates the system header with strftime_now */
  t = load_tpl("meta-llama-Llama-3.2-3B-Instruct.jinja", "<|begin_of_text|>",
               "<|eot_id|>", 1);
  CHECK(t != NULL);
  if (!t)
    return;
  p = render(t, "[{\"role\":\"user\",\"content\":\"Hi\"}]", NULL, err,
             sizeof err);
  CHECK_STR(p, "<|begin_of_text|><|start_header_id|>system<|end_header_id|>"
               "\n\nCutting Knowledge Date: December 2023\nToday Date: 05 "
               "Jan 2025\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>"
               "\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>"
               "\n\n");
  free(p);
  chat_template_free(t);
}

static void test_qwen25_exact(void) {
  if (!t_shared_dir())
    SKIP("../shared not found (set HEARTH_SHARED)");
  char err[512] = "";
  chat_template *t =
      load_tpl("Qwen-Qwen2.5-7B-Instruct.jinja", "", "<|im_end|>", 0);
  CHECK(t != NULL);
  if (!t)
    return;
  char *p = render(t, "[{\"role\":\"user\",\"content\":\"Hi\"}]", NULL, err,
                   sizeof err);
  CHECK_STR(p, "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. "
               "You are a helpful assistant.<|im_end|>\n"
               "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  CHECK_INT(chat_prompt_wants_bos(t, p), 0);
  free(p);
  p = render(t, ROUNDTRIP, TOOLS, err, sizeof err);
  CHECKF(p != NULL, "%s", err);
  CHECK_STR(p,
            "<|im_start|>system\nYou are terse.\n\n# Tools\n\nYou may call "
            "one or more functions to assist with the user query.\n\nYou are "
            "provided with function signatures within <tools></tools> XML "
            "tags:\n<tools>\n{\"type\": \"function\", \"function\": {\"name\": "
            "\"get_weather\", \"description\": \"Weather now\", "
            "\"parameters\": {\"type\": \"object\", \"properties\": "
            "{\"city\": {\"type\": \"string\"}}, \"required\": [\"city\"]}}}"
            "\n</tools>\n\nFor each function call, return a json object with "
            "function name and arguments within <tool_call></tool_call> XML "
            "tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
            "<args-json-object>}\n</tool_call><|im_end|>\n"
            "<|im_start|>user\nWeather in Oslo?<|im_end|>\n"
            "<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", "
            "\"arguments\": {\"city\": \"Oslo\"}}\n</tool_call><|im_end|>\n"
            "<|im_start|>user\n<tool_response>\n-3 C\n</tool_response>"
            "<|im_end|>\n<|im_start|>assistant\n");
  free(p);
  chat_template_free(t);
}

/* Gemma 2 has no system role: the system text joins the first user turn. */
static void test_gemma_folds_system(void) {
  if (!t_shared_dir())
    SKIP("../shared not found (set HEARTH_SHARED)");
  char err[512] = "";
  chat_template *t =
      load_tpl("google-gemma-2-2b-it.jinja", "<bos>", "<eos>", 1);
  CHECK(t != NULL);
  if (!t)
    return;
  CHECK_INT(chat_template_has_system_role(t), 0);
  char *p = render(t,
                   "[{\"role\":\"system\",\"content\":\"Be brief.\"},"
                   "{\"role\":\"developer\",\"content\":\"Use French.\"},"
                   "{\"role\":\"user\",\"content\":\"Hi\"},"
                   "{\"role\":\"assistant\",\"content\":\"Salut\"},"
                   "{\"role\":\"user\",\"content\":\"Bye\"}]",
                   NULL, err, sizeof err);
  CHECKF(p != NULL, "%s", err);
  CHECK_STR(p, "<bos><start_of_turn>user\nBe brief.\n\nUse French.\n\nHi"
               "<end_of_turn>\n<start_of_turn>model\nSalut<end_of_turn>\n"
               "<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n");
  free(p);
  /* a system message alone becomes a user turn */
  p = render(t, "[{\"role\":\"system\",\"content\":\"S\"}]", NULL, err,
             sizeof err);
  CHECK_STR(p, "<bos><start_of_turn>user\nS<end_of_turn>\n"
               "<start_of_turn>model\n");
  free(p);
  chat_template_free(t);
}

/* Whether the template's source mentions add_generation_prompt. */
static int chat_template_reads_gen_prompt(const char *file) {
  char path[512];
  snprintf(path, sizeof path, "%s/testdata/templates/%s", t_shared_dir(), file);
  char *src = slurp(path);
  int r = src && strstr(src, "add_generation_prompt") != NULL;
  free(src);
  return r;
}

/* Every template: an OpenAI-shaped conversation renders, holds each
 * message's text in order, and ends with its generation prompt (the render
 * without it is a strict prefix). */
static void test_all_templates_conversation(void) {
  const char *sh = t_shared_dir();
  if (!sh)
    SKIP("../shared not found (set HEARTH_SHARED)");
  char path[512];
  snprintf(path, sizeof path, "%s/testdata/templates/goldens.json", sh);
  json_t *g = json_load_file(path, 0, NULL);
  if (!g)
    SKIP("%s unreadable", path);
  const char *texts[] = {"SYS-alpha", "USR-bravo", "AST-charlie", "USR-delta"};
  json_t *msgs =
      json_pack("[{s:s,s:s},{s:s,s:[{s:s,s:s}]},{s:s,s:s},{s:s,s:s}]", "role",
                "developer", "content", texts[0], "role", "user", "content",
                "type", "text", "text", texts[1], "role", "assistant",
                "content", texts[2], "role", "user", "content", texts[3]);
  json_t *tpls = json_object_get(g, "templates");
  int n = 0;
  for (size_t i = 0; i < json_array_size(tpls); i++) {
    json_t *tp = json_array_get(tpls, i);
    const char *file = json_string_value(json_object_get(tp, "file"));
    chat_template *t =
        load_tpl(file, json_string_value(json_object_get(tp, "bos_token")),
                 json_string_value(json_object_get(tp, "eos_token")), 0);
    CHECKF(t != NULL, "%s", file);
    if (!t)
      continue;
    char *with = NULL, *without = NULL, err[512] = "";
    chat_render_opts o = {0};
    o.now = golden_now();
    int rc = chat_render_ex(t, msgs, NULL, &o, &with, NULL, err, sizeof err);
    CHECKF(rc == 0, "%s: %s", file, err);
    o.no_generation_prompt = 1;
    int rc2 =
        chat_render_ex(t, msgs, NULL, &o, &without, NULL, err, sizeof err);
    CHECKF(rc2 == 0, "%s: %s", file, err);
    if (rc == 0 && rc2 == 0) {
      /* the system text may be moved (Mistral puts it in the last user
       * turn): present; the turns' texts: in order */
      CHECKF(strstr(with, texts[0]) != NULL, "%s: system text missing", file);
      const char *at = with;
      for (int k = 1; k < 4; k++) {
        const char *f = strstr(at, texts[k]);
        CHECKF(f != NULL, "%s: %s missing or out of order", file, texts[k]);
        if (f)
          at = f + strlen(texts[k]);
      }
      /* something (the turn's end, the assistant's header) follows the
       * last user text, and templates that read add_generation_prompt
       * render differently without it */
      CHECKF(*at != '\0', "%s: nothing after the last message", file);
      if (chat_template_reads_gen_prompt(file))
        CHECKF(strcmp(with, without) != 0, "%s: generation prompt ignored",
               file);
      n++;
    }
    free(with);
    free(without);
    chat_template_free(t);
  }
  fprintf(stderr, "  %d templates render an OpenAI conversation\n", n);
  CHECK(n >= 16);
  json_decref(msgs);
  json_decref(g);
}

/* Shapes a caller should have refused still give a prompt or an error
 * message with every real template: never a crash (run under valgrind). */
static void test_odd_shapes(void) {
  const char *sh = t_shared_dir();
  if (!sh)
    SKIP("../shared not found (set HEARTH_SHARED)");
  char path[512];
  snprintf(path, sizeof path, "%s/testdata/templates/goldens.json", sh);
  json_t *g = json_load_file(path, 0, NULL);
  if (!g)
    SKIP("%s unreadable", path);
  static const char *odd[] = {
      "[]",
      "[{\"role\":\"user\"}]",
      "[{\"content\":\"x\"}]",
      "[{\"role\":5,\"content\":\"x\"}]",
      "[{\"role\":\"user\",\"content\":[]}]",
      "[{\"role\":\"assistant\",\"content\":\"x\",\"tool_calls\":{}}]",
      "[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\","
      "\"tool_calls\":[{\"function\":\"x\"},1,{\"function\":{\"arguments\":"
      "7}}]}]",
      "[{\"role\":\"tool\",\"content\":\"x\"}]",
      "[{\"role\":\"system\",\"content\":\"a\"},{\"role\":\"system\","
      "\"content\":\"b\"}]",
      "[{\"role\":\"user\",\"content\":\"{{ x }}{% if %}\"}]",
  };
  json_t *tpls = json_object_get(g, "templates");
  int ok = 0, failed = 0;
  for (size_t i = 0; i <= json_array_size(tpls); i++) {
    json_t *tp = json_array_get(tpls, i); /* NULL at the end: ChatML */
    const char *file = json_string_value(json_object_get(tp, "file"));
    chat_template *t =
        file ? load_tpl(file, "<s>", "</s>", 1)
             : chat_template_from_source(NULL, NULL, NULL, 0, NULL, 0);
    CHECK(t != NULL);
    if (!t)
      continue;
    for (size_t k = 0; k < sizeof odd / sizeof *odd; k++) {
      char err[512] = "";
      char *p = render(t, odd[k], "{\"not\":\"a list\"}", err, sizeof err);
      if (p)
        ok++;
      else {
        failed++;
        CHECKF(err[0] != 0, "%s: case %zu failed without a message",
               file ? file : "ChatML", k);
      }
      free(p);
    }
    chat_template_free(t);
  }
  fprintf(stderr, "  odd shapes: %d rendered, %d refused with a message\n", ok,
          failed);
  json_decref(g);
}

/* ---- fixture models ----------------------------------------------------*/

/* A fixture model of the preset, with tpl as its tokenizer.chat_template
 * (NULL: the preset's default). */
static eng_model *load_fixture_tpl(const char *preset, const char *tpl) {
  fixture_params p;
  fixture_default_params(&p);
  char path[] = "/tmp/hearth_test_chat_XXXXXX", err[256] = "";
  int fd = mkstemp(path);
  if (fd < 0)
    return NULL;
  close(fd);
  eng_model *m = NULL;
  int bad = fixture_preset(preset, &p);
  p.chat_template = tpl;
  if (bad || fixture_write(&p, path, err, sizeof err))
    fprintf(stderr, "  fixture %s: %s\n", preset, err);
  else if (eng_model_load(path, NULL, &m, err, sizeof err))
    fprintf(stderr, "  load %s: %s\n", path, err);
  remove(path);
  return m;
}

static eng_model *load_fixture(const char *preset) {
  return load_fixture_tpl(preset, NULL);
}

static void test_fixture_models(void) {
  char err[256] = "";
  /* SPM llama fixture: no template of its own, BOS added by the tokenizer */
  eng_model *m = load_fixture("tiny-llama");
  CHECK(m != NULL);
  if (m) {
    CHECK(eng_model_chat_template(m) == NULL);
    chat_template *t = chat_template_new(m, err, sizeof err);
    CHECKF(t != NULL, "%s", err);
    if (t) {
      CHECK(chat_template_is_chatml(t));
      char *p = render(t, "[{\"role\":\"user\",\"content\":\"Hi\"}]", NULL, err,
                       sizeof err);
      CHECK_STR(p, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
      CHECK_INT(chat_prompt_wants_bos(t, p), 1);
      CHECK_INT(chat_prompt_wants_bos(t, "<s>x"), 0);
      free(p);
      chat_template_free(t);
    }
    eng_model_free(m);
  }
  /* Qwen2-style BPE fixture: ships a ChatML template, adds no BOS */
  m = load_fixture("tiny-qwen2");
  CHECK(m != NULL);
  if (m) {
    CHECK(eng_model_chat_template(m) != NULL);
    chat_template *t = chat_template_new(m, err, sizeof err);
    CHECKF(t != NULL, "%s", err);
    if (t) {
      CHECK(!chat_template_is_chatml(t));
      char *p = render(t,
                       "[{\"role\":\"developer\",\"content\":\"S\"},"
                       "{\"role\":\"user\",\"content\":\"Hi\"}]",
                       NULL, err, sizeof err);
      CHECK_STR(p, "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi"
                   "<|im_end|>\n<|im_start|>assistant\n");
      CHECK_INT(chat_prompt_wants_bos(t, p), 0);
      /* the prompt's control tokens are single tokens */
      int32_t ids[64];
      int n = eng_tokenize(m, p, strlen(p), 0, 1, ids, 64);
      CHECK(n > 0 && n < 30);
      free(p);
      chat_template_free(t);
    }
    eng_model_free(m);
  }
}

/* A Llama 3 vocabulary carrying the real Llama 3.1 template: bos_token is
 * the vocabulary's <|begin_of_text|>, which the template writes itself. */
static void test_fixture_llama3_template(void) {
  const char *sh = t_shared_dir();
  if (!sh)
    SKIP("../shared not found (set HEARTH_SHARED)");
  char path[512], err[512] = "";
  snprintf(path, sizeof path,
           "%s/testdata/templates/meta-llama-Llama-3.1-8B-Instruct.jinja", sh);
  char *src = slurp(path);
  if (!src)
    SKIP("%s unreadable", path);
  eng_model *m = load_fixture_tpl("tiny-llama-bpe", src);
  CHECK(m != NULL);
  if (m) {
    CHECK_STR(eng_model_chat_template(m), src);
    chat_template *t = chat_template_new(m, err, sizeof err);
    CHECKF(t != NULL, "%s", err);
    if (t) {
      CHECK(!chat_template_is_chatml(t));
      char *p = render(t, "[{\"role\":\"user\",\"content\":\"Hi\"}]", NULL, err,
                       sizeof err);
      CHECKF(p != NULL, "%s", err);
      CHECK(p && !strncmp(p, "<|begin_of_text|><|start_header_id|>", 36));
      CHECK_INT(chat_prompt_wants_bos(t, p), 0);
      int32_t ids[256];
      int n = p ? eng_tokenize(m, p, strlen(p), 0, 1, ids, 256) : 0;
      CHECK(n > 0);
      CHECK(n > 0 && ids[0] == eng_token_bos(m));
      int eog = 0;
      for (int i = 0; i < n; i++)
        eog += eng_token_is_eog(m, ids[i]);
      CHECK_INT(eog, 2); /* the system and user turns' <|eot_id|> */
      free(p);
      chat_template_free(t);
    }
    eng_model_free(m);
  }
  free(src);
  /* a file whose template does not parse: an error, not a crash */
  m = load_fixture_tpl("tiny-qwen2", "{% if messages %}unterminated");
  CHECK(m != NULL);
  if (m) {
    chat_template *t = chat_template_new(m, err, sizeof err);
    CHECK(t == NULL);
    CHECKF(strstr(err, "does not parse") != NULL, "%s", err);
    eng_model_free(m);
  }
  /* "": no template at all, so ChatML */
  m = load_fixture_tpl("tiny-qwen2", "");
  CHECK(m != NULL);
  if (m) {
    CHECK(eng_model_chat_template(m) == NULL);
    chat_template *t = chat_template_new(m, err, sizeof err);
    CHECK(t && chat_template_is_chatml(t));
    chat_template_free(t);
    eng_model_free(m);
  }
}

int main(void) {
  RUN(test_chatml_exact);
  RUN(test_mapping);
  RUN(test_bos);
  RUN(test_errors);
  RUN(test_goldens);
  RUN(test_llama3_exact);
  RUN(test_qwen25_exact);
  RUN(test_gemma_folds_system);
  RUN(test_all_templates_conversation);
  RUN(test_odd_shapes);
  RUN(test_fixture_models);
  RUN(test_fixture_llama3_template);
  T_MAIN_END();
}
