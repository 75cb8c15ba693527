"""Config files for tests that drive the real CLI: local state, the repo's keywords, no age limit.

The stories in the fixtures are old, so ``max_article_age_hours = 0``; each test
adds only the sections it is about.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent


def write_config(tmp_path: Path, feeds: Mapping[str, str], sections: str = "") -> Path:
    """Write ``tmp_path/monitor.toml`` with ``feeds`` (name → URL) and extra TOML ``sections``."""
    body = f"""{sections}
[storage]
database_url = "sqlite:///{tmp_path}/state.db"
[classifier]
keywords_path = "{REPO / 'config' / 'keywords.toml'}"
[alerts]
max_article_age_hours = 0
"""
    body += "".join(f'\n[[feeds]]\nname = "{n}"\nurl = "{u}"\n' for n, u in feeds.items())
    path = tmp_path / "monitor.toml"
    path.write_text(body)
    return path
