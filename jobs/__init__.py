"""Scheduled and background work: thin functions that call the services."""
