"""The local app that `make run` starts: every Python service as a real process on loopback,
PostgreSQL and Redis of its own, behind an edge.

`ci.localapp.stack.LocalStack` is the library (the e2e suite's fixture uses it);
`python -m ci.localapp` the CLI. Nothing is imported here, so each process loads only what it
needs.
"""
