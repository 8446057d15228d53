"""Where points live: the :class:`Store` protocol, the in-memory
:class:`MetricStore`, and the durable store (write-ahead log, snapshots, data
directory): :class:`DurableStore` decides what is written and acknowledged
when, and its :class:`LogFile` does the blocking file work.

It knows nothing of sockets or the wire format.
"""

from __future__ import annotations

from ._choice import (
    DataDirStorage,
    ExistingStore,
    MemoryStorage,
    OpenedStorage,
    Storage,
    open_storage,
)
from ._copy_budget import (
    BYTES_PER_POINT,
    DEFAULT_COPY_BUDGET_BYTES,
    CopyBudget,
    NeedRoom,
    Taken,
)
from ._data_dir import (
    DamagedFileError,
    DataDirError,
    DataDirLock,
    DataDirLockedError,
    Recovery,
    fsync_directory,
    log_path,
    recover,
    snapshot_path,
    write_snapshot_file,
)
from ._durable import (
    DEFAULT_COMPACT_MIN_BYTES,
    DurableStore,
    FsyncPolicy,
    open_durable_store,
)
from ._key_pages import KeyPages
from ._log_file import LogFile
from ._log_format import (
    FRAME_HEADER_SIZE,
    LOG_MAGIC,
    MAX_RECORD_SIZE,
    SNAPSHOT_MAGIC,
    Damage,
    FormatError,
    Scan,
    SeriesRecord,
    decode_batch,
    decode_deletion,
    decode_log_record,
    decode_series,
    decode_trailer,
    encode_batch,
    encode_deletion,
    encode_series,
    encode_trailer,
    frame,
    scan_records,
)
from ._store import (
    KEY_PAGE,
    MetricStore,
    Series,
    Store,
    StoreUnavailableError,
)

__all__ = [
    "BYTES_PER_POINT",
    "DEFAULT_COMPACT_MIN_BYTES",
    "DEFAULT_COPY_BUDGET_BYTES",
    "FRAME_HEADER_SIZE",
    "KEY_PAGE",
    "LOG_MAGIC",
    "MAX_RECORD_SIZE",
    "SNAPSHOT_MAGIC",
    "CopyBudget",
    "Damage",
    "DamagedFileError",
    "DataDirError",
    "DataDirLock",
    "DataDirLockedError",
    "DataDirStorage",
    "DurableStore",
    "ExistingStore",
    "FormatError",
    "FsyncPolicy",
    "KeyPages",
    "LogFile",
    "MemoryStorage",
    "MetricStore",
    "NeedRoom",
    "OpenedStorage",
    "Recovery",
    "Scan",
    "Series",
    "SeriesRecord",
    "Storage",
    "Store",
    "StoreUnavailableError",
    "Taken",
    "decode_batch",
    "decode_deletion",
    "decode_log_record",
    "decode_series",
    "decode_trailer",
    "encode_batch",
    "encode_deletion",
    "encode_series",
    "encode_trailer",
    "frame",
    "fsync_directory",
    "log_path",
    "open_durable_store",
    "open_storage",
    "recover",
    "scan_records",
    "snapshot_path",
    "write_snapshot_file",
]
