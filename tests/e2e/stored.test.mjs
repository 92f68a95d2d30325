// Stored chat completions through the SDK: chat.completions.create with
// store: true on random-weight fixture models, then list (auto-pagination
// over several pages in both orders, model and metadata filters), retrieve,
// update of metadata, delete then 404, the messages list with its ids and
// pagination, isolation between two projects' keys, bad parameters, and
// durability across a server restart.
import path from 'node:path';
import fs from 'node:fs';
import { suite } from './lib/harness.mjs';
import { hearth } from './lib/server.mjs';
import { assert, expectApiError, expectErrorBody, collect } from './lib/util.mjs';

// Two small models: completions are filtered by the model that made them.
async function setup(dataDir) {
  const dir = path.join(dataDir, 'models');
  fs.mkdirSync(dir, { recursive: true });
  for (const [name, seed] of [['tiny', 1], ['tiny-two', 2]]) {
    const r = await hearth(['fixture', '--out', path.join(dir, `${name}.gguf`), '--preset', 'tiny-llama', '--seed', String(seed)]);
    if (r.code !== 0) throw new Error(`hearth fixture: exit ${r.code}: ${r.stderr.slice(-400)}`);
  }
}

const HI = [{ role: 'user', content: 'Say hi.' }];

// Creates a completion, stored unless opts has a `store` of its own (which
// may be undefined: then the request has none); tag goes into metadata.test.
function create(client, opts = {}) {
  const { tag, model = 'tiny', messages = HI, metadata = {} } = opts;
  const body = { model, messages, max_completion_tokens: 3, temperature: 0, metadata: { test: tag, ...metadata } };
  if (!('store' in opts)) body.store = true;
  else if (opts.store !== undefined) body.store = opts.store;
  return client.chat.completions.create(body);
}

async function createMany(client, tag, n, opts = {}) {
  const out = [];
  for (let i = 0; i < n; i++) out.push(await create(client, { tag, metadata: { i: String(i) }, ...opts }));
  return out;
}

const ids = (list) => list.map((c) => c.id);

suite('stored', { setup, keys: { a: { project: 'alpha' }, b: { project: 'beta' } }, defaultKey: 'a' }, (test) => {
  test('create with store: true, then retrieve the same completion with its metadata', async (t) => {
    const c = await create(t.client, { tag: 'retrieve', metadata: { user: 'ann' } });
    assert.match(c.id, /^chatcmpl-/);
    const g = await t.client.chat.completions.retrieve(c.id);
    assert.equal(g.id, c.id);
    assert.equal(g.object, 'chat.completion');
    assert.equal(g.model, c.model);
    assert.equal(g.created, c.created);
    assert.deepEqual(g.choices, c.choices, 'choices as returned by create');
    assert.deepEqual(g.usage, c.usage, 'usage as returned by create');
    assert.deepEqual(g.metadata, { test: 'retrieve', user: 'ann' });
  });

  test('a streamed completion is stored in its non-streaming shape', async (t) => {
    const stream = await t.client.chat.completions.create({
      model: 'tiny', messages: HI, store: true, stream: true, max_completion_tokens: 3, metadata: { test: 'stream' },
    });
    let id = null;
    let text = '';
    for await (const chunk of stream) {
      id = chunk.id;
      text += chunk.choices[0]?.delta?.content ?? '';
    }
    assert.ok(id, 'chunks carry the id');
    const g = await t.client.chat.completions.retrieve(id);
    assert.equal(g.object, 'chat.completion');
    assert.equal(g.choices[0].message.role, 'assistant');
    assert.equal(g.choices[0].message.content, text, 'content = the streamed deltas joined');
    assert.deepEqual(g.metadata, { test: 'stream' });
  });

  test('n = 2: both choices are stored', async (t) => {
    const c = await t.client.chat.completions.create({
      model: 'tiny', messages: HI, store: true, n: 2, max_completion_tokens: 3, metadata: { test: 'n2' },
    });
    assert.equal(c.choices.length, 2);
    const g = await t.client.chat.completions.retrieve(c.id);
    assert.deepEqual(g.choices, c.choices);
    assert.equal((await collect(t.client.chat.completions.messages.list(c.id))).length, 1);
  });

  test('many stored at once (concurrent clients): every one is listed with its own messages', async (t) => {
    const made = await Promise.all(Array.from({ length: 8 }, (_, i) =>
      create(t.client, { tag: 'concurrent', metadata: { i: String(i) }, messages: [{ role: 'user', content: `question ${i}` }] })));
    const listed = await collect(t.client.chat.completions.list({ metadata: { test: 'concurrent' }, limit: 3 }));
    assert.deepEqual(new Set(ids(listed)), new Set(ids(made)));
    assert.equal(listed.length, 8, 'no duplicates across pages');
    for (const c of listed) {
      const [m] = await collect(t.client.chat.completions.messages.list(c.id));
      assert.equal(m.content, `question ${c.metadata.i}`);
    }
  });

  test('without store (or store: false) nothing is stored', async (t) => {
    for (const store of [false, undefined]) {
      const c = await create(t.client, { tag: 'nostore', store });
      await expectApiError(t.client.chat.completions.retrieve(c.id), { status: 404, type: 'invalid_request_error' });
    }
    const l = await collect(t.client.chat.completions.list({ metadata: { test: 'nostore' } }));
    assert.deepEqual(l, []);
  });

  test('list: auto-pagination over several pages in both orders; ascending by default', async (t) => {
    const made = ids(await createMany(t.client, 'pages', 7));
    const asc = await collect(t.client.chat.completions.list({ limit: 3, order: 'asc', metadata: { test: 'pages' } }));
    assert.deepEqual(ids(asc), made);
    const desc = await collect(t.client.chat.completions.list({ limit: 2, order: 'desc', metadata: { test: 'pages' } }));
    assert.deepEqual(ids(desc), [...made].reverse());
    const dflt = await t.client.chat.completions.list({ limit: 3, metadata: { test: 'pages' } });
    assert.deepEqual(ids(dflt.data), made.slice(0, 3), 'default order is asc (the spec)');
    assert.equal(dflt.has_more, true);
    assert.equal(dflt.body.first_id, made[0]);
    assert.equal(dflt.body.last_id, made[2]);
    // Without a filter the completions are there too, in creation order.
    const all = ids(await collect(t.client.chat.completions.list({ limit: 4 })));
    const pos = made.map((id) => all.indexOf(id));
    assert.ok(pos.every((p, i) => p >= 0 && (i === 0 || p > pos[i - 1])), `in order in the whole list: ${pos}`);
    // Raw pages: after walks forward; the last page says has_more false.
    const p1 = await t.client.chat.completions.list({ limit: 5, metadata: { test: 'pages' } });
    const p2 = await t.client.chat.completions.list({ limit: 5, after: p1.body.last_id, metadata: { test: 'pages' } });
    assert.deepEqual(ids(p2.data), made.slice(5));
    assert.equal(p2.has_more, false);
  });

  test('list filters by model', async (t) => {
    const one = await create(t.client, { tag: 'model', model: 'tiny' });
    const two = await create(t.client, { tag: 'model', model: 'tiny-two' });
    assert.equal(two.model, 'tiny-two');
    const l = await collect(t.client.chat.completions.list({ model: 'tiny-two', limit: 100 }));
    assert.ok(l.length >= 1);
    assert.ok(l.every((c) => c.model === 'tiny-two'), 'only tiny-two');
    assert.ok(ids(l).includes(two.id) && !ids(l).includes(one.id));
    const m = await collect(t.client.chat.completions.list({ model: 'tiny', metadata: { test: 'model' } }));
    assert.deepEqual(ids(m), [one.id]);
    assert.deepEqual(await collect(t.client.chat.completions.list({ model: 'no-such-model' })), []);
  });

  test('list filters by metadata (every pair must match)', async (t) => {
    const [c0, c1, c2] = await createMany(t.client, 'meta', 3);
    await t.client.chat.completions.update(c1.id, { metadata: { test: 'meta', i: '1', color: 'red' } });
    await t.client.chat.completions.update(c2.id, { metadata: { test: 'meta', i: '2', color: 'red' } });
    const red = await collect(t.client.chat.completions.list({ metadata: { test: 'meta', color: 'red' } }));
    assert.deepEqual(ids(red), [c1.id, c2.id]);
    const one = await collect(t.client.chat.completions.list({ metadata: { color: 'red', i: '2' } }));
    assert.deepEqual(ids(one), [c2.id]);
    const byI = await collect(t.client.chat.completions.list({ metadata: { test: 'meta', i: '0' } }));
    assert.deepEqual(ids(byI), [c0.id]);
    const none = await t.client.chat.completions.list({ metadata: { test: 'meta', color: 'blue' } });
    assert.deepEqual(none.data, []);
    assert.equal(none.has_more, false);
  });

  test('update replaces metadata; null clears it; bad metadata is a 400', async (t) => {
    const c = await create(t.client, { tag: 'update', metadata: { a: '1' } });
    const u = await t.client.chat.completions.update(c.id, { metadata: { test: 'update', b: '2' } });
    assert.equal(u.id, c.id);
    assert.deepEqual(u.metadata, { test: 'update', b: '2' });
    assert.deepEqual(u.choices, c.choices, 'the rest is unchanged');
    assert.deepEqual((await t.client.chat.completions.retrieve(c.id)).metadata, { test: 'update', b: '2' });
    const cleared = await t.client.chat.completions.update(c.id, { metadata: null });
    assert.deepEqual(cleared.metadata, {});
    const tooMany = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v']));
    await expectApiError(t.client.chat.completions.update(c.id, { metadata: tooMany }), { status: 400, param: 'metadata' });
    await expectApiError(t.client.chat.completions.update(c.id, { metadata: { k: 'x'.repeat(513) } }), { status: 400, param: 'metadata' });
    const missing = await t.json(`/v1/chat/completions/${c.id}`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}',
    });
    expectErrorBody(missing, { status: 400, param: 'metadata' });
    const extra = await t.json(`/v1/chat/completions/${c.id}`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"metadata":{},"model":"x"}',
    });
    expectErrorBody(extra, { status: 400, param: 'model' });
    const badJson = await t.json(`/v1/chat/completions/${c.id}`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"metadata":',
    });
    expectErrorBody(badJson, { status: 400 });
  });

  test('delete, then every operation on it is a 404', async (t) => {
    const c = await create(t.client, { tag: 'delete' });
    const d = await t.client.chat.completions.delete(c.id);
    assert.deepEqual(d, { object: 'chat.completion.deleted', id: c.id, deleted: true });
    const nf = { status: 404, type: 'invalid_request_error' };
    const e = await expectApiError(t.client.chat.completions.retrieve(c.id), nf);
    assert.ok(e.error.message.includes(c.id), 'the message names the id');
    await expectApiError(t.client.chat.completions.update(c.id, { metadata: {} }), nf);
    await expectApiError(t.client.chat.completions.messages.list(c.id), nf);
    await expectApiError(t.client.chat.completions.delete(c.id), nf);
    assert.deepEqual(await collect(t.client.chat.completions.list({ metadata: { test: 'delete' } })), []);
  });

  test('unknown and malformed ids are 404s', async (t) => {
    const nf = { status: 404, type: 'invalid_request_error' };
    await expectApiError(t.client.chat.completions.retrieve('chatcmpl-doesnotexist'), nf);
    await expectApiError(t.client.chat.completions.retrieve('file-abc'), nf);
    await expectApiError(t.client.chat.completions.messages.list('chatcmpl-nope'), nf);
    await expectApiError(t.client.chat.completions.delete('chatcmpl-nope'), nf);
  });

  test('messages: the request messages in order with ids, paginated both ways', async (t) => {
    const messages = [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: 'first', name: 'ann' },
      { role: 'assistant', content: 'ok' },
      { role: 'user', content: [{ type: 'text', text: 'two' }, { type: 'text', text: 'parts' }] },
      { role: 'developer', content: 'be kind' },
      { role: 'user', content: 'last' },
    ];
    const c = await create(t.client, { tag: 'messages', messages });
    const all = await collect(t.client.chat.completions.messages.list(c.id, { limit: 2 }));
    assert.deepEqual(ids(all), messages.map((_, i) => `${c.id}-${i}`));
    assert.deepEqual(all.map((m) => m.role), messages.map((m) => m.role));
    assert.equal(all[0].content, 'You are terse.');
    assert.equal(all[0].content_parts, null);
    assert.equal(all[1].name, 'ann');
    assert.equal(all[2].content, 'ok');
    assert.equal(all[3].content, 'two\nparts');
    assert.deepEqual(all[3].content_parts, messages[3].content);
    const desc = await collect(t.client.chat.completions.messages.list(c.id, { limit: 4, order: 'desc' }));
    assert.deepEqual(ids(desc), ids(all).reverse());
    const page = await t.client.chat.completions.messages.list(c.id, { limit: 4 });
    assert.equal(page.has_more, true);
    assert.equal(page.body.first_id, `${c.id}-0`);
    assert.equal(page.body.last_id, `${c.id}-3`);
    const next = await t.client.chat.completions.messages.list(c.id, { after: page.body.last_id });
    assert.deepEqual(ids(next.data), [`${c.id}-4`, `${c.id}-5`]);
    assert.equal(next.has_more, false);
    // A cursor from another completion is refused.
    const other = await create(t.client, { tag: 'messages' });
    await expectApiError(t.client.chat.completions.messages.list(c.id, { after: `${other.id}-0` }), { status: 400, param: 'after' });
  });

  test('messages keep tool calls and tool results', async (t) => {
    const call = { id: 'call_1', type: 'function', function: { name: 'lookup', arguments: '{"q":"x"}' } };
    const messages = [
      { role: 'user', content: 'look it up' },
      { role: 'assistant', content: null, tool_calls: [call] },
      { role: 'tool', tool_call_id: 'call_1', content: '42' },
    ];
    const c = await create(t.client, { tag: 'tools', messages });
    const all = await collect(t.client.chat.completions.messages.list(c.id));
    assert.deepEqual(all.map((m) => m.role), ['user', 'assistant', 'tool']);
    assert.equal(all[1].content, null);
    assert.deepEqual(all[1].tool_calls, [call]);
    assert.equal(all[2].tool_call_id, 'call_1');
    assert.equal(all[2].content, '42');
  });

  test('bad list parameters are 400s naming them', async (t) => {
    await expectApiError(t.client.chat.completions.list({ limit: 0 }), { status: 400, param: 'limit' });
    await expectApiError(t.client.chat.completions.list({ limit: 101 }), { status: 400, param: 'limit' });
    await expectApiError(t.client.chat.completions.list({ order: 'sideways' }), { status: 400, param: 'order' });
    await expectApiError(t.client.chat.completions.list({ after: 'chatcmpl-nope' }), { status: 400, param: 'after' });
    const tooLong = { k: 'v'.repeat(513) };
    await expectApiError(t.client.chat.completions.list({ metadata: tooLong }), { status: 400, param: 'metadata' });
    const r = await t.json('/v1/chat/completions?metadata=x');
    expectErrorBody(r, { status: 400, param: 'metadata' });
  });

  test("another project's key sees none of them (404 as if absent)", async (t) => {
    const c = await create(t.client, { tag: 'tenancy' });
    const b = t.sdk(t.keys.b);
    const nf = { status: 404, type: 'invalid_request_error' };
    await expectApiError(b.chat.completions.retrieve(c.id), nf);
    await expectApiError(b.chat.completions.update(c.id, { metadata: { x: 'y' } }), nf);
    await expectApiError(b.chat.completions.messages.list(c.id), nf);
    await expectApiError(b.chat.completions.delete(c.id), nf);
    assert.deepEqual(await collect(b.chat.completions.list({ metadata: { test: 'tenancy' } })), []);
    const mine = await create(b, { tag: 'tenancy' });
    assert.deepEqual(ids(await collect(b.chat.completions.list({ metadata: { test: 'tenancy' } }))), [mine.id]);
    await expectApiError(t.client.chat.completions.retrieve(mine.id), nf);
    // Still intact for its owner.
    assert.deepEqual((await t.client.chat.completions.retrieve(c.id)).metadata, { test: 'tenancy' });
  });

  test('stored completions and their messages survive a restart', async (t) => {
    const made = await createMany(t.client, 'restart', 3, { messages: [{ role: 'system', content: 's' }, ...HI] });
    const before = await collect(t.client.chat.completions.list({ metadata: { test: 'restart' } }));
    const msgs = await collect(t.client.chat.completions.messages.list(made[1].id));
    await t.server.restart();
    const client = t.sdk();
    const after = await collect(client.chat.completions.list({ metadata: { test: 'restart' } }));
    assert.deepEqual(after, before);
    assert.deepEqual(ids(after), ids(made));
    assert.deepEqual(await collect(client.chat.completions.messages.list(made[1].id)), msgs);
    assert.deepEqual(await client.chat.completions.retrieve(made[2].id), before[2]);
  });
});
