"""Shared set-up for the scheduler tests: the example trust with its Mastodon account on a peer."""

from __future__ import annotations

import struct
import zlib
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from monitor.classify.personal_data import ProtectedNames
from monitor.config import load_config
from monitor.config_models import Config
from monitor.posts import Checker
from monitor.storage.db import transaction
from monitor.sync import apply_config
from tests.conftest import EXAMPLE_CONFIG

MASTODON_KEY = "oakfield-mastodon"
BLUESKY_KEY = "oakfield-bluesky"
DRAFTER = "cjones"  # comms
PRINCIPAL = "aokafor"  # principal, slt
DSL = "bpatel"  # may not approve
PROTECTED = "Harry James Lister\n"
NO_PUBLICATION = "Amara Osei\n"


def png(width: int = 2, height: int = 2, extra: int = 0) -> bytes:
    """A valid PNG of ``width`` x ``height`` (grey), padded with ``extra`` bytes of text chunk."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    out = b"\x89PNG\r\n\x1a\n" + chunk(
        b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    )
    if extra:
        out += chunk(b"tEXt", b"pad\x00" + b"x" * extra)
    return out + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def trust_config(tmp: Path, *, api_base_url: str = "http://127.0.0.1:9", **posting: Any) -> Config:
    """The example trust, its Mastodon account enabled on ``api_base_url``, lists in ``tmp``."""
    cfg = load_config(EXAMPLE_CONFIG, environ={}).config
    (tmp / "protected.txt").write_text(PROTECTED, encoding="utf-8")
    (tmp / "no_publication.txt").write_text(NO_PUBLICATION, encoding="utf-8")
    (tmp / "protected.txt").chmod(0o600)
    accounts = []
    for account in cfg.accounts:
        if account.key == MASTODON_KEY:
            account = account.model_copy(
                update={
                    "enabled": True,
                    "options": {**account.options, "api_base_url": api_base_url},
                }
            )
        accounts.append(account)
    return cfg.model_copy(
        update={
            "accounts": accounts,
            "classifier": cfg.classifier.model_copy(
                update={"protected_names_file": str(tmp / "protected.txt")}
            ),
            "posting": cfg.posting.model_copy(
                update={"no_publication_file": str(tmp / "no_publication.txt"), **posting}
            ),
        }
    )


def synced(sessions: sessionmaker[Session], cfg: Config, now: datetime) -> Checker:
    """Apply ``cfg`` to the database; the checker for it."""
    with transaction(sessions) as session:
        apply_config(session, cfg, now=now)
    names = (
        ProtectedNames(cfg.classifier.protected_names_file)
        if cfg.classifier.protected_names_file
        else None
    )
    return Checker.for_config(cfg, names)
