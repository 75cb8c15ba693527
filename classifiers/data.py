"""Labelled examples and the frozen test split.

The frozen split is a pure function of an example's id, so it never moves when
files are added, reordered or extended: an id that is test data today is test
data forever, and nothing in training, model selection or threshold tuning may
look at it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from classifiers.errors import DataError
from classifiers.text import article_text

DATA_DIR = Path(__file__).resolve().parent / "data"

#: sha256(id)[0] < 52 puts 52/256 ≈ 20.3 % of ids in the frozen test split.
FROZEN_TEST_CUTOFF = 52

_REQUIRED = ("id", "title", "label")

#: Languages an example may be in (the feeds we read and the data we write).
LANGUAGES = ("en", "ko", "ru")
_HANGUL = re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_LATIN = re.compile(r"[A-Za-z]")


def detect_lang(text: str) -> str:
    """"ko", "ru" or "en" by the script most of the text's letters are written in.

    Script, not a language model: our three languages use three scripts, and a
    Korean or Russian report quoting "KN-23" or "Kim Jong Un" must stay Korean or
    Russian. A Hangul syllable carries about as much as two Latin or Cyrillic
    letters, so it counts twice; ties (and texts without letters) are English.
    """
    hangul = 2 * len(_HANGUL.findall(text))
    cyrillic = len(_CYRILLIC.findall(text))
    latin = len(_LATIN.findall(text))
    if hangul > max(cyrillic, latin):
        return "ko"
    if cyrillic > max(hangul, latin):
        return "ru"
    return "en"


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled news item (headline plus optional feed description)."""

    id: str
    title: str
    summary: str
    label: int
    event_type: str = ""
    style: str = ""
    date: str = ""
    weight: float = 1.0
    """How many written examples this one counts as in the fit (an analyst's label
    counts more: it is a real item the model got wrong or right in production)."""
    shape: str = ""
    """The kind of story an item stands for (e.g. "visitor_name_only"), so quality can be
    reported and held out per shape; "" for the older, untagged files."""
    lang: str = ""
    """"en", "ko" or "ru"; left empty it is detected from the text's script."""

    def __post_init__(self) -> None:
        if not self.lang:
            object.__setattr__(self, "lang", detect_lang(f"{self.title} {self.summary}"))
        elif self.lang not in LANGUAGES:
            raise DataError(f"example {self.id!r}: lang must be one of {', '.join(LANGUAGES)}, "
                            f"got {self.lang!r}")

    @property
    def text(self) -> str:
        """What the model sees, joined by the rule serving uses too (``article_text``)."""
        return article_text(self.title, self.summary)


def default_data_files() -> list[Path]:
    """All shipped training files, sorted so that loading order is reproducible."""
    return sorted(DATA_DIR.glob("*.jsonl"))


def _parse_line(raw: str, where: str) -> Example:
    try:
        item = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise DataError(f"{where}: not valid JSON ({exc.msg})") from exc
    if not isinstance(item, dict):
        raise DataError(f"{where}: expected a JSON object")
    missing = [key for key in _REQUIRED if key not in item]
    if missing:
        raise DataError(f"{where}: missing field(s) {', '.join(missing)}")
    label = item["label"]
    if label not in (0, 1) or isinstance(label, float):
        raise DataError(f"{where}: 'label' must be 0 or 1, got {label!r}")
    title = item["title"]
    if not isinstance(title, str) or not title.strip():
        raise DataError(f"{where}: 'title' must be a non-empty string")
    lang = str(item.get("lang") or "")
    if lang and lang not in LANGUAGES:
        raise DataError(f"{where}: 'lang' must be one of {', '.join(LANGUAGES)}, got {lang!r}")
    return Example(
        id=str(item["id"]),
        title=title.strip(),
        summary=str(item.get("summary") or "").strip(),
        label=int(label),
        event_type=str(item.get("event_type") or ""),
        style=str(item.get("style") or ""),
        date=str(item.get("date") or ""),
        shape=str(item.get("shape") or ""),
        lang=lang,
    )


def jsonl_lines(path: Path | str, what: str) -> Iterator[tuple[str, str]]:
    """``(where, line)`` for every non-blank line of a JSON Lines file.

    ``where`` is "path:line-number", so every loader's errors point at the line to fix;
    ``what`` names the file in the error raised when it cannot be read.
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DataError(f"cannot read {what} {path}: {exc}") from exc
    for number, raw in enumerate(lines, start=1):
        if raw.strip():
            yield f"{path}:{number}", raw


def load_examples(paths: Iterable[Path | str] | None = None) -> list[Example]:
    """Read JSON Lines files; ``None`` means every shipped file.

    Duplicate ids are an error because the frozen split is keyed by id: two
    items sharing one could straddle train and test only by accident of editing.
    """
    files = default_data_files() if paths is None else [Path(p) for p in paths]
    examples: list[Example] = []
    seen: dict[str, str] = {}
    for path in files:
        for where, raw in jsonl_lines(path, "training data"):
            example = _parse_line(raw, where)
            if example.id in seen:
                raise DataError(
                    f"{where}: duplicate id {example.id!r} (first in {seen[example.id]})"
                )
            seen[example.id] = where
            examples.append(example)
    return examples


def is_frozen_test(example_id: str) -> bool:
    """Whether an id belongs to the frozen test split (stable across runs and machines)."""
    return hashlib.sha256(example_id.encode("utf-8")).digest()[0] < FROZEN_TEST_CUTOFF


def split_frozen(examples: Sequence[Example]) -> tuple[list[Example], list[Example]]:
    """(train, test) by the frozen id hash; order within each part is kept."""
    train = [e for e in examples if not is_frozen_test(e.id)]
    test = [e for e in examples if is_frozen_test(e.id)]
    return train, test


def data_fingerprint(examples: Sequence[Example]) -> str:
    """sha256 over the examples' content, independent of file order."""
    digest = hashlib.sha256()
    for e in sorted(examples, key=lambda x: x.id):
        record: list[object] = [e.id, e.title, e.summary, e.label, e.event_type]
        if e.weight != 1.0:  # weighted items change the fit; unweighted data keeps its old hash
            record.append(e.weight)
        digest.update(json.dumps(record, ensure_ascii=False).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()
