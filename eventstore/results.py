"""One result per appended envelope, in the order given."""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = ["AppendResult", "Status"]

Status = Literal["stored", "duplicate", "conflict"]


class AppendResult(msgspec.Struct, frozen=True, gc=False):
    """stored: appended at `position`.

    duplicate: the key was already in the log with the same content, at `position`.
    conflict: the key was already there with different content, at `position`;
    `original` holds the stored payload so the caller can say which fields differ.
    """

    status: Status
    position: int
    original: bytes | None = None
