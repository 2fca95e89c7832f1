// Native unit tests of range_filter.c's configuration checks, built and run with the host's C
// compiler (after `sluice plugin build plugins/range-filter` has generated gen/):
//
//   cc -std=c11 -w -I plugins/range-filter plugins/range-filter/test/test_config.c \
//      plugins/range-filter/gen/operator.c -o /tmp/range-filter-test -lm && /tmp/range-filter-test
//
// The host imports are stubbed; parse_config is static, so this file includes the plugin.
#include <stdio.h>
#include "../range_filter.c"

// The component's imports, which only a Wasm host provides.
void __wasm_import_sluice_plugin_host_log(int32_t level, uint8_t *text, size_t length) {
  (void)level, (void)text, (void)length;
}
void __wasm_import_sluice_plugin_host_counter_add(uint8_t *name, size_t length, int64_t delta) {
  (void)name, (void)length, (void)delta;
}
void __wasm_import_sluice_plugin_host_gauge_set(uint8_t *name, size_t length, double value) {
  (void)name, (void)length, (void)value;
}
void __component_type_object_force_link_operator(void) {}

static int failures = 0;

// Checks that `config` is refused with `expected` (NULL: accepted).
static void expect(const char *config, const char *expected) {
  const char *problem = parse_config((const uint8_t *)config, strlen(config));
  bool same = problem == NULL || expected == NULL ? problem == expected : strcmp(problem, expected) == 0;
  if (!same) {
    printf("FAIL %s\n  got:      %s\n  expected: %s\n", config, problem ? problem : "(accepted)", expected ? expected : "(accepted)");
    failures++;
  }
}

// Checks that `record` is refused as JSON with `expected` (NULL: it is a valid object).
static void expect_record(const char *record, size_t length, const char *expected) {
  size_t error = 0;
  bool valid = json_valid_object((const uint8_t *)record, length, &error);
  const char *problem = valid ? NULL : not_json_reason((const uint8_t *)record, length, error);
  bool same = problem == NULL || expected == NULL ? problem == expected : strcmp(problem, expected) == 0;
  if (!same) {
    printf("FAIL record %s\n  got:      %s\n  expected: %s\n", record, problem ? problem : "(valid)", expected ? expected : "(valid)");
    failures++;
  }
}

#define RECORD(text, expected) expect_record(text, sizeof text - 1, expected)

// Checks whether `record`'s member `name`, escaped or not, is found.
static void expect_member(const char *record, const char *name, bool expected) {
  size_t start, end;
  bool found = json_field((const uint8_t *)record, strlen(record), name, &start, &end) == JSON_FOUND;
  if (found != expected) {
    printf("FAIL member %s in %s: %s\n", name, record, found ? "found" : "not found");
    failures++;
  }
}

int main(void) {
  RECORD("{\"price\":50, \"a\":[1,{\"b\":null}],\"s\":\"\\u00e9\\n\xc3\xa9\"} ", NULL);
  RECORD("{}", NULL);
  RECORD("{\"price\":50, garbage", "payload is not valid JSON at byte 13");
  RECORD("{\"price\":50}}}", "payload is not valid JSON at byte 12");
  RECORD("{\"price\":50,\"a\":[1,2}", "payload is not valid JSON at byte 20");
  RECORD("{\"price\":50,\"s\":\"a\xff" "b\"}", "payload is not valid JSON at byte 18");
  RECORD("{\"s\":\"\xed\xa0\x80\"}", "payload is not valid JSON at byte 6");   // a surrogate in UTF-8
  RECORD("{\"s\":\"\xc0\xaf\"}", "payload is not valid JSON at byte 6");       // overlong
  RECORD("{\"s\":\"tab\there\"}", "payload is not valid JSON at byte 9");
  RECORD("{\"s\":\"\\x\"}", "payload is not valid JSON at byte 6");
  RECORD("{\"price\":NaN}", "payload is not valid JSON at byte 9");
  RECORD("{\"price\":0x14}", "payload is not valid JSON at byte 10");
  RECORD("{\"price\":+20}", "payload is not valid JSON at byte 9");
  RECORD("{\"price\":.5}", "payload is not valid JSON at byte 9");
  RECORD("{\"price\":50.}", "payload is not valid JSON at byte 9");
  RECORD("{\"price\":00}", "payload is not valid JSON at byte 9");
  RECORD("{\"price\":tru}", "payload is not valid JSON at byte 9");
  RECORD("[1,2]", "payload is not a JSON object");
  RECORD("  ", "payload is not a JSON object");
  RECORD("\"text\"", "payload is not a JSON object");
  expect_member("{\"pr\\u0069ce\":50}", "price", true);
  expect_member("{\"caf\\u00e9\":1}", "caf\xc3\xa9", true);
  expect_member("{\"\\ud83d\\ude00\":1}", "\xf0\x9f\x98\x80", true);
  expect_member("{\"pric\\u0065s\":50}", "price", false);
  expect_member("{\"a\\\"b\":1}", "a\"b", true);
  expect_member("{\"a\\b\":5}", "a\\b", false);   // the record's name is a and a backspace
  expect_member("{\"a\\b\":5}", "a\b", true);

  const char *dotted = "`field` is a top-level member name, not a dotted path: range-filter reads only top-level fields";
  const char *empty = "the range is empty: with `exclusive = true`, `min` must be less than `max`";
  expect("{\"field\":\"a.b\",\"min\":1}", dotted);
  expect("{\"field\":\"price\",\"min\":5,\"max\":5,\"exclusive\":true}", empty);
  expect("{\"field\":\"price\",\"min\":5,\"max\":5}", NULL);
  expect("{\"field\":\"price\",\"min\":5,\"max\":6,\"exclusive\":true}", NULL);
  expect("{\"field\":\"price\",\"min\":6,\"max\":5}", "`min` must not be greater than `max`");
  printf(failures == 0 ? "ok\n" : "%d failure(s)\n", failures);
  return failures != 0;
}
