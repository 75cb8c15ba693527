"""Fault-injection suite: the real daemon under storage, signal, Slack and network faults."""
