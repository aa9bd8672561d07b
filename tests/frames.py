"""The server→client frame schemas of docs/websocket-protocol.md, and the check every socket test applies.

Each ```json frame=<type> block in the doc is a JSON Schema for one frame type; the ```json frame-defs block
holds shared definitions (`#/$defs/…`). `validate_frame` fails on a frame whose type has no block, or that
does not match its block (Zulip's test_events.py habit: the docs are the contract, the tests hold the server
to it).
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

from jsonschema import Draft202012Validator

DOC = Path(__file__).resolve().parents[1] / "docs" / "websocket-protocol.md"
_BLOCK = re.compile(r"^```json (frame=(?P<name>[a-z0-9_.]+)|(?P<defs>frame-defs))\n(?P<body>.*?)^```", re.M | re.S)


@functools.cache
def frame_validators() -> dict[str, Draft202012Validator]:
    text = DOC.read_text(encoding="utf-8")
    defs: dict = {}
    frames: dict[str, dict] = {}
    for match in _BLOCK.finditer(text):
        body = json.loads(match["body"])
        if match["defs"]:
            defs.update(body)
        else:
            assert match["name"] not in frames, f"two schemas for frame {match['name']!r} in {DOC.name}"
            frames[match["name"]] = body
    validators = {}
    for name, schema in frames.items():
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema, "$defs": defs}
        Draft202012Validator.check_schema(schema)
        validators[name] = Draft202012Validator(schema)
    return validators


def validate_frame(frame: object) -> None:
    """AssertionError unless `frame` (a decoded JSON text frame) matches its documented schema."""
    assert isinstance(frame, dict) and isinstance(frame.get("type"), str), f"not a frame: {frame!r}"
    validator = frame_validators().get(frame["type"])
    assert validator is not None, (
        f"the server sent a {frame['type']!r} frame, which docs/websocket-protocol.md does not document "
        f"(add a ```json frame={frame['type']} block)")
    errors = sorted(validator.iter_errors(frame), key=lambda e: list(e.absolute_path))
    assert not errors, (f"{frame['type']!r} frame does not match its schema in docs/websocket-protocol.md: "
                        + "; ".join(f"{'/'.join(map(str, e.absolute_path)) or '(frame)'}: {e.message}"
                                    for e in errors[:5]) + f"\n{json.dumps(frame, ensure_ascii=False)[:800]}")


validated_count = [0]  # frames checked in this test session (the self-test asserts it moves)


def install(monkeypatch) -> None:
    """Validate every text frame any in-process socket test receives (channels' WebsocketCommunicator)."""
    from channels.testing import WebsocketCommunicator

    original = WebsocketCommunicator.receive_from

    async def receive_from(self, timeout=1):
        text = await original(self, timeout)
        if isinstance(text, str):
            validate_frame(json.loads(text))
            validated_count[0] += 1
        return text

    monkeypatch.setattr(WebsocketCommunicator, "receive_from", receive_from)
