"""Writing an export: the files plus a SHA-256 manifest, and its HTML page from a template."""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Mapping
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from monitor.clock import require_aware
from monitor.exports.format import compact, pretty, safe_link, shown, to_json

TEMPLATES = Path(__file__).with_name("templates")


def stamp(now: datetime) -> str:
    return require_aware(now).strftime("%Y%m%dT%H%M%SZ")


def _free_path(out: Path, stem: str, suffix: str) -> Path:
    candidate = out / f"{stem}{suffix}"
    n = 2
    while candidate.exists():
        candidate = out / f"{stem}-{n}{suffix}"
        n += 1
    return candidate


def write_bundle(out: Path, stem: str, files: Mapping[str, bytes], *, as_zip: bool) -> Path:
    """Write ``files`` plus a SHA-256 manifest as ``out/stem/`` or ``out/stem.zip``."""
    manifest = {
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())}
    }
    everything = {**files, "manifest.json": to_json(manifest)}
    out.mkdir(parents=True, exist_ok=True)
    if as_zip:
        target = _free_path(out, stem, ".zip")
        with zipfile.ZipFile(target, "x", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, data in everything.items():
                archive.writestr(f"{target.stem}/{name}", data)
        target.chmod(0o600)
        return target
    target = _free_path(out, stem, "")
    # personal data: readable by the exporting user only
    target.mkdir(mode=0o700)
    for name, data in everything.items():
        path = target / name
        path.write_bytes(data)
        path.chmod(0o600)
    return target


@cache
def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
    )
    env.filters["shown"] = shown
    env.filters["link"] = safe_link
    env.filters["pretty"] = pretty
    env.filters["compact"] = compact
    return env


@cache
def _style() -> str:
    return (TEMPLATES / "export.css").read_text(encoding="utf-8")


def render(template: str, **context: Any) -> str:
    """The HTML page of an export: ``template`` in ``templates/``, everything escaped."""
    return _environment().get_template(template).render(style=_style(), **context)
