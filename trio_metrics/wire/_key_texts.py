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
    """Decodes columns of plain keys, remembering up to ``capacity`` of them
    and up to ``max_bytes`` of their bytes.

    Only tokens already known to be printable ASCII without spaces
    (checked by the caller) are given to it; it refuses the two such
    tokens that are no key, ``*`` and the empty one. When full it forgets
    everything and starts over, so a sender of ever new keys costs a
    decode per key, as without it, and memory stays bounded whatever the
    keys' lengths (each remembered key is held twice, as bytes and as str,
    plus about 130 bytes of objects: some 10 MiB at most by default).
    """

    def __init__(self, capacity: int = 16_384, max_bytes: int = 4 * 1024 * 1024) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        if max_bytes < 1:
            raise ValueError("max_bytes must be at least 1")
        self.capacity: Final = capacity
        self.max_bytes: Final = max_bytes
        self._texts: dict[bytes, str] = {}
        # The bytes of the keys remembered (a key put again counts again:
        # the bound is kept, and reached a little early at worst).
        self._bytes = 0

    def __len__(self) -> int:
        """How many keys are remembered now."""
        return len(self._texts)

    @property
    def remembered_bytes(self) -> int:
        """At least the bytes of the keys remembered now (never over ``max_bytes``)."""
        return self._bytes

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
        size = sum(map(len, raw_keys))
        if len(keys) > self.capacity or size > self.max_bytes:
            return keys
        if len(texts) + len(keys) > self.capacity or self._bytes + size > self.max_bytes:
            texts.clear()
            self._bytes = 0
        self._bytes += size
        # A key remembered already keeps its str (the one the store holds).
        return list(map(texts.setdefault, raw_keys, keys))
