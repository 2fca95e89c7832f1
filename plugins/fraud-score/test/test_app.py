"""Native unit tests of app.py, run with `python3 plugins/fraud-score/test/test_app.py`.

The bindings componentize-py generates (`wit_world`, `componentize_py_types`) exist only in a
component build, so small stand-ins are installed before app.py is imported: records go in and
out as the runtime would hand them, as a batch of spans into one buffer.
"""
import json
import os
import sys
import types
import unittest
from collections import namedtuple


def install_binding_stand_ins() -> None:
    """Modules standing in for the generated bindings, with the names app.py imports."""
    class Err(Exception):
        """componentize-py's error result: its message is the refusal."""

    class WitWorld:
        pass

    imports = types.ModuleType("wit_world.imports")
    imports.host = types.SimpleNamespace(counter_add=lambda name, value: None, gauge_set=lambda name, value: None,
                                         log=lambda level, message: None, Level=types.SimpleNamespace(ERROR=4))
    type_module = types.ModuleType("wit_world.imports.types")
    type_module.Span = namedtuple("Span", "offset length")
    type_module.Header = namedtuple("Header", "name value")
    type_module.Event = namedtuple("Event", "key value timestamp first_header header_count flags fields")
    type_module.Batch = namedtuple("Batch", "bytes events headers")
    type_module.Rejection = namedtuple("Rejection", "index reason")
    type_module.Output = namedtuple("Output", "batch rejected side")
    type_module.OperatorInfo = namedtuple("OperatorInfo", "outputs distribution encoding")
    type_module.State = namedtuple("State", "version bytes")
    type_module.InitContext = object
    type_module.Distribution_Any = lambda: "any"
    type_module.Distribution_Key = lambda keys: ("key", keys)
    world = types.ModuleType("wit_world")
    world.WitWorld, world.imports = WitWorld, imports
    imports.types = type_module
    sys.modules.update({"wit_world": world, "wit_world.imports": imports, "wit_world.imports.types": type_module,
                        "componentize_py_types": types.SimpleNamespace(Err=Err)})


install_binding_stand_ins()
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import app  # noqa: E402
from wit_world.imports.types import Batch, Event, Span  # noqa: E402


def batch_of(*payloads: bytes) -> Batch:
    """A batch of these payloads, at event times 1, 2, ..."""
    buffer, events = b"", []
    for time, payload in enumerate(payloads, start=1):
        events.append(Event(None, Span(len(buffer), len(payload)), time, 0, 0, 0, None))
        buffer += payload
    return Batch(buffer, events, [])


def run(config: dict, *payloads: bytes):
    """The records the scorer emits for `payloads` and its rejections as (index, reason)."""
    operator = app.WitWorld()
    operator.init(json.dumps(config), None)
    output = operator.process(0, batch_of(*payloads))
    emitted = [output.batch.bytes[e.value.offset:e.value.offset + e.value.length].decode() for e in output.batch.events]
    return emitted, [(rejection.index, rejection.reason) for rejection in output.rejected]


def refusal(config: dict) -> str:
    """The message init refuses `config` with ("" if it accepts it)."""
    try:
        app.WitWorld().init(json.dumps(config), None)
    except sys.modules["componentize_py_types"].Err as error:
        return str(error)
    return ""


BIG = {"rules": [{"name": "big", "field": "price", "op": ">", "value": 400}]}


class NonFiniteNumbers(unittest.TestCase):
    def test_records_with_numbers_beyond_a_double_are_rejected_not_written_as_infinity(self):
        huge_integer = b'{"ts":4,"price":1' + b"0" * 400 + b"}"
        emitted, rejected = run(BIG, b'{"ts":1,"price":1e400}', b'{"ts":2,"other":-1e999}', b'{"ts":3,"price":500}', huge_integer)
        self.assertEqual(emitted, ['{"ts":3,"price":500,"fraud":{"score":1.0,"flagged":true,"reasons":["big"]}}'])
        self.assertEqual([index for index, _ in rejected], [0, 1, 3])
        self.assertIn("the number 1e400 is beyond the range of a 64-bit float", rejected[0][1])
        self.assertIn("the number -1e999 is beyond the range of a 64-bit float", rejected[1][1])
        self.assertIn("an integer of 401 digits is beyond the range of a 64-bit float", rejected[2][1])

    def test_nan_and_infinity_literals_are_rejected(self):
        emitted, rejected = run(BIG, b'{"ts":1,"price":NaN}', b'{"ts":2,"price":Infinity}', b'{"ts":3,"price":-Infinity}')
        self.assertEqual(emitted, [])
        self.assertEqual([reason for _, reason in rejected], ["payload is refused: NaN is not a JSON value",
                                                            "payload is refused: Infinity is not a JSON value",
                                                            "payload is refused: -Infinity is not a JSON value"])

    def test_output_is_strict_json(self):
        with self.assertRaises(ValueError):
            app.dump_json({"price": float("inf")})


class ConfigurationRefusals(unittest.TestCase):
    def test_ordering_operators_need_a_numeric_value(self):
        for op in (">", ">=", "<", "<="):
            self.assertEqual(refusal({"rules": [{"name": "r", "field": "x", "op": op}]}),
                             f"rules[0]: `{op}` needs a numeric `value`, got nothing")
        self.assertEqual(refusal({"rules": [{"name": "r", "field": "x", "op": ">", "value": "10"}]}),
                         'rules[0].value: `>` needs a numeric `value`, got "10"')
        self.assertEqual(refusal({"rules": [{"name": "r", "field": "x", "op": ">", "value": True}]}),
                         "rules[0].value: `>` needs a numeric `value`, got true")
        self.assertEqual(refusal({"rules": [{"name": "r", "field": "x", "op": "==", "value": "a"}]}), "")

    def test_a_threshold_the_capped_score_cannot_reach_is_refused(self):
        rules = [{"name": "big", "field": "x", "weight": 2.5}]
        self.assertEqual(refusal({"rules": rules, "threshold": 2}),
                         "`threshold` must be at most 1, got 2: the score is capped at 1, so no record would be flagged")
        self.assertEqual(refusal({"rules": rules, "threshold": 1}), "")

    def test_a_threshold_every_record_reaches_and_negative_weights_are_refused(self):
        rules = [{"name": "r", "field": "price", "op": ">", "value": 1}]
        self.assertEqual(refusal({"rules": rules, "threshold": 0}),
                         "`threshold` must be above 0, got 0: every record, matching no rule, would be flagged")
        self.assertIn("must not be negative", refusal({"rules": [dict(rules[0], weight=-0.5)]}))
        self.assertIn("must not be negative", refusal({"rules": rules, "velocity": {"key": "u", "window": 10, "weight": -1}}))

    def test_an_empty_rule_field_is_refused(self):
        self.assertEqual(refusal({"rules": [{"name": "r", "field": "", "op": "exists"}]}),
                         'rules[0].field: must be a field path (names separated by dots), got ""')
        self.assertIn('got "a..b"', refusal({"rules": [{"name": "r", "field": "a..b"}]}))

    def test_velocity_window_and_max_events_must_be_positive(self):
        self.assertEqual(refusal({"velocity": {"key": "user", "window": 0}}),
                         "velocity.window: `window` must be a whole number of milliseconds of at least 1, got 0")
        self.assertIn("`window` must be", refusal({"velocity": {"key": "user", "window": -5}}))
        self.assertIn("`window` must be", refusal({"velocity": {"key": "user"}}))
        self.assertEqual(refusal({"velocity": {"key": "user", "window": 1000, "max_events": 0}}),
                         "velocity.max_events: `max_events` (optional, default 10) must be a whole number of at least 1, got 0")
        self.assertEqual(refusal({"velocity": {"key": "user", "window": 1000}}), "")

    def test_velocity_messages_name_the_key_at_fault_not_optional_ones_as_needed(self):
        self.assertEqual(refusal({"velocity": {"window": 1000}}), "velocity: `key` must be a string field path, got nothing")
        self.assertEqual(refusal({"velocity": {"key": "u", "window": 1000, "weight": "x"}}),
                         'velocity.weight: `weight` (optional, default 1) must be a number, got "x"')


def flagged_ids(config: dict, *payloads: bytes) -> list:
    """The `id` of each record the scorer flags."""
    emitted, _ = run(config, *payloads)
    return [json.loads(record)["id"] for record in emitted if json.loads(record)["fraud"]["flagged"]]


class Comparisons(unittest.TestCase):
    def test_a_dotted_path_reads_a_top_level_field_spelt_like_it_when_nothing_is_nested_there(self):
        self.assertEqual(app.lookup({"user.id": "u1"}, ["user", "id"]), "u1")
        self.assertEqual(app.lookup({"user": {"id": "u2"}, "user.id": "u1"}, ["user", "id"]), "u2")
        self.assertIs(app.lookup({"user": 5, "x": 1}, ["user", "id"]), app.MISSING)

    def test_numeric_segments_index_arrays(self):
        config = {"rules": [{"name": "big", "field": "items.0.price", "op": ">", "value": 400}]}
        self.assertEqual(flagged_ids(config, b'{"id":1,"items":[{"price":500}]}', b'{"id":2,"items":[{"price":5}]}',
                                     b'{"id":3,"items":[]}', b'{"id":4,"items":{"0":{"price":700}}}'), [1, 4])

    def test_equality_is_canonical_and_a_boolean_is_not_a_number(self):
        payloads = [b'{"id":1,"v":1}', b'{"id":2,"v":1.0}', b'{"id":3,"v":1e0}', b'{"id":4,"v":true}', b'{"id":5,"v":"1"}',
                    b'{"id":6,"v":0}', b'{"id":7,"v":false}', b'{"id":8}']

        def rule(op, value):
            return {"rules": [{"name": "r", "field": "v", "op": op, "value": value}]}
        self.assertEqual(flagged_ids(rule("==", 1), *payloads), [1, 2, 3])
        self.assertEqual(flagged_ids(rule("==", False), *payloads), [7])
        self.assertEqual(flagged_ids(rule("in", [1, "a"]), *payloads), [1, 2, 3])
        self.assertEqual(flagged_ids(rule("!=", 1), *payloads), [4, 5, 6, 7, 8])
        self.assertEqual(flagged_ids(rule("not_in", [0]), *payloads), [1, 2, 3, 4, 5, 7, 8])
        big = [b'{"id":1,"v":18446744073709551617}', b'{"id":2,"v":1.8446744073709551617e19}', b'{"id":3,"v":18446744073709551618}']
        self.assertEqual(flagged_ids(rule("==", 18446744073709551617), *big), [1, 2])
        objects = [b'{"id":1,"v":{"a":1,"b":[2]}}', b'{"id":2,"v":{"b":[2.0],"a":1}}', b'{"id":3,"v":{"a":1}}']
        self.assertEqual(flagged_ids(rule("==", {"a": 1, "b": [2]}), *objects), [1, 2])

    def test_the_velocity_key_is_canonical(self):
        config = {"velocity": {"key": "u", "window": 1000, "max_events": 1}}
        self.assertEqual(flagged_ids(config, b'{"id":1,"u":1e0}', b'{"id":2,"u":1}', b'{"id":3,"u":true}'), [2])
        self.assertEqual(app.canonical_text({"b": [1.50, 2], "a": "x"}), '{"a": "x", "b": [1.5, 2]}')
        self.assertEqual(app.canonical_text(app.parse_json(b"1e20")), "100000000000000000000")

    def test_distinct_long_numbers_are_distinct_keys(self):
        self.assertNotEqual(app.canonical_text(app.parse_json(b"123456789012345678901234567890123")),
                            app.canonical_text(app.parse_json(b"123456789012345678901234567890999")))
        self.assertEqual(app.canonical_text(app.parse_json(b"0.1234567890123456789012345678901234")),
                         "0.1234567890123456789012345678901234")

    def test_version_1_history_is_keyed_as_this_version_keys_it(self):
        operator = app.WitWorld()
        operator.init(json.dumps({"velocity": {"key": "u", "window": 1000, "max_events": 2}}), None)
        old = {"1.0": [1], "1": [2], "\"a\"": [3], "not json": [4]}
        operator.restore(sys.modules["wit_world.imports.types"].State(1, json.dumps(old).encode()))
        self.assertEqual(app.HISTORY, {"1": [1, 2], "\"a\"": [3], "not json": [4]})

    def test_odd_state_and_huge_exponents_are_refused_or_read_not_trapped(self):
        operator = app.WitWorld()
        operator.init(json.dumps({"velocity": {"key": "u", "window": 1000}}), None)
        state = sys.modules["wit_world.imports.types"].State
        with self.assertRaises(sys.modules["componentize_py_types"].Err):
            operator.restore(state(1, b'{"\\"a\\"": [1, "x"]}'))
        emitted, rejected = run(BIG, b'{"id":1,"price":1e-9999999999999999999}')
        self.assertEqual((len(emitted), rejected), (1, []))

    def test_a_name_given_twice_counts_by_its_first_value_as_the_keyed_exchange_reads_it(self):
        config = {"rules": [{"name": "r", "field": "u", "op": "==", "value": "a"}]}
        self.assertEqual(flagged_ids(config, b'{"id":1,"u":"a","u":"b"}', b'{"id":2,"u":"b","u":"a"}'), [1])

    def test_unreadable_payloads_are_explained(self):
        _, rejected = run(BIG, b'{"price":"a\xffb"}', b'{"price":1' + b"0" * 5000 + b"}")
        self.assertEqual(rejected[0], (0, "payload is not valid JSON: byte 0xFF at offset 11 is not UTF-8"))
        self.assertEqual(rejected[1], (1, "payload is refused: an integer of 5001 digits is beyond the range of a 64-bit float"))

    def test_rules_that_cannot_mean_anything_are_refused(self):
        self.assertEqual(refusal({"rules": [{"name": "r", "field": "a", "op": "=="}]}), "rules[0]: `==` needs a `value` to compare with")
        self.assertEqual(refusal({"rules": [{"name": "r", "field": "a", "op": "exists", "value": 5}]}), "rules[0].value: `exists` takes no `value`")
        self.assertIn("must not be empty", refusal({"rules": [{"name": "", "field": "a"}]}))
        self.assertEqual(refusal({"rules": [{"name": "r", "field": "a", "op": "==", "value": None}]}), "")

    def test_refusals_start_with_the_path_of_the_value_at_fault_for_the_runtime_to_point_at(self):
        rules = [{"name": "a", "field": "x"}, {"name": "b", "field": "x", "op": "bigger"}]
        self.assertEqual(refusal({"rules": rules}), 'rules[1].op: unknown op "bigger" (one of ' + ", ".join(app.OPERATORS) + ")")
        self.assertEqual(refusal({"rules": [{"name": "a", "field": "x"}, {"name": "a", "field": "y"}]}),
                         'rules[1].name: rule names must be unique, and "a" is also the name of rules[0]')
        self.assertEqual(refusal({"rules": [{"name": "a", "field": "x", "weight": "high"}]}), 'rules[0].weight: must be a number, got "high"')
        self.assertEqual(refusal({"rules": [{"field": "x"}]}), "rules[0]: every rule needs a string `name`, got nothing")
        self.assertEqual(refusal({"rules": [{"name": 5, "field": "x"}]}), "rules[0].name: every rule needs a string `name`, got 5")
        self.assertEqual(refusal({"velocity": {"key": "a..b", "window": 10}}),
                         'velocity.key: must be a field path (names separated by dots), got "a..b"')
        self.assertTrue(refusal({"rules": [{"name": "a", "field": "x", "typo": 1}]}).startswith("rules[0]: unknown field `typo`"))


if __name__ == "__main__":
    unittest.main()
