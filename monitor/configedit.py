"""Edit the config file's ``[[feeds]]`` safely: ``feeds add`` and ``feeds disable``.

The config is hand-written TOML with comments, so it is edited as text, never
re-serialised. Every edit is checked twice before it replaces the file: the new
text must parse to exactly the intended change (every other key as before), and
the whole file must pass ``load_settings`` next to the original (relative paths
resolve the same). Only then is it swapped in with ``os.replace``, so a reader
(or the daemon at its next start) never sees a half-written or invalid config.
The same discipline as OPML import (``monitor.opml.merge_into_config_toml``).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from monitor.errors import SettingsError
from monitor.opml import OpmlFeed, merge_into_config_toml, url_key
from monitor.settings import load_settings

__all__ = ["add_feed", "disable_feed", "replace_config"]

_HEADER = re.compile(r"^[ \t]*\[\[[ \t]*feeds[ \t]*\]\][ \t]*(?:#.*)?$")
_ANY_HEADER = re.compile(r"^[ \t]*\[")
_ENABLED = re.compile(r"^([ \t]*)enabled[ \t]*=[ \t]*(true|false)([ \t]*(?:#.*)?)$")


def replace_config(config_path: Path, text: str, target: Path | None = None) -> None:
    """Validate ``text`` as a complete config beside ``config_path``, then swap it in.

    ``SettingsError`` (and the file untouched) when it does not validate. The
    environment is ignored for validation: the file must be valid on its own.
    """
    target = target or config_path
    fd, tmp = tempfile.mkstemp(suffix=".toml", prefix=".edit-", dir=config_path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8"))
        load_settings(tmp, env={})
        with contextlib.suppress(OSError):  # else keep mkstemp's 0600: stricter, never looser
            os.chmod(tmp, config_path.stat().st_mode & 0o777)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _default_name(url: str) -> str:
    host = urlsplit(url).hostname or ""
    return host.removeprefix("www.") or url


def add_feed(config_path: Path, url: str, *, name: str | None = None) -> tuple[bool, str]:
    """Append a feed; ``(False, existing name)`` when its URL is already configured.

    Returns ``(added, name)``; the name gets a `` (2)`` suffix if taken.
    """
    url = url.strip()
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
        raise SettingsError(f"{url!r} is not a feed URL; give an http:// or https:// URL")
    text = config_path.read_bytes().decode("utf-8")
    current = _parse(text)
    for feed in current.get("feeds", []):
        if isinstance(feed, dict) and url_key(str(feed.get("url", ""))) == url_key(url):
            return False, str(feed.get("name"))
    note = f"added with `feeds add` on {datetime.now(UTC):%Y-%m-%d}"
    merged, added, _ = merge_into_config_toml(
        text, [OpmlFeed(name=name or _default_name(url), url=url, tags=())], note=note)
    new_name = str(_parse(merged)["feeds"][-1]["name"])
    if added:
        replace_config(config_path, merged)
    return bool(added), new_name


def disable_feed(config_path: Path, name: str) -> bool:
    """Set ``enabled = false`` on the feed called ``name``; False if it already was.

    ``SettingsError`` when no ``[[feeds]]`` table has that name (or the file's layout
    is one this text edit cannot safely change, e.g. an inline array of feeds).
    """
    text = config_path.read_bytes().decode("utf-8")
    before = _parse(text)
    feeds = before.get("feeds", [])
    matches = [i for i, f in enumerate(feeds) if isinstance(f, dict) and f.get("name") == name]
    if not matches:
        known = ", ".join(repr(f.get("name")) for f in feeds if isinstance(f, dict))
        raise SettingsError(f"no feed named {name!r} in {config_path} (feeds: {known or 'none'})")
    index = matches[0]
    if feeds[index].get("enabled") is False:
        return False
    lines = text.splitlines(keepends=True)
    headers = [i for i, line in enumerate(lines) if _HEADER.match(line.rstrip("\r\n"))]
    if len(headers) != len(feeds):
        raise SettingsError(f"{config_path}: the feeds are not all written as [[feeds]] tables, "
                            "so this edit cannot be made safely; set enabled = false by hand")
    start = headers[index]
    end = next((i for i in range(start + 1, len(lines))
                if _ANY_HEADER.match(lines[i])), len(lines))
    newline = "\r\n" if "\r\n" in text else "\n"
    stamp = f"  # disabled with `feeds disable` on {datetime.now(UTC):%Y-%m-%d}"
    for i in range(start + 1, end):
        found = _ENABLED.match(lines[i].rstrip("\r\n"))
        if found:
            lines[i] = f"{found.group(1)}enabled = false{stamp}{newline}"
            break
    else:
        lines.insert(start + 1, f"enabled = false{stamp}{newline}")
    edited = "".join(lines)
    expected = [dict(f) for f in feeds]
    expected[index]["enabled"] = False
    after = _parse(edited)
    if {k: v for k, v in after.items() if k != "feeds"} != {
        k: v for k, v in before.items() if k != "feeds"
    } or after.get("feeds") != expected:
        raise SettingsError(f"{config_path}: disabling {name!r} did not read back as intended "
                            "(unusual layout?); the file was left unchanged, edit it by hand")
    replace_config(config_path, edited)
    return True


def _parse(text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"the config is not valid TOML, so it was not edited: {exc}") from exc
