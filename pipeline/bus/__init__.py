"""Message buses: the in-memory one for embedded mode, Redis Streams for distributed mode."""

from pipeline.bus.base import Bus, DeadLetter, Message, dead_stream
from pipeline.bus.consume import decode_batch
from pipeline.bus.factory import create_bus
from pipeline.bus.memory import MemoryBus

STREAM_CLIPS = "xreid:clips"
STREAM_EMBEDDINGS = "xreid:embeddings"
GROUP_REID = "reid"
GROUP_MATCHER = "matcher"

__all__ = [
    "Bus",
    "DeadLetter",
    "GROUP_MATCHER",
    "GROUP_REID",
    "MemoryBus",
    "Message",
    "STREAM_CLIPS",
    "STREAM_EMBEDDINGS",
    "create_bus",
    "decode_batch",
    "dead_stream",
]
