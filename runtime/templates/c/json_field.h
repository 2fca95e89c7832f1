// Finds a top-level member of a JSON object without a JSON library: enough for operators that
// read a few fields of each record. Names are compared once their escapes are read, and the
// first of a name given twice counts. The scan stops at the member it looks for: what follows
// it is not checked, so check a record whole first with `json_valid_object` (strict RFC 8259,
// UTF-8) to refuse one that is malformed after that member.
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

// The 4 hex digits at s[i..i + 4] as a number, or -1.
static long json_hex4(const uint8_t *s, size_t n, size_t i) {
  long value = 0;
  if (i + 4 > n) return -1;
  for (size_t k = i; k < i + 4; k++) {
    uint8_t c = s[k];
    int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (digit < 0) return -1;
    value = value * 16 + digit;
  }
  return value;
}

// Decodes the escape at s[*i] == '\\' (a valid one: the record was checked) into UTF-8 at out
// (room for 4 bytes); returns its length and moves *i past it.
static size_t json_unescape(const uint8_t *s, size_t n, size_t *i, uint8_t *out) {
  uint8_t c = s[*i + 1];
  const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
  const char *simple = c ? strchr(from, c) : NULL;
  if (simple != NULL && c != 'u') {
    *i += 2;
    out[0] = (uint8_t)to[simple - from];
    return 1;
  }
  long code = json_hex4(s, n, *i + 2);
  *i += 6;
  if (code >= 0xD800 && code <= 0xDBFF && *i + 1 < n && s[*i] == '\\' && s[*i + 1] == 'u') {
    long low = json_hex4(s, n, *i + 2);
    if (low >= 0xDC00 && low <= 0xDFFF) {
      code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
      *i += 6;
    }
  }
  if (code < 0 || (code >= 0xD800 && code <= 0xDFFF)) code = 0xFFFD;   // a lone surrogate
  if (code < 0x80) { out[0] = (uint8_t)code; return 1; }
  if (code < 0x800) { out[0] = (uint8_t)(0xC0 | (code >> 6)); out[1] = (uint8_t)(0x80 | (code & 0x3F)); return 2; }
  if (code < 0x10000) {
    out[0] = (uint8_t)(0xE0 | (code >> 12)), out[1] = (uint8_t)(0x80 | ((code >> 6) & 0x3F)), out[2] = (uint8_t)(0x80 | (code & 0x3F));
    return 3;
  }
  out[0] = (uint8_t)(0xF0 | (code >> 18)), out[1] = (uint8_t)(0x80 | ((code >> 12) & 0x3F));
  out[2] = (uint8_t)(0x80 | ((code >> 6) & 0x3F)), out[3] = (uint8_t)(0x80 | (code & 0x3F));
  return 4;
}

// Whether the member's name is `name`: byte for byte, or once its escapes are read
// (`"pr\u0069ce"` is `price`).
static bool json_member_is(const uint8_t *s, const json_member_t *member, const char *name) {
  size_t length = strlen(name);
  if (memchr(s + member->name, '\\', member->name_end - member->name) == NULL)
    return member->name_end - member->name == length && memcmp(s + member->name, name, length) == 0;
  size_t i = member->name, matched = 0;
  while (i < member->name_end) {
    uint8_t decoded[4];
    size_t count = s[i] == '\\' ? json_unescape(s, member->name_end, &i, decoded) : (decoded[0] = s[i++], 1);
    if (matched + count > length || memcmp(name + matched, decoded, count) != 0) return false;
    matched += count;
  }
  return matched == length;
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

// Checks JSON text strictly (RFC 8259), for operators that must not pass on a record that is
// not JSON: `json_valid_value` returns the index just past the value at s[i] (white space
// before it skipped), or 0 with *error set to where it is not JSON. Strings must be UTF-8
// (no overlong forms, surrogates or code points past U+10FFFF), without control characters,
// with valid escapes (a surrogate escape only as a high one followed by a low one: a lone one
// names no character, and serde_json refuses it as the Rust operators read it); numbers follow the grammar; nesting is at most JSON_MOST_DEPTH deep.
#define JSON_MOST_DEPTH 128

static size_t json_valid_string(const uint8_t *s, size_t n, size_t i, size_t *error) {
  for (i++; i < n;) {
    uint8_t c = s[i];
    if (c == '"') return i + 1;
    if (c < 0x20) break;
    if (c == '\\') {
      if (i + 1 >= n) break;
      uint8_t e = s[i + 1];
      if (e == 'u') {
        long code = json_hex4(s, n, i + 2);
        if (code < 0 || (code >= 0xDC00 && code <= 0xDFFF)) break;   // not hex, or a low surrogate alone
        if (code >= 0xD800 && code <= 0xDBFF) {   // a high surrogate: its low one must follow
          long low = i + 7 < n && s[i + 6] == '\\' && s[i + 7] == 'u' ? json_hex4(s, n, i + 8) : -1;
          if (low < 0xDC00 || low > 0xDFFF) break;
          i += 6;
        }
        i += 6;
      } else if (strchr("\"\\/bfnrt", e) != NULL && e != 0) {
        i += 2;
      } else {
        break;
      }
      continue;
    }
    if (c < 0x80) { i++; continue; }
    // UTF-8: the length from the lead byte, then continuation bytes, no overlong or surrogate.
    size_t length = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (length == 0 || i + length > n) break;
    uint8_t second = s[i + 1];
    bool second_ok = (c == 0xE0 ? second >= 0xA0 : c == 0xED ? second <= 0x9F : c == 0xF0 ? second >= 0x90 : c == 0xF4 ? second <= 0x8F : true);
    bool rest_ok = second_ok;
    for (size_t k = 1; k < length && rest_ok; k++) rest_ok = (s[i + k] & 0xC0) == 0x80;
    if (!rest_ok) break;
    i += length;
  }
  *error = i;
  return 0;
}

static size_t json_valid_value_at(const uint8_t *s, size_t n, size_t i, int depth, size_t *error) {
  i = json_skip_space(s, n, i);
  if (i >= n) { *error = i; return 0; }
  uint8_t c = s[i];
  if (c == '"') return json_valid_string(s, n, i, error);
  if (c == '{' || c == '[') {
    if (depth >= JSON_MOST_DEPTH) { *error = i; return 0; }
    uint8_t close = c == '{' ? '}' : ']';
    i = json_skip_space(s, n, i + 1);
    if (i < n && s[i] == close) return i + 1;
    for (;;) {
      if (c == '{') {
        if (i >= n || s[i] != '"') { *error = i; return 0; }
        i = json_valid_string(s, n, i, error);
        if (i == 0) return 0;
        i = json_skip_space(s, n, i);
        if (i >= n || s[i] != ':') { *error = i; return 0; }
        i++;
      }
      i = json_valid_value_at(s, n, i, depth + 1, error);
      if (i == 0) return 0;
      i = json_skip_space(s, n, i);
      if (i < n && s[i] == close) return i + 1;
      if (i >= n || s[i] != ',') { *error = i; return 0; }
      i = json_skip_space(s, n, i + 1);
    }
  }
  static const char *const literals[] = {"true", "false", "null"};
  for (size_t k = 0; k < 3; k++) {
    size_t length = strlen(literals[k]);
    if (i + length <= n && memcmp(s + i, literals[k], length) == 0) return i + length;
  }
  size_t end = i;
  while (end < n && strchr("+-.0123456789eE", s[end]) != NULL && s[end] != 0) end++;
  if (end > i && json_is_number(s, i, end)) return end;
  *error = i;
  return 0;
}

// Whether s[0..n) is one JSON object and nothing else but white space; if not, *error is the
// byte where it stops being one.
static bool json_valid_object(const uint8_t *s, size_t n, size_t *error) {
  size_t i = json_skip_space(s, n, 0);
  if (i >= n || s[i] != '{') { *error = i; return false; }
  size_t end = json_valid_value_at(s, n, i, 0, error);
  if (end == 0) return false;
  end = json_skip_space(s, n, end);
  if (end != n) { *error = end; return false; }
  return true;
}

// Parses s[start..end) as a finite JSON number: false if it is no number, or one beyond the
// range of a double (1e999; tell the two apart with json_is_number). Digits past what a
// double holds round, however many there are.
static bool json_number(const uint8_t *s, size_t start, size_t end, double *out) {
  char small[64];
  size_t length = end - start;
  if (length == 0 || !json_is_number(s, start, end)) return false;
  char *text = length < sizeof small ? small : malloc(length + 1);
  if (text == NULL) return false;
  memcpy(text, s + start, length);
  text[length] = 0;
  *out = strtod(text, NULL);
  if (text != small) free(text);
  return *out - *out == 0;   // false for infinities (1e999) and NaN
}
#endif
