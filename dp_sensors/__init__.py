"""Triggers, events and the webhook receiver: how runs start."""
