// Loads the OpenAPI description (openapi.sdk.yml from the shared folder) and
// validates response bodies against the schema of the operation that produced
// them, with Ajv (JSON Schema 2020-12, as OpenAPI 3.1 uses).
// Knows nothing about hearth itself, the runner or the tests: it maps
// (method, path, status, body) to a list of schema violations.
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

// Finds the shared folder: $HEARTH_SHARED, else ../shared beside the repo.
export function sharedDir(repoRoot) {
  const env = process.env.HEARTH_SHARED;
  if (env) return fs.existsSync(env) ? env : null;
  const d = path.resolve(repoRoot, '..', 'shared');
  return fs.existsSync(d) ? d : null;
}

// Places where the spec contradicts itself; each is patched with a note
// printed once, so a correct server is not failed for the spec's own slip.
const ERRATA = [
  {
    note:
      "OpenAIFile.purpose enum lacks 'evals' although createFile accepts it " +
      '(FilePurpose): allowed in responses',
    apply(doc) {
      const p = doc.components?.schemas?.OpenAIFile?.properties?.purpose;
      if (p && Array.isArray(p.enum) && !p.enum.includes('evals')) {
        p.enum.push('evals');
        return true;
      }
      return false;
    },
  },
  {
    note:
      'ListFilesResponse requires first_id/last_id as strings, but an empty ' +
      'list has no first or last id: null allowed there',
    apply(doc) {
      const props = doc.components?.schemas?.ListFilesResponse?.properties;
      if (!props?.first_id || !props?.last_id) return false;
      for (const k of ['first_id', 'last_id']) props[k] = { anyOf: [props[k], { type: 'null' }] };
      return true;
    },
  },
  {
    note:
      'ChatCompletionList / ChatCompletionMessageList require first_id/last_id ' +
      'as strings, but an empty list has no first or last id: null allowed there',
    apply(doc) {
      let done = false;
      for (const name of ['ChatCompletionList', 'ChatCompletionMessageList']) {
        const props = doc.components?.schemas?.[name]?.properties;
        if (!props?.first_id || !props?.last_id) continue;
        for (const k of ['first_id', 'last_id']) props[k] = { anyOf: [props[k], { type: 'null' }] };
        done = true;
      }
      return done;
    },
  },
  {
    note:
      "ChatCompletionMessageList items reuse ChatCompletionResponseMessage (role: " +
      "'assistant' only) for the request's messages, whose roles are those of the " +
      "request (the spec's own example has role 'user'): request roles allowed there",
    apply(doc) {
      const s = doc.components?.schemas;
      const items = s?.ChatCompletionMessageList?.properties?.data?.items;
      const ref = '#/components/schemas/ChatCompletionResponseMessage';
      const i = items?.allOf?.findIndex((x) => x.$ref === ref);
      if (!s?.ChatCompletionResponseMessage || i === undefined || i < 0) return false;
      const copy = structuredClone(s.ChatCompletionResponseMessage);
      copy.properties.role = {
        type: 'string',
        enum: ['system', 'developer', 'user', 'assistant', 'tool', 'function'],
      };
      items.allOf[i] = copy;
      return true;
    },
  },
  {
    note:
      'CreateCompletionResponse is "the same shape" streamed or not, but a ' +
      'streamed chunk has no finish_reason until its choice ends, and the first ' +
      'token of an echoed prompt has no logprob: null allowed for ' +
      'choices[].finish_reason and logprobs.token_logprobs/top_logprobs items',
    apply(doc) {
      const ch = doc.components?.schemas?.CreateCompletionResponse?.properties?.choices?.items?.properties;
      const lp = ch?.logprobs?.anyOf?.find((x) => x.type === 'object')?.properties;
      if (!ch?.finish_reason || !lp?.token_logprobs?.items || !lp?.top_logprobs?.items) return false;
      ch.finish_reason = { anyOf: [ch.finish_reason, { type: 'null' }] };
      for (const k of ['token_logprobs', 'top_logprobs']) lp[k].items = { anyOf: [lp[k].items, { type: 'null' }] };
      return true;
    },
  },
];

// OpenAPI's `nullable: true` is not JSON Schema: turn it into a null branch.
function fixNullable(node) {
  if (Array.isArray(node)) {
    node.forEach(fixNullable);
    return;
  }
  if (!node || typeof node !== 'object') return;
  for (const v of Object.values(node)) fixNullable(v);
  if (node.nullable === true) {
    delete node.nullable;
    if (typeof node.type === 'string') node.type = [node.type, 'null'];
    else if (Array.isArray(node.type) && !node.type.includes('null'))
      node.type.push('null');
  }
}

function collectFormats(doc) {
  const out = new Set();
  JSON.stringify(doc, (k, v) => {
    if (k === 'format' && typeof v === 'string') out.add(v);
    return v;
  });
  return out;
}

function templateRegex(tpl) {
  const esc = tpl
    .split('/')
    .map((seg) =>
      /^\{[^}]+\}$/.test(seg) ? '[^/]+' : seg.replace(/[.*+?^$()|[\]\\]/g, '\\$&'),
    )
    .join('/');
  return new RegExp('^' + esc + '$');
}

export class Spec {
  constructor(file) {
    this.file = file;
    this.notes = [];
    const doc = YAML.parse(fs.readFileSync(file, 'utf8'), { maxAliasCount: -1 });
    for (const e of ERRATA) if (e.apply(doc)) this.notes.push('spec errata: ' + e.note);
    fixNullable(doc);
    this.doc = doc;
    doc.$id = 'spec';
    this.ajv = new Ajv2020({
      strict: false,
      allErrors: true,
      validateSchema: false,
      validateFormats: true,
    });
    addFormats(this.ajv);
    for (const f of collectFormats(doc))
      if (!this.ajv.formats[f]) this.ajv.addFormat(f, true);
    this.ajv.addSchema(doc);
    this.validators = new Map();
    this.ops = [];
    for (const [tpl, item] of Object.entries(doc.paths || {})) {
      for (const [method, op] of Object.entries(item)) {
        if (!op || typeof op !== 'object' || !op.responses) continue;
        const literals = tpl.split('/').filter((s) => s && !s.startsWith('{')).length;
        this.ops.push({ method: method.toUpperCase(), tpl, re: templateRegex(tpl), op, literals });
      }
    }
    // Most specific template first: /files/{id}/content before /files/{id}.
    this.ops.sort((a, b) => b.literals - a.literals || b.tpl.length - a.tpl.length);
  }

  schemaEnum(name, prop) {
    const s = this.doc.components.schemas[name];
    return prop ? s?.properties?.[prop]?.enum : s?.enum;
  }

  // The operation for METHOD + path (path without /v1 and without query).
  findOp(method, p) {
    return this.ops.find((o) => o.method === method && o.re.test(p)) || null;
  }

  validator(pointer) {
    let v = this.validators.get(pointer);
    if (!v) {
      v = this.ajv.compile({ $ref: 'spec#' + pointer });
      this.validators.set(pointer, v);
    }
    return v;
  }

  // Returns [] when body conforms, else a list of human-readable problems.
  // isJson: whether the response said it was JSON.
  check(method, urlPath, status, isJson, body) {
    const p = urlPath.replace(/^\/v1(?=\/)/, '');
    const o = this.findOp(method, p);
    const where = `${method} ${urlPath} -> ${status}`;
    if (status >= 400) {
      if (!isJson) return [`${where}: error body is not JSON`];
      return this.run('/components/schemas/ErrorResponse', body, where + ' (ErrorResponse)');
    }
    if (!o) return []; // not a spec path (e.g. /health)
    const codes = Object.keys(o.op.responses);
    const key = codes.find((c) => c === String(status)) ||
      codes.find((c) => c.toUpperCase() === `${String(status)[0]}XX`) ||
      (codes.includes('default') ? 'default' : null);
    if (!key) return [`${where}: status ${status} not among the spec's ${codes.join(',')}`];
    const content = o.op.responses[key].content;
    if (!content || !isJson) return [];
    const ct = Object.keys(content).find((c) => c.includes('json'));
    if (!ct || !content[ct].schema) return [];
    if (content[ct].schema.type === 'string') return []; // raw bytes (file content)
    const esc = (s) => s.replace(/~/g, '~0').replace(/\//g, '~1');
    const ptr = `/paths/${esc(o.tpl)}/${o.method.toLowerCase()}/responses/${key}/content/${esc(ct)}/schema`;
    return this.run(ptr, body, `${where} (${o.op.operationId})`);
  }

  // Problems with a JSON request body against the operation's requestBody
  // schema; [] when it conforms or the operation takes no JSON body.
  checkRequest(method, urlPath, body) {
    const p = urlPath.replace(/^\/v1(?=\/)/, '');
    const o = this.findOp(method, p);
    const content = o?.op?.requestBody?.content;
    if (!content?.['application/json']?.schema) return [];
    const esc = (s) => s.replace(/~/g, '~0').replace(/\//g, '~1');
    const ptr = `/paths/${esc(o.tpl)}/${o.method.toLowerCase()}/requestBody/content/application~1json/schema`;
    return this.run(ptr, body, `request ${method} ${urlPath} (${o.op.operationId})`);
  }

  run(ptr, body, where) {
    const v = this.validator(ptr);
    if (v(body)) return [];
    return v.errors
      .slice(0, 5)
      .map((e) => `${where}: ${e.instancePath || '/'} ${e.message}` +
        (e.params && Object.keys(e.params).length ? ' ' + JSON.stringify(e.params) : ''));
  }
}

// Loads the spec once; null (with reason) when the shared folder is absent.
export function loadSpec(repoRoot) {
  const dir = sharedDir(repoRoot);
  if (!dir) return { spec: null, reason: 'shared folder not found ($HEARTH_SHARED or ../shared): spec validation skipped' };
  const file = path.join(dir, 'openapi', 'openapi.sdk.yml');
  if (!fs.existsSync(file)) return { spec: null, reason: `${file} absent: spec validation skipped` };
  return { spec: new Spec(file), reason: null };
}
