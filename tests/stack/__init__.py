"""The local stack: every Python service as a real process on loopback behind an edge router.

`stack.local.LocalStack` is the library (used by the e2e suite's fixture); `python -m stack` the
CLI; `python -m stack.edge` the edge router alone. Nothing is imported here, so the edge process
starts with only the modules it needs.
"""
