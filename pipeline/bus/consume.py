"""Decoding a batch of bus messages, with malformed entries dead-lettered instead of crashing.

Every consuming stage (re-ID worker, matcher) needs the same first step: turn payloads into
contract objects, and move anything that fails the contract (random bytes, an unknown wire
version, missing fields, the wrong message kind for this stream) to the dead-letter stream with
the decoder's reason, so one bad producer cannot stop the valid entries behind it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TypeVar

from models.errors import ContractError
from pipeline.bus.base import Bus, Message
from pipeline.bus.messages import Clip, Embedding, decode_message

log = logging.getLogger(__name__)

M = TypeVar("M", Clip, Embedding)


def decode_batch(bus: Bus, stream: str, group: str, messages: Sequence[Message],
                 expect: type[M]) -> list[tuple[Message, M]]:
    """Decode ``messages`` as ``expect``; dead-letter (and so ack) every one that is not valid.

    Args:
        bus, stream, group: where the messages were read, so rejects can be dead-lettered there.
        messages: a batch from ``Bus.read`` or ``Bus.claim_stale``.
        expect: ``Clip`` or ``Embedding``: the only kind this stream may carry.

    Returns:
        ``(message, decoded)`` pairs of the valid entries, in the batch's order. They are still
        pending: the caller acks them after its durable write.
    """
    out: list[tuple[Message, M]] = []
    for msg in messages:
        try:
            obj = decode_message(msg.data)
            if not isinstance(obj, expect):
                raise ContractError(f"{type(obj).__name__} on a stream of {expect.__name__} messages")
        except ContractError as e:
            bus.dead_letter(stream, group, msg, f"ContractError: {e}")
            continue
        out.append((msg, obj))
    return out
