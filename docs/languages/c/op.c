// Sluice operator in C: keeps records whose JSON "price" is > min_price (config, default 10),
// with a naive byte scan (no JSON library). Records with no numeric "price" are rejected.
//
// Ownership (wit-bindgen C): the callee owns the argument `batch` (free it or hand it on);
// the returned lists are freed with free() after the call by the generated post-return.
// So the output batch here reuses the input's `bytes` and `headers` buffers and compacts
// `events` in place: no copy of any payload.
#define _GNU_SOURCE  // memmem
#include <stdlib.h>
#include <string.h>
#include "gen/operator.h"

static double min_price = 10.0;
static uint64_t kept_total = 0;

static void log_msg(sluice_plugin_host_level_t level, const char *msg) {
  operator_string_t s;
  operator_string_set(&s, msg);   // borrows: no copy, no free
  sluice_plugin_host_log(level, &s);
}

// Writes `v` in decimal at `p`; returns the end. (snprintf would pull in libc's stdio, whose
// fd_write/fd_seek/fd_close imports become WASI imports of the component.)
static char *fmt_u64(char *p, uint64_t v) {
  char tmp[20];
  int n = 0;
  do { tmp[n++] = (char)('0' + v % 10); v /= 10; } while (v);
  while (n) *p++ = tmp[--n];
  return p;
}

// Finds the number after the key `"name"` in the JSON text buf[0..len). Naive: matches the
// first occurrence of the quoted name followed by ':' anywhere (nesting is ignored).
static bool find_number(const uint8_t *buf, size_t len, const char *name, double *out) {
  size_t nlen = strlen(name);
  for (size_t i = 0; i + nlen + 2 <= len; i++) {
    if (buf[i] != '"' || memcmp(buf + i + 1, name, nlen) != 0 || buf[i + 1 + nlen] != '"') continue;
    size_t j = i + nlen + 2;
    while (j < len && (buf[j] == ' ' || buf[j] == '\t' || buf[j] == '\n' || buf[j] == '\r')) j++;
    if (j >= len || buf[j] != ':') continue;   // a string value equal to the name
    j++;
    while (j < len && (buf[j] == ' ' || buf[j] == '\t' || buf[j] == '\n' || buf[j] == '\r')) j++;
    char num[64];
    size_t n = 0;
    while (j < len && n < sizeof num - 1 && strchr("+-0123456789.eE", buf[j]) && buf[j]) num[n++] = (char)buf[j++];
    if (n == 0) return false;
    num[n] = 0;
    char *end;
    *out = strtod(num, &end);
    return *end == 0;
  }
  return false;
}

bool exports_operator_init(operator_string_t *config, operator_string_t *err) {
  double v;
  min_price = 10.0;
  kept_total = 0;
  if (find_number(config->ptr, config->len, "min_price", &v)) {
    min_price = v;
  } else if (config->len > 0 && memmem(config->ptr, config->len, "\"min_price\"", 11)) {
    operator_string_free(config);
    operator_string_dup(err, "`min_price` must be a number");   // err is freed by post-return
    return false;
  }
  operator_string_free(config);
  return true;
}

void exports_operator_process(operator_batch_t *batch, operator_output_t *ret) {
  sluice_plugin_types_event_t *events = batch->events.ptr;
  size_t n = batch->events.len, kept = 0, nrej = 0;
  sluice_plugin_types_rejection_t *rej = NULL;
  for (size_t i = 0; i < n; i++) {
    sluice_plugin_types_event_t ev = events[i];
    // The payload is bytes[value.offset .. value.offset + value.length].
    const uint8_t *value = batch->bytes.ptr + ev.value.offset;
    double price;
    if (!find_number(value, ev.value.length, "price", &price)) {
      rej = realloc(rej, (nrej + 1) * sizeof *rej);
      rej[nrej].index = (uint32_t)i;
      operator_string_dup(&rej[nrej].reason, "no numeric \"price\" field");
      nrej++;
      continue;
    }
    if (price > min_price) events[kept++] = ev;   // spans still point into the same bytes
  }
  kept_total += kept;
  // Hand the input buffers over as the output: post-return frees them.
  ret->batch.bytes = batch->bytes;
  ret->batch.headers = batch->headers;
  ret->batch.events.ptr = events;
  ret->batch.events.len = kept;
  if (kept == 0 && n > 0) {          // post-return frees a list only when len > 0
    free(events);
    ret->batch.events.ptr = NULL;
  }
  ret->rejected.ptr = rej;
  ret->rejected.len = nrej;
  char msg[64] = "kept ", *p = msg + 5;
  p = fmt_u64(p, kept);
  memcpy(p, " of ", 4);
  p = fmt_u64(p + 4, n);
  memcpy(p, " records", 9);
  log_msg(SLUICE_PLUGIN_HOST_LEVEL_DEBUG, msg);
  operator_string_t name;
  operator_string_set(&name, "kept");
  sluice_plugin_host_counter_add(&name, kept);
}

void exports_operator_on_watermark(int64_t watermark, operator_batch_t *ret) {
  (void)watermark;
  memset(ret, 0, sizeof *ret);   // an empty batch
}

void exports_operator_snapshot(operator_state_t *ret) {
  ret->version = 1;
  ret->bytes.len = sizeof kept_total;
  ret->bytes.ptr = malloc(sizeof kept_total);
  memcpy(ret->bytes.ptr, &kept_total, sizeof kept_total);
}

bool exports_operator_restore(operator_state_t *state, operator_string_t *err) {
  bool ok = state->version == 1 && state->bytes.len == sizeof kept_total;
  if (ok) memcpy(&kept_total, state->bytes.ptr, sizeof kept_total);
  else operator_string_dup(err, "unknown state format");
  operator_state_free(state);
  return ok;
}
