"""Integrations with outside services: Google OAuth, Gmail, LLMs."""
