"""Extract field names and JSON types of real reddit.com responses from praw's cassettes.

How tests/data/reddit_cassette_fields.json was produced (and how to redo it):

    pip download --no-deps --no-binary :all: praw==8.0.3 -d ~/.cache/ssm-praw-sdist
    .venv/bin/python tests/servers/extract_reddit_fields.py \
        --sdist ~/.cache/ssm-praw-sdist/praw-8.0.3.tar.gz \
        -o tests/data/reddit_cassette_fields.json

praw's source distribution ships 643 Betamax cassettes (tests/integration/cassettes/*.json)
recorded against reddit.com between 2016 and 2026, secrets replaced by placeholders. Each
response body is plain JSON text in ``response.body.string``. For every endpoint the bot
uses, the newest successful recording is flattened into "paths" (see ``shape``), and for
every thing kind (t1, t3, ...) the key sets seen since 2019 are collected, so that the
local server (tests/servers/reddit_server.py) can be checked against reality field by
field, without shipping the 158 MB of cassettes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import tarfile
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

PRAW_VERSION = "8.0.3"
CASSETTES_IN_SDIST = f"praw-{PRAW_VERSION}/tests/integration/cassettes/"
# Where the test looks for a locally downloaded sdist (never downloads by itself).
DEFAULT_SDIST = Path.home() / ".cache" / "ssm-praw-sdist" / f"praw-{PRAW_VERSION}.tar.gz"
# Recordings older than this describe fields reddit has since retired.
SINCE = "2019-01-01"
# The newest year of recordings decides which keys a thing always has.
REQUIRED_WINDOW_DAYS = 365
# The cassettes replaced the test subreddit's name ("test") everywhere, even inside
# field names ("contest_mode" became "con<TEST_SUBREDDIT>_mode"): undo it in keys.
PLACEHOLDER = "<TEST_SUBREDDIT>"

# Endpoint key -> (method, path pattern, request body pattern) for the endpoints the bot
# and the test harness use; the body pattern picks the script-app (password) grant.
ENDPOINTS: dict[str, tuple[str, str, str]] = {
    "POST /api/v1/access_token": ("POST", r"/api/v1/access_token", r".*grant_type=password.*"),
    "GET /api/v1/me": ("GET", r"/api/v1/me", r".*"),
    "GET /r/{sub}/comments/": ("GET", r"/r/[^/]+/comments/", r".*"),
    "GET /r/{sub}/new": ("GET", r"/r/[^/]+/new/?", r".*"),
    "GET /comments/{id}/": ("GET", r"/comments/[a-z0-9]+/", r".*"),
    "GET /user/{name}/submitted": ("GET", r"/user/[^/]+/submitted/?", r".*"),
    "GET /r/{sub}/search/": ("GET", r"/r/[^/]+/search/?", r".*"),
    "GET /message/comments/": ("GET", r"/message/comments/", r".*"),
    "GET /message/unread/": ("GET", r"/message/unread/", r".*"),
    "GET /message/mentions": ("GET", r"/message/mentions/?", r".*"),
    "GET /message/inbox/": ("GET", r"/message/inbox/", r".*"),
    "GET /api/info/": ("GET", r"/api/info/", r".*"),
    "GET /subreddits/mine/moderator/": ("GET", r"/subreddits/mine/moderator/", r".*"),
    "GET /user/{name}/about/": ("GET", r"/user/[^/]+/about/", r".*"),
    "POST /api/remove/": ("POST", r"/api/remove/", r".*"),
    "POST /api/approve/": ("POST", r"/api/approve/", r".*"),
    "POST /api/report/": ("POST", r"/api/report/", r".*"),
    "POST /api/block_user/": ("POST", r"/api/block_user/", r".*"),
    "POST /api/comment/": ("POST", r"/api/comment/", r".*thing_id=t[13]_.*"),
    "POST /api/del/": ("POST", r"/api/del/", r".*"),
    "POST /api/submit/": ("POST", r"/api/submit/", r".*kind=self.*"),
}


def json_type(value: Any) -> str:
    """The JSON type name of a value; things are named by their kind."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list):
        return "list"
    if is_thing(value):
        return f"thing:{value['kind']}"
    return "object"


def is_thing(value: Any) -> bool:
    """A reddit "thing": {"kind": "t1", "data": {...}}."""
    return (
        isinstance(value, dict)
        and isinstance(value.get("kind"), str)
        and isinstance(value.get("data"), dict)
    )


def fix_key(key: str) -> str:
    """Undo the cassette placeholder inside a field name."""
    return key.replace(PLACEHOLDER, "test")


def shape(value: Any) -> dict[str, set[str]]:
    """Flatten a response into {path: {json types}}.

    Paths restart at every thing, named by its kind: "t1.body", "Listing.children[]".
    The root is "$". Objects inside a thing's data are not descended into (their keys,
    like gildings' award ids, are data, not schema) unless they hold things.
    """
    out: dict[str, set[str]] = defaultdict(set)

    def walk(node: Any, path: str, *, inside_thing: bool) -> None:
        out[path].add(json_type(node))
        if is_thing(node):
            kind = node["kind"]
            for key, child in node["data"].items():
                walk(child, f"{kind}.{fix_key(key)}", inside_thing=True)
        elif isinstance(node, dict):
            if inside_thing:
                return
            for key, child in node.items():
                walk(child, f"{path}.{fix_key(key)}", inside_thing=False)
        elif isinstance(node, list):
            for child in node:
                if not inside_thing or is_thing(child):
                    walk(child, f"{path}[]", inside_thing=inside_thing)

    walk(value, "$", inside_thing=False)
    return out


def things(value: Any, context: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every thing in a response, as (kind@context, data)."""
    if is_thing(value):
        yield f"{value['kind']}@{context}", value["data"]
        for child in value["data"].values():
            if is_thing(child) or isinstance(child, list):
                yield from things(child, context)
    elif isinstance(value, list):
        for child in value:
            yield from things(child, context)
    elif isinstance(value, dict):
        for child in value.values():
            yield from things(child, context)


def context_of(path: str) -> str:
    """Things look different in the inbox and in a comment tree than in listings."""
    if path.startswith("/message/"):
        return "inbox"
    if re.fullmatch(r"/comments/[a-z0-9]+/", path):
        return "tree"
    return "listing"


def iter_interactions(cassettes: dict[str, bytes]) -> Iterator[dict[str, Any]]:
    """Every recorded interaction with a JSON body, with its cassette and date."""
    for name in sorted(cassettes):
        doc = json.loads(cassettes[name])
        for index, interaction in enumerate(doc["interactions"]):
            recorded = interaction.get("recorded_at") or doc.get("recorded_at") or ""
            body = interaction["response"]["body"].get("string", "")
            try:
                parsed = json.loads(body)
            except ValueError:
                continue
            url = urlsplit(interaction["request"]["uri"])
            yield {
                "cassette": name,
                "interaction": index,
                "recorded_at": recorded[:19],
                "method": interaction["request"]["method"],
                "path": url.path,
                "query": url.query,
                "status": interaction["response"]["status"]["code"],
                "request_body": interaction["request"].get("body") or "",
                "body": parsed,
            }


def derive(cassettes: dict[str, bytes]) -> dict[str, Any]:
    """Build the fixture from cassette file contents keyed by file name."""
    endpoints: dict[str, Any] = {}
    kind_types: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    kind_samples: dict[str, list[tuple[str, frozenset[str], str]]] = defaultdict(list)
    for rec in iter_interactions(cassettes):
        if rec["status"] != 200:
            continue
        for key, (method, pattern, body_pattern) in ENDPOINTS.items():
            if (
                rec["method"] == method
                and re.fullmatch(pattern, rec["path"])
                and re.fullmatch(body_pattern, rec["request_body"], flags=re.DOTALL)
            ):
                flat = shape(rec["body"])
                best = endpoints.get(key)
                # Prefer recordings that show items (an empty inbox says little).
                rank = (_has_items(flat), rec["recorded_at"], len(flat))
                if best is None or rank > best["rank"]:
                    endpoints[key] = {
                        "cassette": rec["cassette"],
                        "interaction": rec["interaction"],
                        "recorded_at": rec["recorded_at"],
                        "query": re.sub(r"<[A-Z_]+>", "X", rec["query"]),
                        "shape": {p: sorted(t) for p, t in sorted(flat.items())},
                        "rank": rank,
                    }
        if rec["recorded_at"] < SINCE:
            continue
        for kind, data in things(rec["body"], context_of(rec["path"])):
            keys = frozenset(fix_key(k) for k in data)
            kind_samples[kind].append((rec["recorded_at"], keys, rec["cassette"]))
            for k, v in data.items():
                kind_types[kind][fix_key(k)].add(json_type(v))
    for entry in endpoints.values():
        del entry["rank"]
    kinds: dict[str, Any] = {}
    for kind, samples in sorted(kind_samples.items()):
        newest = max(s[0] for s in samples)
        window = _days_before(newest, REQUIRED_WINDOW_DAYS)
        recent = [s for s in samples if s[0] >= window]
        required = frozenset.intersection(*(s[1] for s in recent))
        kinds[kind] = {
            "newest_recording": newest,
            "required_from": window,
            "required_sample_count": len(recent),
            "required_cassettes": sorted({s[2] for s in recent}),
            "required": sorted(required),
            "types": {k: sorted(t) for k, t in sorted(kind_types[kind].items())},
        }
    return {
        "about": (
            "Field names and JSON types of real reddit.com responses, extracted from the "
            f"cassettes in praw {PRAW_VERSION}'s sdist by tests/servers/extract_reddit_fields.py "
            "(see its docstring). endpoints: newest 200 recording per endpoint, flattened to "
            "paths that restart at every thing kind. kinds: per kind@context, the keys every "
            f"thing had in the newest {REQUIRED_WINDOW_DAYS} days of recordings (required) and "
            f"the JSON types of every key seen since {SINCE} (types)."
        ),
        "praw_version": PRAW_VERSION,
        "cassette_count": len(cassettes),
        "endpoints": dict(sorted(endpoints.items())),
        "kinds": kinds,
    }


def _has_items(flat: dict[str, set[str]]) -> bool:
    return any(
        t.startswith("thing:") and t != "thing:Listing" for types in flat.values() for t in types
    )


def _days_before(stamp: str, days: int) -> str:
    from datetime import datetime, timedelta

    moment = datetime.fromisoformat(stamp) - timedelta(days=days)
    return moment.isoformat()[:19]


def load_cassettes(source: Path) -> dict[str, bytes]:
    """Cassette file contents from an sdist tarball or an unpacked cassettes folder."""
    if source.is_dir():
        return {p.name: p.read_bytes() for p in sorted(source.glob("*.json"))}
    out: dict[str, bytes] = {}
    with tarfile.open(source, "r:gz") as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.startswith(CASSETTES_IN_SDIST):
                handle = tar.extractfile(member)
                if handle is not None and member.name.endswith(".json"):
                    out[member.name.rsplit("/", 1)[1]] = handle.read()
    return out


def sha256_of(path: Path) -> str:
    """Hex digest of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    """Command line: write the fixture."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sdist", type=Path, default=DEFAULT_SDIST, help="praw sdist or folder")
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args(argv)
    if not args.sdist.exists():
        print(f"{args.sdist} not found: pip download it first (see docstring)", file=sys.stderr)
        return 2
    cassettes = load_cassettes(args.sdist)
    fixture = derive(cassettes)
    if args.sdist.is_file():
        fixture["sdist_sha256"] = sha256_of(args.sdist)
    args.output.write_text(json.dumps(fixture, indent=1, sort_keys=False) + "\n")
    print(f"{len(cassettes)} cassettes -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
