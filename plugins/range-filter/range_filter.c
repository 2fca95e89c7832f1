// range-filter: keeps the records whose numeric top-level `field` lies within [min, max].
//
//   [operators.config]
//   field = "price"     # a top-level member name: a dotted path is refused
//   min = 10            # optional: no lower bound
//   max = 500           # optional: no upper bound
//   exclusive = false   # true: the bounds themselves are outside the range (min = max is then refused)
//   missing = "reject"  # records without a numeric field: "reject" (dead-letter), "drop", "keep"
//
// No JSON library: json_field.h (of the C skeleton) checks each record strictly (RFC 8259, UTF-8) and scans
// its top level; a member name is matched once its escapes are read. Records that are not JSON objects are
// rejected, with the byte where they stop being one. Kept records are passed on by position, without copying
// a byte. Of a name given twice, the first value counts, as the runtime's keyed exchanges read it.
// State (version 1): the kept and dropped totals, also reported as counters.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "gen/operator.h"
// The JSON scanner the C skeleton ships: one copy for both.
#include "../../runtime/templates/c/json_field.h"

typedef enum { MISSING_REJECT, MISSING_DROP, MISSING_KEEP } missing_policy_t;

static struct {
  char field[128];
  double min, max;
  bool exclusive;
  missing_policy_t missing;
} config;

static struct {
  uint64_t kept, dropped;
} totals;

static void add_counter(const char *name, uint64_t delta) {
  operator_string_t text;
  operator_string_set(&text, name);
  sluice_plugin_host_counter_add(&text, delta);
}

// Reads an optional string member into out[size]; false when present but not a plain string.
static bool config_string(const uint8_t *json, size_t length, const char *key, char *out, size_t size) {
  size_t start, end;
  json_lookup_t found = json_field(json, length, key, &start, &end);
  if (found != JSON_FOUND) return found == JSON_ABSENT;
  size_t text = end - start - 2;
  if (json[start] != '"' || text >= size || memchr(json + start + 1, '\\', text) != NULL) return false;
  memcpy(out, json + start + 1, text);
  out[text] = 0;
  return true;
}

// Reads an optional number member; false when present but not a number.
static bool config_number(const uint8_t *json, size_t length, const char *key, double *out) {
  size_t start, end;
  json_lookup_t found = json_field(json, length, key, &start, &end);
  return found == JSON_ABSENT || (found == JSON_FOUND && json_number(json, start, end, out));
}

static const char *const CONFIG_KEYS[] = {"field", "min", "max", "exclusive", "missing"};
#define CONFIG_KEY_COUNT (sizeof CONFIG_KEYS / sizeof CONFIG_KEYS[0])

// "unknown field `NAME`, expected one of `field`, ..." (the form serde uses in Rust plugins),
// the name cut at 64 bytes. No snprintf: it would pull WASI's stdio in.
static const char *unknown_key_message(const uint8_t *name, size_t length) {
  static char message[256];
  strcpy(message, "unknown field `");
  strncat(message, (const char *)name, length < 64 ? length : 64);
  strcat(message, "`, expected one of ");
  for (size_t k = 0; k < CONFIG_KEY_COUNT; k++) {
    strcat(message, k == 0 ? "`" : ", `");
    strcat(message, CONFIG_KEYS[k]);
    strcat(message, "`");
  }
  return message;
}

static const char *parse_config(const uint8_t *json, size_t length) {
  char missing[16] = "reject";
  size_t start, end;
  if (json_unknown_member(json, length, CONFIG_KEYS, CONFIG_KEY_COUNT, &start, &end) == JSON_FOUND)
    return unknown_key_message(json + start, end - start);
  config.field[0] = 0;
  config.min = -INFINITY;
  config.max = INFINITY;
  config.exclusive = false;
  if (json_field(json, length, "field", &start, &end) == JSON_INVALID) return "config must be a JSON object";
  if (!config_string(json, length, "field", config.field, sizeof config.field) || config.field[0] == 0)
    return "`field` must be a plain, non-empty string";
  if (strchr(config.field, '.') != NULL)
    return "`field` is a top-level member name, not a dotted path: range-filter reads only top-level fields";
  if (!config_number(json, length, "min", &config.min)) return "`min` must be a number";
  if (!config_number(json, length, "max", &config.max)) return "`max` must be a number";
  if (config.min > config.max) return "`min` must not be greater than `max`";
  if (json_field(json, length, "exclusive", &start, &end) == JSON_FOUND) {
    if (end - start == 4 && memcmp(json + start, "true", 4) == 0) config.exclusive = true;
    else if (!(end - start == 5 && memcmp(json + start, "false", 5) == 0)) return "`exclusive` must be true or false";
  }
  if (config.exclusive && config.min == config.max)
    return "the range is empty: with `exclusive = true`, `min` must be less than `max`";
  if (!config_string(json, length, "missing", missing, sizeof missing)) return "`missing` must be a string";
  if (strcmp(missing, "reject") == 0) config.missing = MISSING_REJECT;
  else if (strcmp(missing, "drop") == 0) config.missing = MISSING_DROP;
  else if (strcmp(missing, "keep") == 0) config.missing = MISSING_KEEP;
  else return "`missing` must be \"reject\", \"drop\" or \"keep\"";
  return NULL;
}

bool exports_operator_init(operator_string_t *json, operator_init_context_t *context, operator_operator_info_t *ret,
                           operator_string_t *err) {
  const char *problem = parse_config(json->ptr, json->len);
  operator_string_free(json);
  operator_init_context_free(context);
  if (problem != NULL) {
    operator_string_dup(err, problem);
    return false;
  }
  totals.kept = totals.dropped = 0;
  // No side outputs; stateless per record, so any instance may take any record; JSON values.
  memset(ret, 0, sizeof *ret);
  ret->distribution.tag = SLUICE_PLUGIN_TYPES_DISTRIBUTION_ANY;
  operator_string_dup(&ret->encoding, "json");
  return true;
}

static bool in_range(double value) {
  return config.exclusive ? value > config.min && value < config.max : value >= config.min && value <= config.max;
}

// "payload is not valid JSON at byte N" (N counted from 0), or that it is no object at all.
static const char *not_json_reason(const uint8_t *value, size_t length, size_t at) {
  static char reason[64];
  size_t first = json_skip_space(value, length, 0);
  if (first >= length || (value[first] != '{' && at == first)) return "payload is not a JSON object";
  char digits[24];
  size_t count = 0;
  do digits[count++] = (char)('0' + at % 10); while ((at /= 10) != 0);
  strcpy(reason, "payload is not valid JSON at byte ");
  size_t end = strlen(reason);
  while (count > 0) reason[end++] = digits[--count];
  reason[end] = 0;
  return reason;
}

static void reject(sluice_plugin_types_rejection_t **rejections, size_t *count, size_t index, const char *reason) {
  *rejections = realloc(*rejections, (*count + 1) * sizeof **rejections);
  (*rejections)[*count].index = (uint32_t)index;
  operator_string_dup(&(*rejections)[*count].reason, reason);
  (*count)++;
}

void exports_operator_process(uint32_t input, operator_batch_t *batch, operator_output_t *ret) {
  (void)input;   // one input
  sluice_plugin_types_event_t *events = batch->events.ptr;
  size_t count = batch->events.len, kept = 0, rejected = 0;
  sluice_plugin_types_rejection_t *rejections = NULL;
  sluice_plugin_types_passed_t *passed = malloc((count ? count : 1) * sizeof *passed);
  for (size_t i = 0; i < count; i++) {
    const uint8_t *value = batch->bytes.ptr + events[i].value.offset;
    size_t start, end, error;
    double number;
    if (!json_valid_object(value, events[i].value.length, &error)) {
      reject(&rejections, &rejected, i, not_json_reason(value, events[i].value.length, error));
      continue;
    }
    json_lookup_t found = json_field(value, events[i].value.length, config.field, &start, &end);
    bool keep;
    if (found == JSON_INVALID) {
      reject(&rejections, &rejected, i, "payload is not a JSON object");
      continue;
    } else if (found == JSON_FOUND && !json_number(value, start, end, &number) && json_is_number(value, start, end)) {
      // A number, but beyond a double (1e400): no bound can be compared with it. Refused
      // whatever `missing` says, as the other operators refuse such numbers.
      char reason[200] = "\"";
      strcat(strcat(reason, config.field), "\" is a number beyond the range of a 64-bit float");
      reject(&rejections, &rejected, i, reason);
      continue;
    } else if (found == JSON_ABSENT || !json_number(value, start, end, &number)) {
      if (config.missing == MISSING_REJECT) {
        char reason[160] = "no numeric \"";
        strcat(strcat(reason, config.field), "\"");
        reject(&rejections, &rejected, i, reason);
        continue;
      }
      keep = config.missing == MISSING_KEEP;
    } else {
      keep = in_range(number);
    }
    if (keep) {   // passed on by position: the runtime takes it from its own copy of the batch
      passed[kept].index = (uint32_t)i;
      passed[kept].port = 0;
      kept++;
    }
  }
  size_t dropped = count - kept - rejected;
  totals.kept += kept;
  totals.dropped += dropped;
  add_counter("kept", kept);
  add_counter("dropped", dropped);
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
  ret->bytes.len = sizeof totals;
  ret->bytes.ptr = malloc(sizeof totals);
  memcpy(ret->bytes.ptr, &totals, sizeof totals);
}

bool exports_operator_restore(operator_state_t *state, operator_string_t *err) {
  bool ok = state->version == 1 && state->bytes.len == sizeof totals;
  if (ok) memcpy(&totals, state->bytes.ptr, sizeof totals);
  else operator_string_dup(err, "cannot read this state: expected version 1 of 16 bytes");
  operator_state_free(state);
  return ok;
}
