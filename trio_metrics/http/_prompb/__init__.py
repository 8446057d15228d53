"""Prometheus' remote storage messages (``prompb``), as protoc generates them.

``types.proto`` and ``remote.proto`` are Prometheus' own, of release 2.42.0,
without their gogoproto options; ``scripts/regenerate_prompb.py`` makes the
``*_pb2.py`` modules and their ``.pyi`` stubs from them.
"""
