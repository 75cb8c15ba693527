"""deploy/: the systemd unit passes `systemd-analyze verify`, and the Dockerfile is checked as far
as a machine without a Docker engine allows: parsed (non-root USER, HEALTHCHECK against
/healthz without curl, the Procfile's command), and its build stage run as a script (the
files it COPYs build a wheel that, installed alone, starts the CLI with the packaged model
and default config)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
UNIT = DEPLOY / "news-monitor.service"
DOCKERFILE = DEPLOY / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def _unit() -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key, []).append(value)
    return sections


def test_unit_has_what_the_operator_relies_on() -> None:
    service = _unit()["Service"]
    assert service["Type"] == ["simple"]
    assert service["ExecStart"][0].endswith("python -m monitor run")
    assert service["Restart"] == ["on-failure"]
    assert service["RestartPreventExitStatus"] == ["2"]  # a config error does not loop
    assert service["StateDirectory"] == ["news-monitor"]
    assert service["EnvironmentFile"] == ["/etc/news-monitor/env"]
    assert service["User"] == ["news-monitor"]
    assert service["NoNewPrivileges"] == ["yes"] and service["ProtectSystem"] == ["strict"]
    assert service["ReadWritePaths"] == ["/var/lib/news-monitor"]
    database = next(v for v in service["Environment"] if v.startswith("MONITOR_DATABASE_URL"))
    assert database.endswith("sqlite:////var/lib/news-monitor/monitor.db")
    assert not any("xox" in v for values in service.values() for v in values)  # no secrets


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed on this machine")
def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify checks that ExecStart's binary exists: point it at this interpreter.
    unit = tmp_path / "news-monitor.service"
    unit.write_text(UNIT.read_text().replace("/opt/news-monitor/bin/python", sys.executable))
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                          text=True, timeout=60)
    problems = [line for line in (done.stdout + done.stderr).splitlines()
                if "news-monitor.service" in line]
    assert done.returncode == 0 and not problems, done.stdout + done.stderr


def test_dockerfile_runs_unprivileged_with_a_healthcheck() -> None:
    steps = _instructions()
    final = steps[max(i for i, (word, _) in enumerate(steps) if word == "FROM"):]
    assert final[0][1].startswith("python:3.11-slim")
    users = [args for word, args in final if word == "USER"]
    assert users and users[-1] not in ("root", "0", "0:0")
    health = [args for word, args in final if word == "HEALTHCHECK"]
    assert len(health) == 1 and "/healthz" in health[0] and "curl" not in health[0]
    assert "127.0.0.1:8787" in health[0]  # the default [http] listen
    cmd = next(args for word, args in final if word == "CMD")
    procfile = (REPO / "Procfile").read_text().split(":", 1)[1].split()
    assert cmd.startswith("[") and [s.strip(' "') for s in cmd.strip("[]").split(",")] == procfile
    env = " ".join(args for word, args in final if word == "ENV")
    assert "MONITOR_DATABASE_URL=sqlite:////var/lib/news-monitor/" in env
    assert "SLACK_BOT_TOKEN" not in DOCKERFILE.read_text().split("#")[0]


def test_dockerfile_copies_what_pyproject_packages() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    tops = {name.split(".")[0] for name in project["tool"]["setuptools"]["packages"]}
    tops |= set(project["tool"]["setuptools"].get("package-dir", {}).values())
    copied = {shlex.split(args)[0] for word, args in _instructions()
              if word == "COPY" and not args.startswith("--from")}
    assert tops <= copied, f"the image would miss {tops - copied}"
    assert {"pyproject.toml", "README.md"} <= {
        part for word, args in _instructions() if word == "COPY" for part in shlex.split(args)}
    assert project["project"]["scripts"]["news-monitor"] == "monitor.cli:main"


def test_build_stage_as_a_script(tmp_path: Path) -> None:
    """COPY into a scratch /src, build and install the way RUN does (without dependencies:
    they are this environment's), then start the installed CLI from elsewhere."""
    src = tmp_path / "src"
    src.mkdir()
    for word, args in _instructions():
        if word == "COPY" and not args.startswith("--from"):
            *sources, dest = shlex.split(args)
            for source in sources:
                target = src / dest if dest not in ("./", ".") else src / source
                if (REPO / source).is_dir():
                    shutil.copytree(REPO / source, target,
                                    ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy(REPO / source, src / Path(source).name)
    wheels = tmp_path / "wheels"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                            str(wheels), str(src)], capture_output=True, text=True, timeout=300)
    if built.returncode != 0 and "Could not find a version" in built.stderr:
        pytest.skip(f"no package index for the build backend here: {built.stderr[-300:]}")
    assert built.returncode == 0, built.stderr
    site = tmp_path / "site"
    wheel = next(wheels.glob("*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(site), str(wheel)], check=True, timeout=300)
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("MONITOR_", "SLACK_"))}
    env.update(PYTHONPATH=str(site), MONITOR_HTTP_LISTEN="off",
               MONITOR_DATABASE_URL=f"sqlite:///{tmp_path}/state/monitor.db")
    probe = subprocess.run(
        [sys.executable, "-c", "import monitor, classifiers; print(monitor.__file__); "
         "print(classifiers.__file__)"], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=60)
    assert all(line.startswith(str(site)) for line in probe.stdout.split()), probe.stdout
    done = subprocess.run([sys.executable, "-m", "monitor", "check-config"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"config: {site}" in done.stdout  # the embedded default, from the wheel
    assert "ok: `run` would start" in done.stdout
