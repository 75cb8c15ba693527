"""Shared set-up for the fault suite: a feed server with a healthy feed whose content
keeps growing, a second static feed, a fake Slack, and clean-up that always runs."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.faults.harness import REPO, Daemon, StoryFeed, start_slack
from tests.faults.stories import story
from tests.support.fake_slack import FakeSlack
from tests.support.feed_server import TimedServer


@dataclass
class Bench:
    workdir: Path
    server: TimedServer
    healthy: StoryFeed
    wire: StoryFeed
    slack: FakeSlack | None
    daemons: list[Daemon] = field(default_factory=list)
    extra: list[object] = field(default_factory=list)

    def jail_log(self) -> Path:
        return self.workdir / "netjail.log"


@pytest.fixture(scope="session")
def stories_match() -> None:
    """Every generated story must be a match for the shipped model, or "lost" would
    blame the daemon for the classifier's verdict."""
    lines = "".join(
        json.dumps({"id": str(n), "title": story(n)[0], "summary": story(n)[1]}) + "\n"
        for n in range(16)
    )
    result = subprocess.run([sys.executable, "-m", "monitor", "score"], input=lines,
                            capture_output=True, text=True, cwd=REPO, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    verdicts = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert len(verdicts) == 16 and all(v["match"] for v in verdicts), verdicts


@pytest.fixture
def bench(tmp_path: Path, stories_match: None) -> Iterator[Bench]:
    server = TimedServer().start()
    healthy = StoryFeed(server, "/healthy.xml", "healthy", initial=4, tick=5.0)
    wire = StoryFeed(server, "/wire.xml", "wire", initial=3, tick=None)
    slack = start_slack()
    state = Bench(tmp_path, server, healthy, wire, slack)
    healthy.start()
    try:
        yield state
    finally:
        for daemon in state.daemons:
            daemon.kill()
        healthy.stop()
        if state.slack is not None:
            state.slack.close()
        for thing in state.extra:
            close = getattr(thing, "close", None) or getattr(thing, "kill", None)
            if close is not None:
                close()
        server.close()
