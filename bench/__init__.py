"""Benchmarks: `make bench` builds its inputs, runs our code and its anchors, prints a table."""
