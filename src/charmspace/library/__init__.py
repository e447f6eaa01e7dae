"""Patterns that ship with charmspace, instantiable by name."""
