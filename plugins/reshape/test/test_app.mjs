// Native unit tests of app.js, run with `node plugins/reshape/test/test_app.mjs` (Node 20.6 or
// later). The host import `sluice:plugin/host@0.4.0` exists only in a component, so a loader
// hook stands it in; records go in and out as the runtime hands them, as spans of one buffer.
import assert from 'node:assert/strict';
import { register } from 'node:module';
import { test } from 'node:test';

const host = 'export function counterAdd(name, value) {}';
const hooks = `export async function resolve(specifier, context, next) {
  if (specifier === 'sluice:plugin/host@0.4.0') return { url: 'data:text/javascript,${encodeURIComponent(host)}', shortCircuit: true };
  return next(specifier, context);
}`;
register(`data:text/javascript,${encodeURIComponent(hooks)}`);
const app = await import('../app.js');

const encoder = new TextEncoder();
const decoder = new TextDecoder();

// A batch of these payloads, at event times 1, 2, ...
function batchOf(payloads) {
  const texts = payloads.map((payload) => encoder.encode(payload));
  const bytes = new Uint8Array(texts.reduce((total, text) => total + text.length, 0));
  const events = [];
  let offset = 0;
  texts.forEach((text, index) => {
    bytes.set(text, offset);
    events.push({ key: undefined, value: { offset, length: text.length }, timestamp: BigInt(index + 1), firstHeader: 0, headerCount: 0, port: 0, fields: undefined });
    offset += text.length;
  });
  return { bytes, events, headers: [] };
}

// The records reshape emits for `payloads` under `config`, and its rejections as [index, reason].
function run(config, payloads) {
  app.init(JSON.stringify(config), {});
  const output = app.process(0, batchOf(payloads));
  const emitted = output.batch.events.map((event) => decoder.decode(output.batch.bytes.subarray(event.value.offset, event.value.offset + event.value.length)));
  return { emitted, rejected: output.rejected.map(({ index, reason }) => [index, reason]) };
}

// The message init refuses `config` with (undefined if it accepts it).
function refusal(config) {
  try {
    app.init(JSON.stringify(config), {});
  } catch (error) {
    return error;
  }
  return undefined;
}

test('a rename under a field that is not an object rejects the record instead of destroying the field', () => {
  const { emitted, rejected } = run({ rename: { user_id: 'user.id' } }, [
    '{"ts":1,"user":"alice","user_id":"u1"}',
    '{"ts":2,"user_id":"u2"}',
    '{"ts":3,"user":{"name":"bob"},"user_id":"u3"}',
    '{"ts":4,"user":null,"user_id":"u4"}',
  ]);
  assert.deepEqual(emitted, ['{"ts":2,"user":{"id":"u2"}}', '{"ts":3,"user":{"name":"bob","id":"u3"}}']);
  assert.deepEqual(rejected, [[0, 'cannot set user.id: "user" is not an object'], [3, 'cannot set user.id: "user" is not an object']]);
});

test('a dotted path reads a top-level field spelt like it when nothing is nested there, as window results are written', () => {
  const config = { rename: { 'o.n': 'on' }, uppercase: ['shop.category'], round: { 'x.y': 1 }, drop: ['d.e'] };
  const { emitted, rejected } = run(config, ['{"o.n":4,"shop.category":"books","x.y":1.25,"d.e":1,"k":1}', '{"o":{"n":5},"o.n":6}']);
  assert.deepEqual(rejected, []);
  assert.deepEqual(emitted.map((text) => JSON.parse(text)), [{ 'shop.category': 'BOOKS', 'x.y': 1.3, k: 1, on: 4 }, { o: {}, 'o.n': 6, on: 5 }]);
  // Lookups and sets write such a field in place too (they wrote a nested one beside it).
  const written = run({ lookup: [{ field: 'shop.category', table: { AbC: 'hit' }, default: 'miss' }], set: { 'x.y': 'Z' } },
    ['{"shop.category":"AbC","x.y":1}', '{"shop":"str","shop.category":"no","x":{"y":2}}']);
  assert.deepEqual(written.rejected, []);
  assert.deepEqual(written.emitted.map((text) => JSON.parse(text)),
    [{ 'shop.category': 'hit', 'x.y': 'Z' }, { shop: 'str', 'shop.category': 'miss', x: { y: 'Z' } }]);
});

test('a field named __proto__ is written as a field, not as the prototype', () => {
  const { emitted, rejected } = run({ rename: { a: '__proto__' }, set: { 'b.__proto__': { y: 2 } } }, ['{"a":{"x":1},"c":3}']);
  assert.deepEqual(rejected, []);
  assert.deepEqual(emitted, ['{"c":3,"__proto__":{"x":1},"b":{"__proto__":{"y":2}}}']);
});

test('renames happen at once: two fields swap', () => {
  const { emitted } = run({ rename: { a: 'b', b: 'a' } }, ['{"a":1,"b":2,"c":3}']);
  assert.deepEqual(emitted.map((text) => JSON.parse(text)), [{ a: 2, b: 1, c: 3 }]);
});

test('a set under a field that is not an object rejects the record', () => {
  const { emitted, rejected } = run({ set: { 'user.id': 1 } }, ['{"ts":1,"user":"alice"}', '{"ts":2,"user":[1]}', '{"ts":3}']);
  assert.deepEqual(emitted, ['{"ts":3,"user":{"id":1}}']);
  assert.deepEqual(rejected, [[0, 'cannot set user.id: "user" is not an object'], [1, 'cannot set user.id: "user" is an array, and "id" is no index']]);
});

test('numeric segments index arrays: set, round, uppercase and lookups write there', () => {
  const input = '{"a":"x","arr":["x","y"],"items":[{"p":1.25},{"p":2.675}]}';
  const one = (config) => run(config, [input]);
  assert.deepEqual(one({ uppercase: ['arr.1'] }).emitted, ['{"a":"x","arr":["x","Y"],"items":[{"p":1.25},{"p":2.675}]}']);
  assert.deepEqual(one({ round: { 'items.1.p': 2 } }).emitted, ['{"a":"x","arr":["x","y"],"items":[{"p":1.25},{"p":2.68}]}']);
  assert.deepEqual(one({ set: { 'items.0.p': 9 } }).emitted, ['{"a":"x","arr":["x","y"],"items":[{"p":9},{"p":2.675}]}']);
  assert.deepEqual(one({ lookup: [{ field: 'a', into: 'arr.1', table: { x: 'z' } }] }).emitted, ['{"a":"x","arr":["x","z"],"items":[{"p":1.25},{"p":2.675}]}']);
  assert.deepEqual(one({ set: { 'arr.2': 1 } }).rejected, [[0, 'cannot set arr.2: "arr" has no element 2']]);
});

test('a dropped or renamed array element is taken out, the later ones moving up', () => {
  const input = '{"arr":["x","y","z"],"items":[{"p":1},{"p":2}]}';
  assert.deepEqual(run({ drop: ['arr.0'] }, [input]).emitted, ['{"arr":["y","z"],"items":[{"p":1},{"p":2}]}']);
  assert.deepEqual(run({ rename: { 'items.1': 'second' } }, [input]).emitted, ['{"arr":["x","y","z"],"items":[{"p":1}],"second":{"p":2}}']);
});

test('several elements of one array are dropped or renamed as they were, whatever the order given', () => {
  const input = '{"items":["x","y","z"]}';
  assert.deepEqual(run({ drop: ['items.0', 'items.1'] }, [input]).emitted, ['{"items":["z"]}']);
  assert.deepEqual(run({ drop: ['items.1', 'items.0'] }, [input]).emitted, ['{"items":["z"]}']);
  const renamed = run({ rename: { 'items.0': 'first', 'items.1': 'second' } }, [input]).emitted.map((text) => JSON.parse(text));
  assert.deepEqual(renamed, [{ items: ['z'], first: 'x', second: 'y' }]);
});

test('renamed values are written shallowest first, and mixed segments are removed in a consistent order', () => {
  const into = run({ rename: { user: 'account', name: 'account.name' } }, ['{"user":{"id":1},"name":"Ann"}', '{"user":"u1","name":"Ann"}']);
  assert.deepEqual(into.emitted.map((text) => JSON.parse(text)), [{ account: { id: 1, name: 'Ann' } }]);
  assert.deepEqual(into.rejected, [[1, 'cannot set account.name: "account" is not an object']]);
  assert.deepEqual(run({ drop: ['items.1', 'items.1b', 'items.2'] }, ['{"items":["a","b","c","d"]}']).emitted, ['{"items":["a","d"]}']);
});

test('an array has elements only: items.length is no field', () => {
  const { emitted, rejected } = run({ round: { 'items.length': 0 }, lookup: [{ field: 'items.length', into: 'n', table: { 2: 'two' } }] }, ['{"items":[1.5,2]}']);
  assert.deepEqual(rejected, []);
  assert.deepEqual(emitted, ['{"items":[1.5,2]}']);
});

test('renames that would overwrite one another are refused, as project refuses them', () => {
  assert.equal(refusal({ rename: { x: 't', a: 't' } }), 'rename: x and a are both renamed to t; give each its own name');
  assert.equal(refusal({ rename: { a: 'z', 'a.b': 'y' } }), 'rename: a.b is inside a, which is renamed too; rename one of them');
});

test('a lookup without a field is refused with a clear message', () => {
  assert.equal(refusal({ lookup: [{ into: 'department', table: {} }] }), 'lookup[0]: `field` is missing: give the path of the value looked up');
  assert.equal(refusal({ lookup: [{ field: '', table: {} }] }), 'lookup[0].field: must be a non-empty string, not ""');
  assert.equal(refusal({ drop: ['a', 3] }), 'drop[1]: must be a non-empty string, not 3');
  assert.equal(refusal({ set: { '': 1 } }), 'a `set` key must be a non-empty string, not ""');
  assert.equal(refusal({ rename: { user_id: 'user..id' } }), 'rename.user_id: invalid field path "user..id": a dot must join two names');
  assert.equal(refusal({ trim: ['name.'] }), 'trim[0]: invalid field path "name.": a dot must join two names');
  assert.equal(refusal({ lookup: [{ field: 'a', table: {} }, { field: 'b', tabel: {} }] }).split(',')[0], 'lookup[1]: unknown field `tabel`');
  assert.equal(refusal({ lookup: [{ field: 'a', table: [] }] }), 'lookup[0].table: every lookup needs a `table` of values by key');
  assert.equal(refusal({ lookup: [{ field: 'a' }] }), 'lookup[0]: every lookup needs a `table` of values by key');
});

test('a configuration without any step is refused, as project refuses one', () => {
  const nothing = 'nothing to do: set `rename`, `drop`, `uppercase`, `lowercase`, `trim`, `lookup`, `round` or `set`';
  assert.equal(refusal({}), nothing);
  assert.equal(refusal({ drop: [] }), nothing);
  assert.equal(refusal({ drop: ['a'] }), undefined);
});

test('a number beyond a 64-bit float rejects the record instead of becoming null', () => {
  const { emitted, rejected } = run({ drop: ['x'] }, ['{"p":1e400}', '{"q":{"r":-1e400}}', '{"p":1e300}']);
  assert.deepEqual(rejected, [[0, 'field "p" is a number beyond a 64-bit float'], [1, 'field "r" is a number beyond a 64-bit float']]);
  assert.deepEqual(emitted, ['{"p":1e+300}']);
});

test('round goes half away from zero on the decimal a number is written as, as project does', () => {
  const payloads = ['{"p":2.675}', '{"p":-2.5}', '{"p":0.0045}', '{"p":1e300}', '{"p":1.5e-7}', '{"p":123.456}'];
  const rounded = (decimals) => run({ round: { p: decimals } }, payloads).emitted.map((text) => JSON.parse(text).p);
  assert.deepEqual(rounded(2), [2.68, -2.5, 0, 1e300, 0, 123.46]);
  assert.deepEqual(rounded(0), [3, -3, 0, 1e300, 0, 123]);
  assert.deepEqual(rounded(3), [2.675, -2.5, 0.005, 1e300, 0, 123.456]);
});
