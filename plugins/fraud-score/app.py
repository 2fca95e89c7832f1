"""fraud-score: scores each record against weighted rules and a per-key velocity check.

    [operators.config]
    rules = [
      { name = "high_amount", field = "price", op = ">", value = 150, weight = 0.5 },
      { name = "bulk", field = "quantity", op = ">=", value = 3, weight = 0.2 },
      { name = "risky_campaign", field = "campaign", op = "in", value = ["spring_sale"], weight = 0.1 },
    ]
    velocity = { key = "user_id", window = 60000, max_events = 5, weight = 0.4 }  # window in ms
    threshold = 0.6           # score at which a record is flagged
    field = "fraud"           # where the verdict goes in the record
    only_flagged = false      # true: pass flagged records only

Each record that is a JSON object gets `"fraud": {"score": s, "flagged": b, "reasons": [...]}`
where s is the sum of the weights of the rules that matched (capped at 1). Rule operators:
> >= < <= (with a numeric `value`) == != in not_in (with a list `value`) exists missing;
`field` is a non-empty dotted path (numeric segments index arrays: `items.0.price`).
`==`, `!=`, `in`, `not_in` and the velocity key compare values canonically, as the Rust
operators do: `1`, `1.0` and `1e0` are one value, `true` is not `1`, objects are equal
whatever the order of their fields. Of a name a record gives twice, the first value counts, as
the runtime's keyed exchanges read it. The velocity rule matches when the key has more than
`max_events` (at least 1, default 10) records within `window` ms (at least 1) of event time
before and including this one; its `weight` defaults to 1. Records that are not JSON objects are rejected (dead-letter output), and
so are records holding a number beyond the range of a 64-bit float (`1e400`, `-1e999`) or the
non-JSON literals `NaN`, `Infinity` and `-Infinity`: Python's json would read such a number as
infinity and could not write it back as JSON, so output is always strict JSON.

State (the velocity history, version 1) is bounded by the watermark: a key's timestamps older
than `watermark - window` are forgotten.
"""
import json
import math
from decimal import Context, Decimal

import wit_world
from componentize_py_types import Err
from wit_world.imports import host
from wit_world.imports.types import (Batch, Distribution_Any, Distribution_Key, Event, Header, InitContext, OperatorInfo, Output,
                                     Rejection, Span, State)

OPERATORS = {
    ">": lambda a, b: _numbers(a, b) and a > b,
    ">=": lambda a, b: _numbers(a, b) and a >= b,
    "<": lambda a, b: _numbers(a, b) and a < b,
    "<=": lambda a, b: _numbers(a, b) and a <= b,
    "==": lambda a, b: a is not MISSING and canonical(a) == b,
    "!=": lambda a, b: a is MISSING or canonical(a) != b,
    "in": lambda a, b: a is not MISSING and canonical(a) in b,
    "not_in": lambda a, b: a is MISSING or canonical(a) not in b,
    "exists": lambda a, b: a is not MISSING,
    "missing": lambda a, b: a is MISSING,
}
MISSING = object()
ORDERINGS = (">", ">=", "<", "<=")
EQUALITIES = ("==", "!=")
MEMBERSHIPS = ("in", "not_in")


def _numbers(a, b) -> bool:
    return all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (a, b))


class Number(float):
    """A JSON number with a fraction or exponent: its double, and its exact decimal value for
    comparing canonically (`1.8446744073709551617e19` is the integer 18446744073709551617)."""
    exact: Decimal

    def __new__(cls, text: str):
        number = super().__new__(cls, text)
        try:
            number.exact = Decimal(text)
        except ArithmeticError:
            # An exponent past what `decimal` takes (1e-9999999999999999999): the double's value.
            number.exact = Decimal(float(number))
        return number


def canonical(value):
    """A hashable form of a JSON value, equal for the same value however it is spelt."""
    if isinstance(value, bool):
        return ("boolean", value)
    if isinstance(value, Number):
        return ("number", value.exact)
    if isinstance(value, (int, float)):
        return ("number", Decimal(value))
    if isinstance(value, list):
        return ("array", tuple(canonical(element) for element in value))
    if isinstance(value, dict):
        return ("object", tuple(sorted(((name, canonical(member)) for name, member in value.items()), key=lambda pair: pair[0])))
    return ("null",) if value is None else ("string", value)


def canonical_text(value) -> str:
    """The velocity history's key for a value: JSON text, numbers by their exact value (integers
    by their digits), objects with their fields in order; as version 1 wrote integers and text."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (int, float)):
        exact = canonical(value)[1]
        if exact == exact.to_integral_value():
            return str(int(exact))
        # Trailing zeros dropped at the number's own precision (the context's 28 digits would round it).
        return str(exact.normalize(Context(prec=max(len(exact.as_tuple().digits), 1))))
    if isinstance(value, list):
        return "[" + ", ".join(canonical_text(element) for element in value) + "]"
    return "{" + ", ".join(f"{json.dumps(name)}: {canonical_text(value[name])}" for name in sorted(value)) + "}"


class NotFinite(ValueError):
    """A number a 64-bit float cannot hold, or a NaN or Infinity literal (not JSON)."""


def _finite_float(text: str) -> float:
    """A JSON number with a fraction or exponent, refused when it is not finite as a double."""
    number = Number(text)
    if not math.isfinite(number):
        raise NotFinite(f"the number {text} is beyond the range of a 64-bit float")
    return number


def _bounded_int(text: str) -> int:
    """A JSON integer, refused when a double cannot hold it (it overflows to infinity)."""
    if len(text.lstrip("-")) > 309:
        raise NotFinite(f"an integer of {len(text.lstrip('-'))} digits is beyond the range of a 64-bit float")
    number = int(text)
    try:
        float(number)
    except OverflowError:
        raise NotFinite(f"an integer of {len(text.lstrip('-'))} digits is beyond the range of a 64-bit float") from None
    return number


def _refuse_constant(name: str):
    """`NaN`, `Infinity` and `-Infinity`, which Python's json accepts but JSON does not."""
    raise NotFinite(f"{name} is not a JSON value")


def _first_wins(pairs) -> dict:
    """An object whose name is given twice keeps the first value, as the runtime reads it."""
    members = {}
    for name, value in pairs:
        members.setdefault(name, value)
    return members


def parse_json(text):
    """Strict JSON: numbers finite as 64-bit floats, no NaN or Infinity (ValueError otherwise)."""
    # Bytes are decoded here, not by json.loads, which would load the UTF-16 or UTF-32 codec
    # for bytes that look like them: a module loaded after the build traps (no files to read).
    if isinstance(text, (bytes, bytearray)):
        text = text.decode("utf-8")
    return json.loads(text, parse_float=_finite_float, parse_int=_bounded_int, parse_constant=_refuse_constant,
                      object_pairs_hook=_first_wins)


def dump_json(value) -> bytes:
    """Compact strict JSON: a non-finite float raises ValueError instead of writing `Infinity`."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()


def lookup(record, path):
    """The value at a dotted path: names in objects, numeric segments index arrays; with nothing
    nested there, a top-level field spelt like the whole path (as window-aggregate writes its
    group fields, and as the runtime's keyed exchanges read it)."""
    top = record
    for segment in path:
        if isinstance(record, dict) and segment in record:
            record = record[segment]
        elif isinstance(record, list) and segment.isascii() and segment.isdigit() and int(segment) < len(record):
            record = record[int(segment)]
        else:
            whole = ".".join(path)
            return top[whole] if len(path) > 1 and isinstance(top, dict) and whole in top else MISSING
    return record


SETTINGS_KEYS = ("rules", "velocity", "threshold", "field", "only_flagged")
RULE_KEYS = ("name", "field", "op", "value", "weight")
VELOCITY_KEYS = ("key", "window", "max_events", "weight")


def unknown_key_message(key, known) -> str:
    """The refusal of a misspelt key, in the form serde uses in Rust plugins."""
    return f"unknown field `{key}`, expected one of " + ", ".join(f"`{name}`" for name in known)


def at(base: str, spec: dict, key: str) -> str:
    """The path a refusal starts with, which the runtime points at in the pipeline file: the
    key's value when it is given, else the table that lacks it."""
    return f"{base}.{key}" if key in spec else base


class Rule:
    def __init__(self, spec: dict, index: int):
        base = f"rules[{index}]"
        unknown = [key for key in spec if key not in RULE_KEYS]
        if unknown:
            raise Err(f"{base}: {unknown_key_message(unknown[0], RULE_KEYS)}")
        for key in ("name", "field"):
            if not isinstance(spec.get(key), str):
                raise Err(f"{at(base, spec, key)}: every rule needs a string `{key}`, got {describe(spec.get(key))}")
        if not spec["name"]:
            raise Err(f"{base}.name: a rule's `name` must not be empty: it is what `reasons` lists")
        self.name, self.path = spec["name"], dotted_path(spec["field"], f"{base}.field")
        self.op = spec.get("op", "exists")
        if self.op not in OPERATORS:
            raise Err(f"{base}.op: unknown op {json.dumps(self.op)} (one of {', '.join(OPERATORS)})")
        self.value = spec.get("value")
        value_at = at(base, spec, "value")
        if self.op in MEMBERSHIPS and not isinstance(self.value, list):
            raise Err(f"{value_at}: `{self.op}` needs a list `value`, got {describe(self.value)}")
        if self.op in ORDERINGS and not _numbers(self.value, 0):
            raise Err(f"{value_at}: `{self.op}` needs a numeric `value`, got {describe(self.value)}")
        if self.op in EQUALITIES and "value" not in spec:
            raise Err(f"{value_at}: `{self.op}` needs a `value` to compare with")
        if self.op in ("exists", "missing") and "value" in spec:
            raise Err(f"{value_at}: `{self.op}` takes no `value`")
        # Compared canonically: the operand once, each record's value as it comes.
        if self.op in EQUALITIES:
            self.value = canonical(self.value)
        elif self.op in MEMBERSHIPS:
            self.value = frozenset(canonical(element) for element in self.value)
        self.weight = spec.get("weight", 1.0)
        if not _numbers(self.weight, 0):
            raise Err(f"{base}.weight: must be a number, got {describe(self.weight)}")
        if self.weight < 0:
            raise Err(f"{base}.weight: must not be negative, got {self.weight}: a score is a sum of weights from 0 to 1")

    def matches(self, record) -> bool:
        return OPERATORS[self.op](lookup(record, self.path), self.value)


def dotted_path(text: str, where: str) -> list:
    """The segments of a dotted field path, refused at `where` when it is empty or has an empty
    segment."""
    segments = text.split(".")
    if not all(segments):
        raise Err(f"{where}: must be a field path (names separated by dots), got {json.dumps(text)}")
    return segments


def describe(value) -> str:
    """A configuration value as a refusal names it: `nothing` when absent, else its JSON."""
    return "nothing" if value is None else json.dumps(value)


def whole_number(value) -> bool:
    """Whether `value` is a number without a fraction (an integer, or a float such as 5.0)."""
    return _numbers(value, 0) and float(value).is_integer()


def velocity_settings(velocity) -> tuple:
    """The velocity check (key path, window ms, max_events, weight) of its table, validated."""
    if not isinstance(velocity, dict):
        raise Err("`velocity` must be a table")
    unknown = [key for key in velocity if key not in VELOCITY_KEYS]
    if unknown:
        raise Err(f"velocity: {unknown_key_message(unknown[0], VELOCITY_KEYS)}")
    if not isinstance(velocity.get("key"), str):
        raise Err(f"{at('velocity', velocity, 'key')}: `key` must be a string field path, got {describe(velocity.get('key'))}")
    window, max_events, weight = velocity.get("window"), velocity.get("max_events", 10), velocity.get("weight", 1.0)
    if not whole_number(window) or window < 1:
        raise Err(f"{at('velocity', velocity, 'window')}: `window` must be a whole number of milliseconds of at least 1, got {describe(window)}")
    if not whole_number(max_events) or max_events < 1:
        raise Err(f"velocity.max_events: `max_events` (optional, default 10) must be a whole number of at least 1, got {describe(max_events)}")
    if not _numbers(weight, 0):
        raise Err(f"velocity.weight: `weight` (optional, default 1) must be a number, got {describe(weight)}")
    if weight < 0:
        raise Err(f"velocity.weight: must not be negative, got {weight}: a score is a sum of weights from 0 to 1")
    return dotted_path(velocity["key"], "velocity.key"), int(window), int(max_events), weight


class Settings:
    def __init__(self, config: dict):
        unknown = [key for key in config if key not in SETTINGS_KEYS]
        if unknown:
            raise Err(unknown_key_message(unknown[0], SETTINGS_KEYS))
        if not isinstance(config.get("rules", []), list) or not all(isinstance(r, dict) for r in config.get("rules", [])):
            raise Err("`rules` must be a list of tables")
        self.rules = [Rule(spec, index) for index, spec in enumerate(config.get("rules", []))]
        names = [rule.name for rule in self.rules]
        for index, name in enumerate(names):
            if name in names[:index]:
                raise Err(f"rules[{index}].name: rule names must be unique, and {json.dumps(name)} is also the name of rules[{names.index(name)}]")
        velocity = config.get("velocity")
        self.velocity = None if velocity is None else velocity_settings(velocity)
        self.threshold = config.get("threshold", 0.5)
        self.field = config.get("field", "fraud")
        self.only_flagged = config.get("only_flagged", False)
        if not _numbers(self.threshold, 0):
            raise Err(f"`threshold` must be a number, got {describe(self.threshold)}")
        if self.threshold > 1:
            raise Err(f"`threshold` must be at most 1, got {self.threshold}: the score is capped at 1, so no record would be flagged")
        if self.threshold <= 0:
            raise Err(f"`threshold` must be above 0, got {self.threshold}: every record, matching no rule, would be flagged")
        if not isinstance(self.field, str) or not self.field:
            raise Err("`field` must be a non-empty string")
        if not isinstance(self.only_flagged, bool):
            raise Err("`only_flagged` must be true or false")
        if not self.rules and self.velocity is None:
            raise Err("give at least one rule or a velocity check")


# componentize-py serves every call with a new WitWorld object: state lives at module level.
SETTINGS = [None]
HISTORY: dict = {}   # velocity key -> event timestamps (ms), oldest first


def velocity_matches(record, timestamp: int) -> bool:
    path, window, max_events, _ = SETTINGS[0].velocity
    key = lookup(record, path)
    if key is MISSING:
        return False
    times = HISTORY.setdefault(canonical_text(key), [])
    times.append(timestamp)
    recent = [t for t in times if timestamp - window < t <= timestamp]
    return len(recent) > max_events


def score(record, timestamp: int) -> dict:
    settings = SETTINGS[0]
    matched = [rule for rule in settings.rules if rule.matches(record)]
    reasons = [rule.name for rule in matched]
    total = sum(rule.weight for rule in matched)
    if settings.velocity is not None and velocity_matches(record, timestamp):
        reasons.append("velocity")
        total += settings.velocity[3]
    total = round(min(float(total), 1.0), 6)
    return {"score": total, "flagged": total >= settings.threshold, "reasons": reasons}


def read_record(payload: bytes):
    """The record in `payload` and None, or None and the reason it is refused."""
    try:
        record = parse_json(payload)
    except NotFinite as error:
        return None, f"payload is refused: {error}"
    except UnicodeDecodeError as error:
        return None, f"payload is not valid JSON: byte 0x{payload[error.start]:02X} at offset {error.start} is not UTF-8"
    except ValueError as error:
        return None, f"payload is not valid JSON: {error}"
    if not isinstance(record, dict):
        return None, "payload is not a JSON object"
    return record, None


class Builder:
    """The output batch: kept keys and headers are copied as spans into one new buffer."""

    def __init__(self, source: Batch):
        self.source, self.buffer, self.events, self.headers = source, bytearray(), [], []

    def append(self, data) -> Span:
        offset = len(self.buffer)
        self.buffer += data
        return Span(offset, len(data))

    def span_of(self, span: Span) -> Span:
        return self.append(self.source.bytes[span.offset:span.offset + span.length])

    def push(self, event: Event, value: bytes) -> None:
        key = None if event.key is None else self.span_of(event.key)
        first = len(self.headers)
        for header in self.source.headers[event.first_header:event.first_header + event.header_count]:
            self.headers.append(Header(self.span_of(header.name), self.span_of(header.value)))
        self.events.append(Event(key, self.append(value), event.timestamp, first, event.header_count, 0, None))

    def build(self) -> Batch:
        return Batch(bytes(self.buffer), self.events, self.headers)


def reported(method):
    """An exception other than `Err` traps the call; logged first, its message becomes the
    dead-letter reason, as a Rust panic's does (the skeleton of `sluice plugin new` does the same)."""
    def call(*args):
        try:
            return method(*args)
        except Err:
            raise
        except BaseException as error:
            host.log(host.Level.ERROR, f"panic: {type(error).__name__}: {error}")
            raise
    return call


class WitWorld(wit_world.WitWorld):
    @reported
    def init(self, config: str, context: InitContext) -> OperatorInfo:
        try:
            parsed = parse_json(config)
        except ValueError as error:
            raise Err(f"config is not JSON: {error}")
        if not isinstance(parsed, dict):
            raise Err("config must be a table")
        SETTINGS[0] = Settings(parsed)
        HISTORY.clear()
        # The velocity history is kept per key: records of one key must meet one instance.
        velocity = SETTINGS[0].velocity
        distribution = Distribution_Any() if velocity is None else Distribution_Key([".".join(velocity[0])])
        return OperatorInfo([], distribution, "json")

    @reported
    def process(self, input: int, batch: Batch) -> Output:
        settings, out, rejected, flagged = SETTINGS[0], Builder(batch), [], 0
        for index, event in enumerate(batch.events):
            record, reason = read_record(batch.bytes[event.value.offset:event.value.offset + event.value.length])
            if reason is not None:
                rejected.append(Rejection(index, reason))
                continue
            verdict = score(record, event.timestamp)
            flagged += verdict["flagged"]
            if verdict["flagged"] or not settings.only_flagged:
                record[settings.field] = verdict
                try:
                    out.push(event, dump_json(record))
                except ValueError as error:
                    rejected.append(Rejection(index, f"the scored record is not JSON: {error}"))
        host.counter_add("flagged", flagged)
        return Output(out.build(), rejected, [])

    @reported
    def on_watermark(self, watermark: int) -> Batch:
        if SETTINGS[0] is not None and SETTINGS[0].velocity is not None:
            horizon = watermark - SETTINGS[0].velocity[1]
            for key in list(HISTORY):
                HISTORY[key] = [t for t in HISTORY[key] if t > horizon]
                if not HISTORY[key]:
                    del HISTORY[key]
            host.gauge_set("velocity_keys", float(len(HISTORY)))
        return Batch(b"", [], [])

    @reported
    def snapshot(self) -> State:
        return State(1, dump_json(HISTORY))

    @reported
    def restore(self, state: State) -> None:
        if state.version != 1:
            raise Err(f"cannot read state version {state.version}: this version reads 1")
        try:
            history = json.loads(state.bytes.decode("utf-8"))
        except ValueError as error:
            raise Err(f"state is not valid: {error}")
        def event_times(times) -> bool:
            return isinstance(times, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in times)
        if not isinstance(history, dict) or not all(event_times(times) for times in history.values()):
            raise Err("state is not valid: expected a table of event-time lists")
        HISTORY.clear()
        for key, times in history.items():
            # Keyed as this version keys them: version 1 wrote a number's double as JSON (1.0,
            # 1e-05), and two spellings of one value now share a history.
            try:
                key = canonical_text(parse_json(key))
            except ValueError:
                pass
            HISTORY[key] = sorted(HISTORY.get(key, []) + times)
