"""Benchmarks for the poller (run ``python bench/poll.py``); not part of the installed package."""
