"""{{name}}: keeps the records whose numeric `field` is at least `min`.

Records without a numeric `field` are rejected: they go to the dead-letter output with the
reason. Built by `sluice plugin build` with componentize-py; the `wit_world` bindings are
generated from the runtime's WIT at build time.
"""
import json
import sys

import wit_world
from componentize_py_types import Err
from wit_world.imports import host
from wit_world.imports.types import Batch, Distribution_Any, InitContext, OperatorInfo, Output, Passed, Rejection, State


class Nowhere:
    """Where print() writes: the sandbox has no WASI, so writing to the real standard output
    would trap the call. Log with host.log(host.Level.INFO, "...") instead."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


sys.stdout = sys.stderr = Nowhere()

# componentize-py serves every call with a new WitWorld object: state lives at module level.
CONFIG = {"field": "price", "min": 0.0}
COUNTS = {"kept": 0}


def number_at(value: bytes, field: str):
    """The number at `field` of a JSON-object record, None when absent; raises ValueError."""
    try:
        # Bytes decoded here, not by json.loads: it would load the UTF-16 or UTF-32 codec for
        # bytes that look like them, and a module loaded after the build traps (no files).
        record = json.loads(value.decode("utf-8"))
    except ValueError as error:
        raise ValueError(f"payload is not valid JSON: {error}") from None
    if not isinstance(record, dict):
        raise ValueError("payload is not a JSON object")
    number = record.get(field)
    if isinstance(number, bool) or not isinstance(number, (int, float)):
        return None
    return number


def reported(method):
    """Tells the runtime why a call fails: an exception other than `Err` traps the call (its
    records are retried one by one, the failing one dead-lettered), and the message logged
    here first becomes the dead-letter reason, as a Rust panic's does."""
    # `process`, `on_watermark` and `snapshot` have no error result: an `Err` there traps too.
    traps_on_err = method.__name__ in ("process", "on_watermark", "snapshot")

    def call(*args):
        try:
            return method(*args)
        except Err as error:
            if traps_on_err:
                host.log(host.Level.ERROR, f"panic: Err: {getattr(error, 'value', error)}")
            raise
        except BaseException as error:
            host.log(host.Level.ERROR, f"panic: {type(error).__name__}: {error}")
            raise
    return call


class WitWorld(wit_world.WitWorld):
    @reported
    def init(self, config: str, context: InitContext) -> OperatorInfo:
        try:
            settings = json.loads(config)
        except ValueError as error:
            raise Err(f"config is not JSON: {error}")
        if not isinstance(settings, dict):
            raise Err("config must be a table")
        # Refuse misspelt keys with the message serde gives in Rust plugins.
        unknown = [key for key in settings if key not in ("field", "min")]
        if unknown:
            raise Err(f"unknown field `{unknown[0]}`, expected `field` or `min`")
        if not isinstance(settings.get("field"), str):
            raise Err("`field` must be a string")
        if isinstance(settings.get("min"), bool) or not isinstance(settings.get("min"), (int, float)):
            raise Err("`min` must be a number")
        CONFIG["field"], CONFIG["min"] = settings["field"], settings["min"]
        COUNTS["kept"] = 0
        # No side outputs; any instance may judge any record (the counts are per instance);
        # values as JSON text. An operator keeping state per group returns Distribution_Key([fields]).
        return OperatorInfo([], Distribution_Any(), "json")

    @reported
    def process(self, input: int, batch: Batch) -> Output:
        kept, rejected = [], []
        for index, event in enumerate(batch.events):
            value = batch.bytes[event.value.offset:event.value.offset + event.value.length]
            try:
                number = number_at(value, CONFIG["field"])
            except ValueError as error:
                rejected.append(Rejection(index, str(error)))
                continue
            if number is None:
                rejected.append(Rejection(index, f"no numeric \"{CONFIG['field']}\""))
            elif number >= CONFIG["min"]:
                kept.append(Passed(index, 0))
        COUNTS["kept"] += len(kept)
        host.counter_add("kept", len(kept))
        # Kept records are passed on by position (to output 0, the main one): the runtime takes
        # them from its own copy of the batch, so nothing is copied back.
        return Output(Batch(b"", [], []), rejected, kept)

    @reported
    def on_watermark(self, watermark: int) -> Batch:
        return Batch(b"", [], [])

    @reported
    def snapshot(self) -> State:
        return State(1, json.dumps(COUNTS).encode())

    @reported
    def restore(self, state: State) -> None:
        # Version 0 without bytes is no state (a stateless version's snapshot): nothing to restore.
        if state.version == 0 and not state.bytes:
            return
        if state.version != 1:
            raise Err(f"cannot read state version {state.version}")
        try:
            COUNTS["kept"] = int(json.loads(state.bytes.decode("utf-8"))["kept"])
        except (ValueError, KeyError, TypeError) as error:
            raise Err(f"state is not valid: {error!r}")
