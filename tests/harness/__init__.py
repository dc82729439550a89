"""Test harness: real PostgreSQL and Redis servers started from local binaries for a test run."""
