"""Each Python service's image replayed on the host: its Dockerfile's dependency closure, its
CMD and every command the charts run from it (tests/images)."""
