// Finds a top-level member of a JSON object without a JSON library: enough for operators that
// read a few fields of each record. Keys are compared byte for byte (escaped keys never match).
// The scan stops at the member it looks for: what follows it is not checked, so a record that
// is malformed after that member is not detected here.
#ifndef JSON_FIELD_H
#define JSON_FIELD_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef enum { JSON_FOUND, JSON_ABSENT, JSON_INVALID } json_lookup_t;

static size_t json_skip_space(const uint8_t *s, size_t n, size_t i) {
  while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
  return i;
}

// Index just past the string starting at s[i] == '"', or n + 1 when unterminated.
static size_t json_skip_string(const uint8_t *s, size_t n, size_t i) {
  for (i++; i < n; i++) {
    if (s[i] == '\\') i++;
    else if (s[i] == '"') return i + 1;
  }
  return n + 1;
}

// Index just past the value starting at s[i], or n + 1 when malformed.
static size_t json_skip_value(const uint8_t *s, size_t n, size_t i) {
  if (i >= n) return n + 1;
  if (s[i] == '"') return json_skip_string(s, n, i);
  if (s[i] != '{' && s[i] != '[') {   // number, true, false, null
    size_t start = i;
    while (i < n && strchr(",}] \t\r\n", s[i]) == NULL) i++;
    return i > start ? i : n + 1;
  }
  int depth = 0;
  while (i < n) {
    if (s[i] == '"') { i = json_skip_string(s, n, i); continue; }
    if (s[i] == '{' || s[i] == '[') depth++;
    else if ((s[i] == '}' || s[i] == ']') && --depth == 0) return i + 1;
    i++;
  }
  return n + 1;
}

// One member of a JSON object: its name (without quotes) at s[name..name_end), its value at
// s[value..value_end).
typedef struct {
  size_t name, name_end, value, value_end;
} json_member_t;

// Walks the members of the JSON object s[0..n): start with *at = 0. JSON_FOUND with the next
// member, JSON_ABSENT after the last one, JSON_INVALID where s stops being a JSON object.
static json_lookup_t json_next_member(const uint8_t *s, size_t n, size_t *at, json_member_t *member) {
  size_t i = *at;
  if (i == 0) {
    i = json_skip_space(s, n, 0);
    if (i >= n || s[i] != '{') return JSON_INVALID;
    i = json_skip_space(s, n, i + 1);
    if (i < n && s[i] == '}') return JSON_ABSENT;
  } else {
    i = json_skip_space(s, n, i);
    if (i < n && s[i] == '}') return JSON_ABSENT;
    if (i >= n || s[i] != ',') return JSON_INVALID;
    i = json_skip_space(s, n, i + 1);
  }
  if (i >= n || s[i] != '"') return JSON_INVALID;
  size_t name_end = json_skip_string(s, n, i);
  if (name_end > n) return JSON_INVALID;
  member->name = i + 1;
  member->name_end = name_end - 1;
  i = json_skip_space(s, n, name_end);
  if (i >= n || s[i] != ':') return JSON_INVALID;
  i = json_skip_space(s, n, i + 1);
  size_t value_end = json_skip_value(s, n, i);
  if (value_end > n) return JSON_INVALID;
  member->value = i;
  member->value_end = value_end;
  *at = value_end;
  return JSON_FOUND;
}

// Whether the member's name is `name`, byte for byte.
static bool json_member_is(const uint8_t *s, const json_member_t *member, const char *name) {
  size_t length = strlen(name);
  return member->name_end - member->name == length && memcmp(s + member->name, name, length) == 0;
}

// Looks up `key` among the members of the JSON object s[0..n). On JSON_FOUND, the value is
// s[*start..*end).
static json_lookup_t json_field(const uint8_t *s, size_t n, const char *key, size_t *start, size_t *end) {
  size_t at = 0;
  json_member_t member;
  json_lookup_t found;
  while ((found = json_next_member(s, n, &at, &member)) == JSON_FOUND) {
    if (json_member_is(s, &member, key)) {
      *start = member.value;
      *end = member.value_end;
      return JSON_FOUND;
    }
  }
  return found;
}

// Finds the first member of the JSON object s[0..n) whose name is none of known[0..count), so
// that a configuration with a misspelt key can be refused: JSON_FOUND with the name (without
// its quotes) at s[*start..*end), JSON_ABSENT when every member is known, JSON_INVALID when s
// is not a JSON object.
static json_lookup_t json_unknown_member(const uint8_t *s, size_t n, const char *const *known, size_t count,
                                         size_t *start, size_t *end) {
  size_t at = 0;
  json_member_t member;
  json_lookup_t found;
  while ((found = json_next_member(s, n, &at, &member)) == JSON_FOUND) {
    bool is_known = false;
    for (size_t k = 0; k < count && !is_known; k++) is_known = json_member_is(s, &member, known[k]);
    if (!is_known) {
      *start = member.name;
      *end = member.name_end;
      return JSON_FOUND;
    }
  }
  return found;
}

// True when s[start..end) follows JSON's number grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
static bool json_is_number(const uint8_t *s, size_t start, size_t end) {
  size_t i = start;
  if (i < end && s[i] == '-') i++;
  if (i < end && s[i] == '0') i++;
  else if (i < end && s[i] >= '1' && s[i] <= '9') while (i < end && s[i] >= '0' && s[i] <= '9') i++;
  else return false;
  if (i < end && s[i] == '.') {
    if (++i >= end || s[i] < '0' || s[i] > '9') return false;
    while (i < end && s[i] >= '0' && s[i] <= '9') i++;
  }
  if (i < end && (s[i] == 'e' || s[i] == 'E')) {
    if (++i < end && (s[i] == '+' || s[i] == '-')) i++;
    if (i >= end || s[i] < '0' || s[i] > '9') return false;
    while (i < end && s[i] >= '0' && s[i] <= '9') i++;
  }
  return i == end;
}

// Parses s[start..end) as a finite JSON number.
static bool json_number(const uint8_t *s, size_t start, size_t end, double *out) {
  char text[64];
  size_t length = end - start;
  if (length == 0 || length >= sizeof text || !json_is_number(s, start, end)) return false;
  memcpy(text, s + start, length);
  text[length] = 0;
  *out = strtod(text, NULL);
  return *out - *out == 0;   // false for infinities (1e999) and NaN
}
#endif
