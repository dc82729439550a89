"""Tests of the CI cluster install (ci.core.cluster_*, python -m ci.cluster) without a cluster."""
