"""Google: OAuth (sign-in and token refresh) and Gmail."""
