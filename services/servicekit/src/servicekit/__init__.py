"""Shared building blocks for the chat platform's Python services."""
