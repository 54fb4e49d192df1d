"""Plumbing shared by every Cadenza process: servers, channels, health, metrics, errors, logs."""
