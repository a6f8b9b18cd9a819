"""Helpers shared by the ingest tests: the spec's examples, and common call arguments.

``examples/`` holds the example bodies and code snippets of the two spec files, copied
verbatim (prose examples as Markdown renders them: ``\\_`` is ``_`` and ``<a@b>`` is
``a@b``). ``test_ingest_spec_examples.py`` checks each one still occurs in the spec when the
spec is available.
"""

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).parent / "examples"
TAXONOMY = EXAMPLES / "taxonomy"
REPO = Path(__file__).resolve().parents[2]
SPEC_DIR = REPO.parent / "shared" / "spec"

RECEIVED_AT = datetime(2026, 5, 18, 16, 0, 0, tzinfo=UTC)
#: What the JavaScript examples' ``new Date().toISOString()`` returns, frozen.
JS_NOW = "2026-05-18T15:59:59.123Z"

CONTEXT: dict[str, Any] = {
    "tenant": "casino-a",
    "environment": "live",
    "client_id": "sdk-test/1.0",
    "received_at": RECEIVED_AT,
}


def example(name: str) -> bytes:
    """An example file's bytes, without the final newline the file adds."""
    return (EXAMPLES / name).read_bytes().rstrip(b"\n")


def example_text(name: str) -> str:
    return example(name).decode()


def taxonomy_samples() -> dict[str, bytes]:
    """Event name -> the taxonomy's sample JSON of one event."""
    return {path.stem: path.read_bytes().rstrip(b"\n") for path in sorted(TAXONOMY.glob("*.json"))}


def markdown_rendered(text: str) -> str:
    """Markdown text as rendered: backslash escapes dropped, e-mail autolinks unwrapped."""
    text = re.sub(r"\\([\\`*_{}\[\]()#+\-.!<>|])", r"\1", text)
    return re.sub(r"<([^<>\s]+@[^<>\s]+)>", r"\1", text)


def balanced(text: str, start: int) -> str:
    """The bracketed expression starting at ``text[start]`` (``(``, ``[`` or ``{``)."""
    pairs = {"(": ")", "[": "]", "{": "}"}
    stack: list[str] = []
    quote = ""
    for position in range(start, len(text)):
        char = text[position]
        if quote:
            if char == quote and text[position - 1] != "\\":
                quote = ""
        elif char in "\"'`":
            quote = char
        elif char in pairs:
            stack.append(pairs[char])
        elif stack and char == stack[-1]:
            stack.pop()
            if not stack:
                return text[start : position + 1]
    raise ValueError("unbalanced expression")


def call_argument(source: str, call: str) -> str:
    """The argument list (without the parentheses) of the last ``call(`` in JavaScript."""
    start = source.rindex(call + "(") + len(call)
    return balanced(source, start)[1:-1]


def js_literal(text: str) -> Any:
    """A JavaScript object/array literal from the examples, as Python data.

    Enough JavaScript for the spec's snippets: bare keys, trailing commas, and
    ``new Date().toISOString()`` (frozen to ``JS_NOW``).
    """
    text = text.replace("new Date().toISOString()", json.dumps(JS_NOW))
    text = re.sub(r"([{,]\s*)([A-Za-z_]\w*)\s*:", r'\1"\2":', text)
    text = re.sub(r",(\s*[}\]])", r"\1", text)
    return json.loads(text)
