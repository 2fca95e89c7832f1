// {{name}}: keeps the records whose numeric `field` is at least `min`. Records without a
// numeric `field` are rejected: they go to the dead-letter output with the reason.
// Built by `sluice plugin build` with componentize-js against the runtime's WIT.
import { counterAdd, log } from 'sluice:plugin/host@0.4.0';

// Strict: bytes that are not UTF-8 throw, and the record is rejected, rather than become
// U+FFFD (two different invalid keys would then read as one).
const decoder = new TextDecoder('utf-8', { fatal: true });
const encoder = new TextEncoder();

let field = 'price';
let min = 0;
let kept = 0n;

// A thrown Error traps the call (its records are retried one by one, the failing one
// dead-lettered); logged here first, its message becomes the dead-letter reason, as a Rust
// panic's does. A thrown string is an error result instead (init, restore).
function reported(call) {
  // process, onWatermark and snapshot have no error result: a thrown string traps there too.
  const trapsOnString = ['process', 'onWatermark', 'snapshot'].includes(call.name);
  return (...args) => {
    try {
      return call(...args);
    } catch (error) {
      if (typeof error !== 'string') log('error', `panic: ${described(error)}`);
      else if (trapsOnString) log('error', `panic: ${error}`);
      throw error;
    }
  };
}

// An Error by its name and message; anything else thrown (`throw { code: 42 }`) as JSON.
function described(error) {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  try {
    return JSON.stringify(error) ?? String(error);
  } catch {
    return String(error);
  }
}

// An error result is a thrown string; a thrown Error object traps the plugin.
export const init = reported(function init(config, context) {
  let settings;
  try {
    settings = JSON.parse(config);
  } catch (error) {
    throw `config is not JSON: ${error.message}`;
  }
  // Refuse misspelt keys with the message serde gives in Rust plugins.
  const unknown = Object.keys(settings ?? {}).filter((key) => !['field', 'min'].includes(key));
  if (unknown.length > 0) throw `unknown field \`${unknown[0]}\`, expected \`field\` or \`min\``;
  if (typeof settings.field !== 'string') throw '`field` must be a string';
  if (typeof settings.min !== 'number') throw '`min` must be a number';
  ({ field, min } = settings);
  kept = 0n;
  // No side outputs; any instance may judge any record (the counts are per instance); values
  // as JSON text. An operator keeping state per group answers { tag: 'key', val: [fields] }.
  return { outputs: [], distribution: { tag: 'any' }, encoding: 'json' };
});

// `input` is the index of the input the batch arrived on (0 with one input).
export const process = reported(function process(input, batch) {
  const passed = [];
  const rejected = [];
  batch.events.forEach((event, index) => {
    const value = batch.bytes.subarray(event.value.offset, event.value.offset + event.value.length);
    let record;
    try {
      record = JSON.parse(decoder.decode(value));
    } catch (error) {
      rejected.push({ index, reason: `payload is not valid UTF-8 JSON: ${error.message}` });
      return;
    }
    const number = record === null || typeof record !== 'object' ? undefined : record[field];
    if (typeof number !== 'number') {
      rejected.push({ index, reason: `no numeric "${field}"` });
    } else if (number >= min) {
      passed.push({ index, port: 0 });
    }
  });
  kept += BigInt(passed.length);
  counterAdd('kept', BigInt(passed.length));
  // Kept records are passed on by position (to output 0, the main one): the runtime takes them
  // from its own copy of the batch, so nothing is copied back.
  return { batch: { bytes: new Uint8Array(0), events: [], headers: [] }, rejected, passed };
});

export const onWatermark = reported(function onWatermark(watermark) {
  return { bytes: new Uint8Array(0), events: [], headers: [] };
});

export const snapshot = reported(function snapshot() {
  return { version: 1, bytes: encoder.encode(JSON.stringify({ kept: kept.toString() })) };
});

export const restore = reported(function restore(state) {
  // Version 0 without bytes is no state (a stateless version's snapshot): nothing to restore.
  if (state.version === 0 && state.bytes.length === 0) return;
  if (state.version !== 1) throw `cannot read state version ${state.version}`;
  try {
    kept = BigInt(JSON.parse(decoder.decode(state.bytes)).kept);
  } catch (error) {
    throw `state is not valid: ${error.message}`;
  }
});
