"""Benchmarks: ``python -m bench`` runs them all, each printing one JSON line."""
