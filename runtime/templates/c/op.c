// {{name}}: keeps the records whose numeric `field` is at least `min`. Records without a
// numeric `field` are rejected: they go to the dead-letter output with the reason.
// Built by `sluice plugin build`: `wit-bindgen c` generates gen/operator.{h,c} from the
// runtime's WIT, clang compiles for wasm32 and wasm-component-ld makes the component.
//
// Ownership (wit-bindgen C): this code owns the arguments it receives; the lists it returns
// are freed after the call. A filter hands the input's buffers back, with fewer events.
#include <stdlib.h>
#include <string.h>
#include "gen/operator.h"
#include "json_field.h"

static char field[128] = "price";
static double min = 0;
static uint64_t kept_total = 0;

static void fail(operator_string_t *err, const char *message) {
  operator_string_dup(err, message);
}

// Declares what the operator is: no side outputs; any instance may judge any record (the
// counts are per instance); values as JSON text. An operator keeping state per group sets
// SLUICE_PLUGIN_TYPES_DISTRIBUTION_KEY with the field paths in `val.key`.
static void describe(operator_operator_info_t *info) {
  memset(info, 0, sizeof *info);
  info->distribution.tag = SLUICE_PLUGIN_TYPES_DISTRIBUTION_ANY;
  operator_string_dup(&info->encoding, "json");
}

bool exports_operator_init(operator_string_t *config, operator_init_context_t *context, operator_operator_info_t *ret,
                           operator_string_t *err) {
  size_t start, end;
  bool ok = false;
  operator_init_context_free(context);
  static const char *const known[] = {"field", "min"};
  if (json_unknown_member(config->ptr, config->len, known, 2, &start, &end) == JSON_FOUND) {
    // Refuse misspelt keys, naming them as serde does (the runtime locates the key in the TOML).
    // (Written by hand: stdio's snprintf would import WASI, which operators do not get.)
    static const char prefix[] = "unknown field `", suffix[] = "`, expected `field` or `min`";
    char message[sizeof prefix + 64 + sizeof suffix];
    size_t name_length = end - start > 64 ? 64 : end - start;
    memcpy(message, prefix, sizeof prefix - 1);
    memcpy(message + sizeof prefix - 1, config->ptr + start, name_length);
    memcpy(message + sizeof prefix - 1 + name_length, suffix, sizeof suffix);
    fail(err, message);
  } else if (json_field(config->ptr, config->len, "field", &start, &end) != JSON_FOUND
      || config->ptr[start] != '"' || end - start - 2 >= sizeof field
      || memchr(config->ptr + start + 1, '\\', end - start - 2) != NULL) {
    fail(err, "`field` must be a string of at most 127 bytes without escapes");
  } else {
    memcpy(field, config->ptr + start + 1, end - start - 2);
    field[end - start - 2] = 0;
    if (json_field(config->ptr, config->len, "min", &start, &end) != JSON_FOUND
        || !json_number(config->ptr, start, end, &min)) {
      fail(err, "`min` must be a number");
    } else {
      kept_total = 0;
      describe(ret);
      ok = true;
    }
  }
  operator_string_free(config);
  return ok;
}

static void reject(sluice_plugin_types_rejection_t **rejections, size_t *count, size_t index, const char *reason) {
  *rejections = realloc(*rejections, (*count + 1) * sizeof **rejections);
  (*rejections)[*count].index = (uint32_t)index;
  operator_string_dup(&(*rejections)[*count].reason, reason);
  (*count)++;
}

// `input` is the index of the input the batch arrived on (0 with one input).
void exports_operator_process(uint32_t input, operator_batch_t *batch, operator_output_t *ret) {
  (void)input;
  sluice_plugin_types_event_t *events = batch->events.ptr;
  size_t count = batch->events.len, kept = 0, rejected = 0;
  sluice_plugin_types_rejection_t *rejections = NULL;
  // Kept records are passed on by position: the runtime takes them from its own copy of the
  // batch, so neither they nor the batch are copied back.
  sluice_plugin_types_passed_t *passed = malloc((count ? count : 1) * sizeof *passed);
  for (size_t i = 0; i < count; i++) {
    const uint8_t *value = batch->bytes.ptr + events[i].value.offset;
    size_t start, end, error;
    double number;
    // Checked whole first: the scan below stops at the field, and would pass what follows it.
    bool valid = json_valid_object(value, events[i].value.length, &error);
    json_lookup_t found = valid ? json_field(value, events[i].value.length, field, &start, &end) : JSON_INVALID;
    if (found == JSON_INVALID) {
      reject(&rejections, &rejected, i, "payload is not a JSON object");
    } else if (found == JSON_ABSENT || !json_number(value, start, end, &number)) {
      char reason[160] = "no numeric \"";
      strcat(strcat(reason, field), "\"");
      reject(&rejections, &rejected, i, reason);
    } else if (number >= min) {
      passed[kept].index = (uint32_t)i;
      passed[kept].port = 0;
      kept++;
    }
  }
  kept_total += kept;
  operator_string_t name;
  operator_string_set(&name, "kept");
  sluice_plugin_host_counter_add(&name, kept);
  operator_batch_free(batch);   // the input is ours to free; nothing of it is handed back
  memset(ret, 0, sizeof *ret);
  ret->passed.ptr = passed;
  ret->passed.len = kept;
  if (kept == 0) {   // an empty list is not freed after the call: free it now
    free(passed);
    ret->passed.ptr = NULL;
  }
  ret->rejected.ptr = rejections;
  ret->rejected.len = rejected;
}

void exports_operator_on_watermark(int64_t watermark, operator_batch_t *ret) {
  (void)watermark;
  memset(ret, 0, sizeof *ret);
}

void exports_operator_snapshot(operator_state_t *ret) {
  ret->version = 1;
  ret->bytes.len = sizeof kept_total;
  ret->bytes.ptr = malloc(sizeof kept_total);
  memcpy(ret->bytes.ptr, &kept_total, sizeof kept_total);
}

bool exports_operator_restore(operator_state_t *state, operator_string_t *err) {
  // Version 0 without bytes is no state (a stateless version's snapshot): nothing to restore.
  if (state->version == 0 && state->bytes.len == 0) {
    operator_state_free(state);
    return true;
  }
  bool ok = state->version == 1 && state->bytes.len == sizeof kept_total;
  if (ok) memcpy(&kept_total, state->bytes.ptr, sizeof kept_total);
  else if (state->version != 1) fail(err, "cannot read this state version: this plugin reads version 1");
  else fail(err, "cannot read this state: version 1 of this plugin holds one 8-byte count (written by another plugin?)");
  operator_state_free(state);
  return ok;
}
