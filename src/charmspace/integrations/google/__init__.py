"""Google: OAuth and Gmail."""
