"""The classifier's command line, as analysts use it: score, eval, label, train --with-feedback."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from monitor.cli import main
from tests.support.configs import write_config

REPO = Path(__file__).resolve().parent.parent
REPLAY = REPO / "examples" / "replay" / "world_desk.xml"

POSITIVE = {"title": "Kim Jong Un and Putin sign mutual defence treaty in Pyongyang",
            "summary": "The two leaders pledged military assistance if either is attacked."}
NEGATIVE = {"title": "Heavy snow closes schools across Hokkaido",
            "summary": "Rail services were suspended as a winter storm swept northern Japan."}


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in ("SLACK_BOT_TOKEN", "SLACK_CHANNEL", "SLACK_WEBHOOK_URL", "MONITOR_MODEL_PATH"):
        monkeypatch.delenv(key, raising=False)
    return write_config(tmp_path, {"Replay": REPLAY.as_uri()})


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
            stdin: str | None = None) -> tuple[int, str, str]:
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_score_handles_ten_thousand_lines_in_one_call(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    items = [dict(POSITIVE if i % 2 else NEGATIVE, id=f"item-{i}") for i in range(10_000)]
    stdin = "".join(json.dumps(item) + "\n" for item in items)
    code, out, _ = run_cli(["score", "--config", str(config)], capsys, monkeypatch, stdin)
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["id"] for r in rows] == [item["id"] for item in items]
    assert all(0.0 <= r["score"] <= 1.0 and isinstance(r["match"], bool) for r in rows)
    assert all(r["match"] for r in rows[1::2]) and not any(r["match"] for r in rows[0::2])
    assert "Putin" in rows[1]["reason"] and rows[1]["event_type"]


def test_score_threshold_override_decides_the_match(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps(dict(POSITIVE, id="p")) + "\n")
    code, out, _ = run_cli(["score", "--config", str(config), "--input", str(source),
                            "--threshold", "0.9999999"], capsys, monkeypatch)
    row = json.loads(out)
    assert code == 0 and row["match"] is False and "event_type" not in row
    assert "< 1.00" in row["reason"]


def test_score_rejects_bad_lines_with_their_number(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run_cli(["score", "--config", str(config)], capsys, monkeypatch,
                           json.dumps(dict(POSITIVE, id="ok")) + "\n{broken\n")
    assert code != 0
    assert "line 2" in err


def test_eval_prints_metrics_and_confusion_matrix(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = tmp_path / "labelled.jsonl"
    rows = [dict(POSITIVE, id=f"p{i}", label=1) for i in range(3)]
    rows += [dict(NEGATIVE, id=f"n{i}", label=0) for i in range(5)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, out, _ = run_cli(["eval", "--config", str(config), "--data", str(data)],
                           capsys, monkeypatch)
    assert code == 0
    assert "precision=1.000" in out and "recall=1.000" in out and "PR-AUC" in out
    assert "TP=3 FP=0 FN=0 TN=5" in out


def test_label_then_train_with_feedback_compares_before_installing(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_config(tmp_path, {"Replay": REPLAY.as_uri()}, "[retrain]\nmin_labels = 1\n")
    out_model = tmp_path / "model.skops"
    code, out, _ = run_cli(["train", "--config", str(config), "--with-feedback",
                            "--out", str(out_model)], capsys, monkeypatch)
    assert code != 0 and "no analyst labels" in out
    assert not out_model.exists()
    code, _, err = run_cli(["train", "--config", str(config), "--dry-run"], capsys, monkeypatch)
    assert code == 2 and "--dry-run only applies to train --with-feedback" in err

    assert run_cli(["once", "--config", str(config)], capsys, monkeypatch)[0] == 0
    code, listing, _ = run_cli(["articles", "--config", str(config)], capsys, monkeypatch)
    ids = [line.split()[0] for line in listing.splitlines()]
    assert code == 0 and len(ids) >= 4
    code, _, err = run_cli(["label", "--config", str(config), "no-such-id", "relevant"],
                           capsys, monkeypatch)
    assert code != 0 and "no stored article" in err
    for article_id in ids[:3]:
        code, out, _ = run_cli(["label", "--config", str(config), article_id, "irrelevant"],
                               capsys, monkeypatch)
        assert code == 0 and out.startswith(f"labelled {article_id} as irrelevant")

    code, out, _ = run_cli(["train", "--config", str(config), "--with-feedback", "--dry-run",
                            "--out", str(out_model)], capsys, monkeypatch)
    assert code == 0 and "dry run: would" in out  # exit 0 whatever the verdict
    assert not out_model.exists()
    # unrounded numbers of both models side by side, with the difference
    assert re.search(r"frozen test PR-AUC +0\.\d{6} +0\.\d{6} +[+-]0\.\d{6}", out), out

    code, out, _ = run_cli(["train", "--config", str(config), "--with-feedback",
                            "--out", str(out_model)], capsys, monkeypatch)
    assert code == 0
    # both models' numbers on the frozen split, and the decision taken on them
    assert "current" in out and "candidate" in out
    installed = ": installed (" in out
    assert installed or ": kept the current model (" in out
    assert out_model.exists() == installed
