"""Regenerate trio_metrics/http/_prompb/*_pb2.py(i) from the .proto files beside them.

The .proto files are Prometheus' own ``prompb/types.proto`` and
``prompb/remote.proto`` of release 2.42.0 with the gogoproto options removed
(they only steer Go code generation; plain protoc cannot read them).
``--from DIR`` first copies them again from a Prometheus checkout's
``prompb/`` folder and removes those options.

    python -m pip install -e '.[dev]'     # grpcio-tools: protoc as a Python package
    python scripts/regenerate_prompb.py [--from ../prometheus/prompb]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from grpc_tools import protoc

PROMPB = Path(__file__).resolve().parent.parent / "trio_metrics" / "http" / "_prompb"
PROTOS = ("types.proto", "remote.proto")


def strip_gogoproto(text: str) -> str:
    """``text`` of a prompb .proto without its gogoproto import and field options."""
    text = re.sub(r'^import "gogoproto/gogo\.proto";\n', "", text, flags=re.MULTILINE)
    return re.sub(r" \[\(gogoproto\.\w+\) = \w+\]", "", text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source", type=Path, help="a Prometheus prompb/ folder")
    args = parser.parse_args()
    if args.source is not None:
        for name in PROTOS:
            text = (args.source / name).read_text()
            (PROMPB / name).write_text(strip_gogoproto(text))
    status = protoc.main(
        [
            "protoc",
            f"-I{PROMPB}",
            f"--python_out={PROMPB}",
            f"--pyi_out={PROMPB}",
            *(str(PROMPB / name) for name in PROTOS),
        ]
    )
    if status != 0:
        return int(status)
    # protoc writes top-level imports; the modules live in a package.
    for suffix in (".py", ".pyi"):
        path = PROMPB / f"remote_pb2{suffix}"
        text = path.read_text()
        text = re.sub(r"^import types_pb2", "from . import types_pb2", text, flags=re.MULTILINE)
        text = re.sub(r"^from types_pb2 import", "from .types_pb2 import", text, flags=re.MULTILINE)
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
