"""Assistant reply service."""
