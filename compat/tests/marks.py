"""Shared pytest marks for the compat suite."""

import os

EXTERNAL = bool(os.environ.get("COMPAT_BOOTSTRAP"))


def consumer_marks(consumer: str) -> list:
    """Marks for a consumer client's tests. None today: since samsa has consumer groups,
    kafkajs (which can only consume through a group) consumes like every other client."""
    return []
