"""The text of plain keys by their bytes, remembered across batches.

A sender writes the same keys read after read (collectd, Telegraf and the
like send every series each interval), so a batch parser finds the ``str``
of nearly every key by a look-up instead of decoding it again. The same
``str`` objects go on to the store, whose dictionary then finds them by
identity, with their hash already computed.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Final

__all__ = ["KeyTexts"]


class KeyTexts:
    """Decodes columns of plain keys, remembering up to ``capacity`` of them.

    Only tokens already known to be printable ASCII without spaces
    (checked by the caller) are given to it; it refuses the two such
    tokens that are no key, ``*`` and the empty one. When full it forgets
    everything and starts over, so a sender of ever new keys costs a
    decode per key, as without it, and memory stays bounded.
    """

    def __init__(self, capacity: int = 16_384) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity: Final = capacity
        self._texts: dict[bytes, str] = {}

    def __len__(self) -> int:
        """How many keys are remembered now."""
        return len(self._texts)

    def decode(self, raw_keys: list[bytes]) -> list[str] | None:
        """The ``str`` of every key, in order, or ``None`` if one is ``*`` or empty."""
        texts = self._texts
        try:
            # Every key known: one C-level pass ("*" and b"" are never
            # remembered). An itemgetter of many items looks them up in one
            # call, faster than map(); of one item it gives no tuple.
            if len(raw_keys) > 1:
                return list(itemgetter(*raw_keys)(texts))
            return list(map(texts.__getitem__, raw_keys))
        except KeyError:
            pass
        if b"*" in raw_keys or b"" in raw_keys:
            return None
        keys = list(map(bytes.decode, raw_keys))
        if len(keys) > self.capacity:
            return keys
        if len(texts) + len(keys) > self.capacity:
            texts.clear()
        # A key remembered already keeps its str (the one the store holds).
        return list(map(texts.setdefault, raw_keys, keys))
