// reshape: renames, drops, sets and normalises fields of JSON-object records, and enriches them
// from lookup tables. Steps run in this order, each over dotted paths:
//
//   [operators.config]
//   rename = { user_id = "user.id" }          # move a value (creating objects on the way)
//   drop = ["event_id"]                      # remove fields
//   uppercase = ["category"]                 # strings only; also `lowercase`, `trim`
//   lookup = [{ field = "category", into = "department", table = { books = "media" }, default = "other" }]
//   round = { price = 1 }                    # numbers to this many decimals
//   set = { source = "web" }                 # constant values (overwrite)
//
// Paths are dotted; a numeric segment indexes an array (`items.0.price`), whose element must
// exist to be set; a dropped or renamed element is taken out of its array (the later ones move up).
// A lookup whose field is absent, or whose value is not in the table and has no `default`,
// leaves `into` untouched. Records that are not JSON objects are rejected (dead-letter output),
// and so is a record where a value would be written under a field that is not an object
// (`rename = { user_id = "user.id" }` on `{"user": "alice", ...}`: `"user"` is not an object),
// as `project` does; missing objects on the way are created. A configuration without any step
// is refused.
// Stateless: snapshot and restore carry nothing. Numbers pass through JavaScript numbers:
// integers beyond 2^53 lose precision (keep such ids as strings).
import { counterAdd } from 'sluice:plugin/host@0.4.0';

const decoder = new TextDecoder('utf-8', { fatal: true });
const encoder = new TextEncoder();
// `value` rounded to `decimals` places, half away from zero, on the decimal it is written as
// (its shortest text): 2.675 gives 2.68 and -2.5 gives -3, as `project`'s round(x, digits).
function roundHalfAway(value, decimals) {
  const [digits, exponent] = Math.abs(value).toExponential().split('e');
  // Shifting the decimal point in the text is exact; a tie such as 267.5 is then a double.
  const shifted = Number(`${digits}e${Number(exponent) + decimals}`);
  // Past 2^52 a double has no fraction to round.
  if (shifted >= 2 ** 52) return value;
  const rounded = Number(`${Math.round(shifted)}e-${decimals}`);
  return value < 0 ? -rounded : rounded;
}

const KNOWN = ['rename', 'drop', 'uppercase', 'lowercase', 'trim', 'lookup', 'round', 'set'];
const LOOKUP_KEYS = ['field', 'into', 'table', 'default'];

// The refusal of a misspelt key, in the form serde uses in Rust plugins.
const unknownKey = (key, known) => `unknown field \`${key}\`, expected one of ${known.map((name) => `\`${name}\``).join(', ')}`;

let steps = [];

// The segments of a dotted path; `where` names the configuration key it comes from: the path a
// refusal starts with (`lookup[0].into: ...`) when it is one, which the runtime points at.
const pathOf = (text, where) => {
  const separator = /^[A-Za-z0-9_.[\]-]+$/.test(where) ? ':' : '';
  if (typeof text !== 'string' || text === '') throw `${where}${separator} must be a non-empty string, not ${JSON.stringify(text)}`;
  const segments = text.split('.');
  // `a..b`, `.a`, `a.`: refused, as the Rust operators refuse them (a name with an empty part).
  if (segments.includes('')) throw `${where}${separator} invalid field path ${JSON.stringify(text)}: a dot must join two names`;
  return segments;
};

// The paths of list `name`, each named by its position in refusals.
const pathsOf = (name, texts) => texts.map((text, position) => pathOf(text, `${name}[${position}]`));

// A record's refusal: thrown by a step, caught in `process` and dead-lettered with its reason.
class Refusal {
  constructor(reason) {
    this.reason = reason;
  }
}

// Whether a path segment indexes an array (`items.0.price`): ASCII digits only.
const isIndex = (segment) => /^[0-9]+$/.test(segment);

// The order that removes paths as the record had them: later array elements before earlier
// ones of the same array (removing `items.0` first would move `items.1` to 0; indexes before
// names, by value then text, a total order), deeper first.
function removalOrder(a, b) {
  const segmentOrder = (x, y) => {
    const [xIndex, yIndex] = [isIndex(x), isIndex(y)];
    if (xIndex !== yIndex) return xIndex ? -1 : 1;
    if (xIndex && Number(x) !== Number(y)) return Number(y) - Number(x);
    return x < y ? -1 : x > y ? 1 : 0;
  };
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const order = segmentOrder(a[i], b[i]);
    if (order !== 0) return order;
  }
  return b.length - a.length;
}

function get(record, path) {
  let node = record;
  for (const segment of path) {
    if (node === null || typeof node !== 'object' || !Object.hasOwn(node, segment)) return undefined;
    // An array has elements only: `items.length` is no field of it.
    if (Array.isArray(node) && !isIndex(segment)) return undefined;
    node = node[segment];
  }
  return node;
}

// The path a step reads `path` at: the path itself, or, when the record holds nothing nested
// there but a top-level field spelt like the whole path (window-aggregate writes group fields
// so: `{"shop.category": ...}`), that field, as every operator reads it.
function located(record, path) {
  const whole = path.join('.');
  const flat = path.length > 1 && get(record, path) === undefined && record !== null && typeof record === 'object'
    && !Array.isArray(record) && Object.hasOwn(record, whole);
  return flat ? [whole] : path;
}

// Makes `value` the own field `name` of `node`. A plain assignment to `__proto__` would set the
// object's prototype instead, and the field would vanish from the output.
function define(node, name, value) {
  Object.defineProperty(node, name, { value, writable: true, enumerable: true, configurable: true });
}

// Writes `value` at `path`, creating missing objects on the way; a numeric segment indexes an
// array element that exists. Refuses (as `project` does) to replace a value on the way that is
// neither, which would destroy it.
function set(record, path, value) {
  let node = record;
  const refuse = (why) => { throw new Refusal(`cannot set ${path.join('.')}: ${why}`); };
  path.forEach((segment, position) => {
    const last = position === path.length - 1;
    if (Array.isArray(node)) {
      if (!isIndex(segment)) refuse(`${JSON.stringify(path[position - 1])} is an array, and ${JSON.stringify(segment)} is no index`);
      if (Number(segment) >= node.length) refuse(`${JSON.stringify(path[position - 1])} has no element ${segment}`);
      if (last) node[Number(segment)] = value;
      else node = node[Number(segment)];
    } else if (last) {
      define(node, segment, value);
    } else {
      if (!Object.hasOwn(node, segment)) define(node, segment, {});
      node = node[segment];
    }
    if (!last && (node === null || typeof node !== 'object')) refuse(`${JSON.stringify(segment)} is not an object`);
  });
}

// Removes the value at `path` and returns it (undefined when there is none); an array element
// is taken out, the later ones moving up, as `project` does.
function remove(record, path) {
  const parent = path.length === 1 ? record : get(record, path.slice(0, -1));
  const last = path[path.length - 1];
  if (parent === null || typeof parent !== 'object' || !Object.hasOwn(parent, last)) return undefined;
  if (Array.isArray(parent)) return isIndex(last) ? parent.splice(Number(last), 1)[0] : undefined;
  const value = parent[last];
  delete parent[last];
  return value;
}

// Refuses, as `project` does, two renames to one name (the second would overwrite the first)
// and a renamed field inside another renamed field (it moves with its parent).
function refuseSharedRenameTargets(moves) {
  moves.forEach(([from, to], position) => {
    const earlier = moves.slice(0, position).find(([, other]) => other.join('.') === to.join('.'));
    if (earlier) throw `rename: ${earlier[0].join('.')} and ${from.join('.')} are both renamed to ${to.join('.')}; give each its own name`;
    const parent = moves.find(([other]) => other.length < from.length && other.every((segment, i) => segment === from[i]));
    if (parent) throw `rename: ${from.join('.')} is inside ${parent[0].join('.')}, which is renamed too; rename one of them`;
  });
}

const listOf = (name, value) => {
  if (!Array.isArray(value)) throw `\`${name}\` must be a list`;
  return value;
};
const tableOf = (name, value) => {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw `\`${name}\` must be a table`;
  return value;
};

const mapString = (name, transform) => (paths) => pathsOf(name, paths).map((path) => (record) => {
  const at = located(record, path);
  const value = get(record, at);
  if (typeof value === 'string') set(record, at, transform(value));
});

const builders = {
  // All at once, as in `project`: `{ a = "b", b = "a" }` swaps the two fields.
  rename: (table) => {
    const moves = Object.entries(table).map(([from, to]) => [pathOf(from, 'a `rename` key'), pathOf(to, `rename.${from}`)]);
    refuseSharedRenameTargets(moves);
    // Taken out all at once: array elements as they were, whatever the order they are listed in;
    // written shallowest first, so that one renamed into another (`account.name` into
    // `account`) lands inside it.
    const removals = [...moves].sort(([a], [b]) => removalOrder(a, b));
    return [(record) => {
      const moved = removals.map(([from, to]) => [to, remove(record, located(record, from))]).sort((a, b) => a[0].length - b[0].length);
      for (const [to, value] of moved) if (value !== undefined) set(record, to, value);
    }];
  },
  drop: (paths) => pathsOf('drop', paths).sort(removalOrder).map((path) => (record) => { remove(record, located(record, path)); }),
  uppercase: mapString('uppercase', (text) => text.toUpperCase()),
  lowercase: mapString('lowercase', (text) => text.toLowerCase()),
  trim: mapString('trim', (text) => text.trim()),
  lookup: (lookups) => lookups.map((spec, index) => {
    const at = `lookup[${index}]`;
    if (spec === null || typeof spec !== 'object' || Array.isArray(spec)) throw `${at}: every lookup must be a table`;
    const unknown = Object.keys(spec).filter((key) => !LOOKUP_KEYS.includes(key));
    if (unknown.length > 0) throw `${at}: ${unknownKey(unknown[0], LOOKUP_KEYS)}`;
    if (spec.field === undefined) throw `${at}: \`field\` is missing: give the path of the value looked up`;
    const field = pathOf(spec.field, `${at}.field`);
    const into = pathOf(spec.into ?? spec.field, `${at}.into`);
    if (spec.table === null || typeof spec.table !== 'object' || Array.isArray(spec.table)) {
      throw `${'table' in spec ? `${at}.table` : at}: every lookup needs a \`table\` of values by key`;
    }
    return (record) => {
      const value = get(record, located(record, field));
      if (value === undefined) return;
      const key = typeof value === 'string' ? value : JSON.stringify(value);
      const at = located(record, into);
      if (Object.hasOwn(spec.table, key)) set(record, at, spec.table[key]);
      else if (spec.default !== undefined) set(record, at, spec.default);
    };
  }),
  round: (table) => Object.entries(table).map(([path, decimals]) => {
    if (!Number.isInteger(decimals) || decimals < 0 || decimals > 15) throw `round.${path}: decimals must be an integer 0..15`;
    const field = pathOf(path, 'a `round` key');
    return (record) => {
      const at = located(record, field);
      const value = get(record, at);
      if (typeof value === 'number' && Number.isFinite(value)) set(record, at, roundHalfAway(value, decimals));
    };
  }),
  set: (table) => Object.entries(table).map(([path, value]) => [pathOf(path, 'a `set` key'), value]).map(([path, value]) => (record) => {
    set(record, located(record, path), structuredClone(value));
  }),
};

// An error result is a thrown string; a thrown Error object traps the plugin.
export function init(config, context) {
  let settings;
  try {
    settings = JSON.parse(config);
  } catch (error) {
    throw `config is not JSON: ${error.message}`;
  }
  tableOf('config', settings);
  const unknown = Object.keys(settings).filter((key) => !KNOWN.includes(key));
  if (unknown.length > 0) throw unknownKey(unknown[0], KNOWN);
  const LISTS = ['drop', 'uppercase', 'lowercase', 'trim', 'lookup'];
  steps = KNOWN.filter((name) => settings[name] !== undefined).flatMap((name) =>
    builders[name](LISTS.includes(name) ? listOf(name, settings[name]) : tableOf(name, settings[name])));
  if (steps.length === 0) throw `nothing to do: set ${KNOWN.slice(0, -1).map((name) => `\`${name}\``).join(', ')} or \`set\``;
  // Stateless: any instance may reshape any record; no side outputs; JSON values.
  return { outputs: [], distribution: { tag: 'any' }, encoding: 'json' };
}

// JSON.parse reads a number beyond a 64-bit float (1e400) as Infinity, which JSON.stringify
// writes as null: such a record is refused instead, as the Rust operators refuse it.
function finiteOnly(key, value) {
  if (typeof value === 'number' && !Number.isFinite(value)) {
    throw new Refusal(`${key === '' ? 'the payload' : `field ${JSON.stringify(key)}`} is a number beyond a 64-bit float`);
  }
  return value;
}

export function process(input, batch) {
  const out = new BatchBuilder(batch);
  const rejected = [];
  batch.events.forEach((event, index) => {
    let record;
    try {
      record = JSON.parse(decoder.decode(batch.bytes.subarray(event.value.offset, event.value.offset + event.value.length)), finiteOnly);
    } catch (error) {
      rejected.push({ index, reason: error instanceof Refusal ? error.reason : `payload is not valid JSON: ${error.message}` });
      return;
    }
    if (record === null || typeof record !== 'object' || Array.isArray(record)) {
      rejected.push({ index, reason: 'payload is not a JSON object' });
      return;
    }
    try {
      for (const step of steps) step(record);
    } catch (error) {
      if (!(error instanceof Refusal)) throw error;
      rejected.push({ index, reason: error.reason });
      return;
    }
    out.push(event, encoder.encode(JSON.stringify(record)));
  });
  counterAdd('reshaped', BigInt(out.events.length));
  return { batch: out.build(), rejected, passed: [] };
}

export function onWatermark(watermark) {
  return { bytes: new Uint8Array(0), events: [], headers: [] };
}

export function snapshot() {
  return { version: 1, bytes: new Uint8Array(0) };
}

export function restore(state) {
  if (state.version !== 1) throw `cannot read state version ${state.version}: this version reads 1`;
  if (state.bytes.length !== 0) throw 'unexpected state: this operator keeps none';
}

// The output batch: new values, keys and headers copied from the input, in one buffer.
class BatchBuilder {
  constructor(source) {
    this.source = source;
    this.buffer = new Uint8Array(Math.max(1024, source.bytes.length * 2));
    this.length = 0;
    this.events = [];
    this.headers = [];
  }

  append(bytes) {
    if (this.length + bytes.length > this.buffer.length) {
      const grown = new Uint8Array(Math.max(this.buffer.length * 2, this.length + bytes.length));
      grown.set(this.buffer.subarray(0, this.length));
      this.buffer = grown;
    }
    this.buffer.set(bytes, this.length);
    const span = { offset: this.length, length: bytes.length };
    this.length += bytes.length;
    return span;
  }

  copy(span) {
    return this.append(this.source.bytes.subarray(span.offset, span.offset + span.length));
  }

  push(event, value) {
    const key = event.key === undefined ? undefined : this.copy(event.key);
    const firstHeader = this.headers.length;
    for (const header of this.source.headers.slice(event.firstHeader, event.firstHeader + event.headerCount)) {
      this.headers.push({ name: this.copy(header.name), value: this.copy(header.value) });
    }
    this.events.push({ key, value: this.append(value), timestamp: event.timestamp, firstHeader, headerCount: event.headerCount, port: 0, fields: undefined });
  }

  build() {
    return { bytes: this.buffer.subarray(0, this.length), events: this.events, headers: this.headers };
  }
}
