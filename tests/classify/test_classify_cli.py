"""``monitor classify``: a table or JSON lines, rules only (said on stderr) when the model is down."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
import typer
from typer.testing import CliRunner

from monitor.commands import classify as classify_command
from tests.classify.classify_support import PROTECTED, TinyModel


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """Test app."""

    classify_command.register(app)
    return app


def _config(tmp_path: Path, tiny: TinyModel | None) -> Path:
    names = tmp_path / "pupils.txt"
    shutil.copy(PROTECTED, names)
    os.chmod(names, 0o600)
    classifier = (
        f"  checkpoint: {tiny.checkpoint}\n  huggingface_config_path: {tiny.folder}\n"
        if tiny
        else f"  checkpoint: {tmp_path / 'missing.ckpt'}\n"
    )
    path = tmp_path / "monitor.yaml"
    path.write_text(
        "organisation:\n  name: Oakfield Trust\n"
        "schools:\n  - key: oakfield\n    name: Oakfield Academy\n    aliases: [Oakfield]\n"
        "    allow_terms: [Scunthorpe]\n"
        f"classifier:\n{classifier}  protected_names_file: pupils.txt\n",
        encoding="utf-8",
    )
    return path


@pytest.mark.slow
def test_json_lines_with_a_loaded_model(
    app: typer.Typer, tiny_model: TinyModel, tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        app,
        [
            "classify",
            "--json",
            "--config",
            str(_config(tmp_path, tiny_model)),
            "--school",
            "oakfield",
            "Amelia Thornton was brilliant",
            "Oakfield is a shambles",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["text"] for line in lines] == [
        "Amelia Thornton was brilliant",
        "Oakfield is a shambles",
    ]
    assert lines[0]["categories"] == ["personal_data"]  # the names file, relative to the config
    assert lines[0]["matches"][0]["rule_id"] == "PD-PUPIL-NAME"
    # the toxicity model and the concern model both scored it
    assert lines[0]["model"] == "detoxify/model.ckpt+concern/minilm-l6-v3"
    assert {"toxicity", "concern_safeguarding"} <= set(lines[0]["scores"])
    assert "negative_mention" in lines[1]["categories"]
    assert "Rules only" not in result.stderr


def test_rules_only_when_the_model_cannot_load_and_it_says_so(
    app: typer.Typer, tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        app, ["classify", "--json", "--config", str(_config(tmp_path, None)), "i want to die"]
    )
    assert result.exit_code == 0, result.output
    [line] = [json.loads(x) for x in result.stdout.splitlines()]
    # unscored (model null) but the concern model, whose files are here, still scored it
    assert line["model"] is None and set(line["scores"]) == {
        "concern_safeguarding",
        "concern_threat",
        "concern_negative",
    }
    assert line["categories"] == ["safeguarding"] and line["severity"] == "critical"
    assert "Rules and the concern model" in result.stderr
    assert "only: a model is unavailable" in result.stderr
    assert "missing.ckpt does not exist" in result.stderr and "Fix:" in result.stderr
    assert result.stderr.count("does not exist") == 1  # said once, not logged as well


def test_table_from_a_file_and_hostile_text(app: typer.Typer, tmp_path: Path) -> None:
    texts = tmp_path / "texts.txt"
    texts.write_text("What time is pick up?\n\n\x1b[31m<!channel> kys\u202e\n", encoding="utf-8")
    result = CliRunner().invoke(
        app, ["classify", "--rules-only", "--file", str(texts)], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    assert "needs_response" in result.stdout and "NR-QUESTION" in result.stdout
    assert "SG-SELF-HARM-INCITE" in result.stdout
    assert "\x1b[31m" not in result.stdout and "\u202e" not in result.stdout
    assert "Rules only (--rules-only)" in result.stderr


def test_standard_input(app: typer.Typer) -> None:
    result = CliRunner().invoke(
        app, ["classify", "--rules-only", "--json", "--file", "-"], input="watch your back\n"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["categories"] == ["threat"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["classify"], "Nothing to classify"),
        (["classify", "--school", "nowhere", "hi"], "Unknown school 'nowhere'"),
        (["classify", "--file", "/does/not/exist"], "cannot read"),
    ],
)
def test_usage_errors(app: typer.Typer, args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, [*args, "--rules-only"] if len(args) > 1 else args)
    assert result.exit_code == 2
    assert message in result.output


def test_a_bad_config_is_reported_with_its_location(app: typer.Typer, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("organisation:\n  name: X\nschools: []\nclassifier:\n  modle: original\n")
    result = CliRunner().invoke(app, ["classify", "--config", str(path), "hi"])
    assert result.exit_code == 2
    assert "bad.yaml" in result.stderr


def test_json_output_holds_only_json_while_the_model_downloads(
    app: typer.Typer, tiny_model: TinyModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def download(url: str, **kwargs: object) -> object:
        print(f'Downloading: "{url}" to /root/.cache/torch/hub/checkpoints/model.ckpt')
        return torch.load(tiny_model.checkpoint, weights_only=True)

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", download)  # torch.hub's own line
    config = tmp_path / "monitor.yaml"
    config.write_text(
        "organisation:\n  name: Oakfield Trust\n"
        "schools:\n  - key: oakfield\n    name: Oakfield Academy\n"
        f"classifier:\n  huggingface_config_path: {tiny_model.folder}\n"
        "  concern:\n    enabled: false\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(
        app, ["classify", "--json", "--config", str(config), "hello", "what time is pick up?"]
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]  # every line is JSON
    assert [line["text"] for line in lines] == ["hello", "what time is pick up?"]
    assert all(line["model"] == "detoxify/original" for line in lines)
    assert "Downloading" in result.stderr
