"""Clients of the services charms use: Google OAuth, Gmail, LLMs."""
