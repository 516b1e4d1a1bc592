"""Delivering the outbox's events to hooks: webhooks and commands (see docs/events.md)."""
