"""Sluice operator in Python: adds "scored": true to every JSON-object record.

Records that are not JSON objects are rejected (sent to the dead-letter sink).
"""
import json

import wit_world
from wit_world.imports import host
from wit_world.imports.types import Batch, Event, Header, Output, Rejection, Span, State
from componentize_py_types import Err


class BatchBuilder:
    """Builds a flat output batch: every byte string is appended to one buffer."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.events: list[Event] = []
        self.headers: list[Header] = []

    def _append(self, data: bytes) -> Span:
        offset = len(self.buf)
        self.buf += data
        return Span(offset, len(data))

    def push(self, key, value: bytes, timestamp: int, headers) -> None:
        key_span = None if key is None else self._append(key)
        value_span = self._append(value)
        first = len(self.headers)
        for name, hvalue in headers:
            self.headers.append(Header(self._append(name), self._append(hvalue)))
        self.events.append(Event(key_span, value_span, timestamp, first, len(self.headers) - first))

    def build(self) -> Batch:
        return Batch(bytes(self.buf), self.events, self.headers)


def records(batch: Batch):
    """Yields (index, key, value, timestamp, headers) with byte strings sliced out of batch.bytes."""
    data = memoryview(batch.bytes)

    def cut(span: Span) -> bytes:
        return bytes(data[span.offset:span.offset + span.length])

    for index, ev in enumerate(batch.events):
        hs = batch.headers[ev.first_header:ev.first_header + ev.header_count]
        yield (index, None if ev.key is None else cut(ev.key), cut(ev.value), ev.timestamp,
               [(cut(h.name), cut(h.value)) for h in hs])


# componentize-py creates a NEW WitWorld object for every exported call, so operator
# state must live at module level, not on `self`.
STATE = {"field": "scored", "seen": 0}


class WitWorld(wit_world.WitWorld):
    def init(self, config: str) -> None:
        try:
            cfg = json.loads(config)
        except ValueError as error:
            raise Err(f"config is not JSON: {error}")
        field = cfg.get("field", "scored")
        if not isinstance(field, str):
            raise Err("`field` must be a string")
        STATE["field"] = field
        STATE["seen"] = 0

    def process(self, batch: Batch) -> Output:
        out = BatchBuilder()
        rejected: list[Rejection] = []
        for index, key, value, ts, headers in records(batch):
            try:
                obj = json.loads(value)
            except ValueError as error:
                rejected.append(Rejection(index, f"payload is not valid JSON: {error}"))
                continue
            if not isinstance(obj, dict):
                rejected.append(Rejection(index, "payload is not a JSON object"))
                continue
            obj[STATE["field"]] = True
            out.push(key, json.dumps(obj, separators=(",", ":")).encode(), ts, headers)
        STATE["seen"] += len(batch.events)
        host.counter_add("scored", len(out.events))
        return Output(out.build(), rejected)

    def on_watermark(self, watermark: int) -> Batch:
        return Batch(b"", [], [])

    def snapshot(self) -> State:
        return State(1, json.dumps({"seen": STATE["seen"]}).encode())

    def restore(self, state: State) -> None:
        if state.version != 1:
            raise Err(f"unknown state version {state.version}")
        STATE["seen"] = json.loads(state.bytes)["seen"]
