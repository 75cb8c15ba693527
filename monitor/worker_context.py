"""The one multiprocessing context every worker process of the daemon is started from.

Why forkserver (spawn where unavailable): forking the daemon itself would copy its
threads' locks and its memory. The forkserver preloads only ``monitor.parse_pool``
(light: no scikit-learn), because parse workers run under an address-space limit that
inherited mappings would eat into; classifier workers import the model in their own
initializer instead.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing.context import BaseContext


def worker_context() -> BaseContext:
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        # Applies when this process first starts its forkserver; harmless afterwards.
        context.set_forkserver_preload(["monitor.parse_pool"])
        return context
    return multiprocessing.get_context("spawn")
