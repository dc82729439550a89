"""End-to-end suite: written against one base URL (the ingress or the local stack's edge)."""
