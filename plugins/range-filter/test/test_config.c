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

int main(void) {
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
