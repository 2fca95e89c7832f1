// Sluice operator in JavaScript: uppercases the "category" field of each JSON-object record.
// Records that are not JSON objects are rejected (sent to the dead-letter sink).
import { log, counterAdd } from 'sluice:plugin/host@0.1.0';

const decoder = new TextDecoder();
const encoder = new TextEncoder();

// Flat-batch builder: every byte string goes into one growing buffer; spans point into it.
class BatchBuilder {
  constructor() {
    this.buf = new Uint8Array(4096);
    this.len = 0;
    this.events = [];
    this.headers = [];
  }
  append(bytes) {
    if (this.len + bytes.length > this.buf.length) {
      const grown = new Uint8Array(Math.max(this.buf.length * 2, this.len + bytes.length));
      grown.set(this.buf.subarray(0, this.len));
      this.buf = grown;
    }
    this.buf.set(bytes, this.len);
    const span = { offset: this.len, length: bytes.length };
    this.len += bytes.length;
    return span;
  }
  // key: Uint8Array | undefined, value: Uint8Array, timestamp: bigint, headers: [Uint8Array, Uint8Array][]
  push(key, value, timestamp, headers) {
    const keySpan = key === undefined ? undefined : this.append(key);
    const valueSpan = this.append(value);
    const firstHeader = this.headers.length;
    for (const [name, hvalue] of headers) {
      this.headers.push({ name: this.append(name), value: this.append(hvalue) });
    }
    this.events.push({ key: keySpan, value: valueSpan, timestamp, firstHeader,
                       headerCount: this.headers.length - firstHeader });
  }
  build() {
    return { bytes: this.buf.slice(0, this.len), events: this.events, headers: this.headers };
  }
}

// Reading in place: subarray() is a view of batch.bytes, no copy.
const cut = (batch, span) => batch.bytes.subarray(span.offset, span.offset + span.length);
function headersOf(batch, event) {
  return batch.headers.slice(event.firstHeader, event.firstHeader + event.headerCount)
    .map((h) => [cut(batch, h.name), cut(batch, h.value)]);
}

let field = 'category';
let seen = 0n;

export function init(config) {
  let cfg;
  try {
    cfg = JSON.parse(config);
  } catch (e) {
    throw `config is not JSON: ${e.message}`;   // becomes result::err(string)
  }
  if (cfg.field !== undefined && typeof cfg.field !== 'string') throw '`field` must be a string';
  field = cfg.field ?? 'category';
  seen = 0n;
}

export function process(batch) {
  const out = new BatchBuilder();
  const rejected = [];
  batch.events.forEach((event, index) => {
    let obj;
    try {
      obj = JSON.parse(decoder.decode(cut(batch, event.value)));
    } catch (e) {
      rejected.push({ index, reason: `payload is not valid JSON: ${e.message}` });
      return;
    }
    if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
      rejected.push({ index, reason: 'payload is not a JSON object' });
      return;
    }
    if (typeof obj[field] === 'string') obj[field] = obj[field].toUpperCase();
    const key = event.key === undefined ? undefined : cut(batch, event.key);
    out.push(key, encoder.encode(JSON.stringify(obj)), event.timestamp, headersOf(batch, event));
  });
  seen += BigInt(batch.events.length);
  counterAdd('uppercased', BigInt(out.events.length));
  if (rejected.length > 0) log('warn', `${rejected.length} records rejected`);
  return { batch: out.build(), rejected };
}

export function onWatermark(watermark) {
  return { bytes: new Uint8Array(0), events: [], headers: [] };
}

export function snapshot() {
  return { version: 1, bytes: encoder.encode(JSON.stringify({ seen: seen.toString() })) };
}

export function restore(state) {
  if (state.version !== 1) throw `unknown state version ${state.version}`;
  seen = BigInt(JSON.parse(decoder.decode(state.bytes)).seen);
}
