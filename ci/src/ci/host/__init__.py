"""Host mode: the check stages as processes on this machine (python -m ci.check)."""
