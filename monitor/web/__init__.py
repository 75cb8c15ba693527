"""The daemon's HTTP side: health checks, Prometheus metrics and a read-only web view.

``server.WebServer`` is started by ``run`` (``monitor.app.run_forever``) on
``[http] listen``; ``metrics.Metrics`` is fed by ``Monitor.poll``/``Monitor.drain``;
``health`` holds liveness and readiness; ``views`` renders the pages; ``search``
parses the search form (the FTS5 query lives in ``monitor.store.sqlite_web``).
"""
