"""Loading the YAML configuration: every problem at once, each with file, line and field."""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, BeforeValidator, ValidationError

from connectors.manifest import Manifest
from connectors.registry import manifest
from monitor.config_models import Config, parse_duration, parse_time_of_day
from monitor.constants import Platform
from monitor.rules.engine import register_gaps, two_admin_problem
from monitor.rules.staff import ROLE_OVERRIDES
from monitor.secrets import SecretMissing, resolve_secret

Path_ = tuple[str | int, ...]

LIST_SECTIONS = ("schools", "staff", "accounts")
# (section, field) pairs whose values must differ between entries
UNIQUE_FIELDS = (
    ("schools", "key"),
    ("staff", "id"),
    ("staff", "slack_user_id"),
    ("staff", "email"),
    ("accounts", "key"),
)


@dataclass(frozen=True)
class Problem:
    """One located configuration problem."""

    file: str
    line: int | None
    field: str
    message: str
    warning: bool = False

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        kind = "warning" if self.warning else "error"
        return f"{where}: {kind}: {self.field}: {self.message}"


class ConfigError(Exception):
    """The configuration has errors; ``problems`` lists every one."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass
class _Source:
    """Merged YAML data plus where each value came from."""

    data: dict[str, Any] = field(default_factory=dict)
    where: dict[Path_, tuple[str, int]] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class LoadedConfig:
    """A validated configuration plus its warnings and where it came from."""

    config: Config
    path: Path
    warnings: tuple[Problem, ...]


def field_name(path: Path_) -> str:
    """``accounts[2].admins[0]`` from a path tuple."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


# YAML aliases may add at most this many values: a few lines of nested aliases (a "billion
# laughs" document) would otherwise expand to billions of values and exhaust memory.
ALIAS_EXPANSION_LIMIT = 10_000
_NUMBER_TAGS = frozenset({"tag:yaml.org,2002:int", "tag:yaml.org,2002:float"})
_BASE_60 = "YAML reads unquoted "


def _fields_parsed_by(model: type[BaseModel], parser: Callable[..., Any]) -> frozenset[str]:
    """Names of the fields (in ``model`` and the models inside it) that ``parser`` reads."""
    names: set[str] = set()
    for name, info in model.model_fields.items():
        pending: list[Any] = [info.annotation, *info.metadata]
        while pending:
            part = pending.pop()
            if isinstance(part, BeforeValidator) and part.func is parser:
                names.add(name)
            elif isinstance(part, type) and issubclass(part, BaseModel):
                names |= _fields_parsed_by(part, parser)
            pending.extend(get_args(part))
            pending.extend(getattr(part, "__metadata__", ()))
    return frozenset(names)


TIME_FIELDS = _fields_parsed_by(Config, parse_time_of_day)  # end_of_day, quiet_hours, time
DURATION_FIELDS = _fields_parsed_by(Config, parse_duration)  # within, poll_interval, ...


def _base_60_message(path: Path_, text: str, number: str) -> str:
    """What an unquoted ``17:00`` became, and what to write instead for this field."""
    name = next((p for p in reversed(path) if isinstance(p, str)), "")
    read = f"{_BASE_60}{text} as the number {number} (base 60)"
    if name in DURATION_FIELDS:
        return f'{read}, that many seconds: write the duration with a unit, such as "24h" or "90m"'
    if name in TIME_FIELDS:
        return f'{read}: write the time in quotes, "{text}"'
    return f'{read}: write it in quotes, "{text}"'


class _AliasBomb(Exception):
    """Aliases expand to more than ALIAS_EXPANSION_LIMIT values."""

    def __init__(self, line: int) -> None:
        self.line = line
        super().__init__(line)


@dataclass
class _Walk:
    """State of one walk over a composed YAML document."""

    file: str
    where: dict[Path_, tuple[str, int]]
    problems: list[Problem]
    seen: set[int] = field(default_factory=set)
    visits: int = 0
    alias_line: int = 0


def _sexagesimal(node: yaml.ScalarNode) -> str | None:
    """``1020`` for a plain ``17:00`` that YAML 1.1 resolved as a base-60 number, else None."""
    if node.tag not in _NUMBER_TAGS or node.style is not None or ":" not in node.value:
        return None
    constructor = yaml.SafeLoader("")
    number = (
        constructor.construct_yaml_int(node)
        if node.tag.endswith(":int")
        else constructor.construct_yaml_float(node)
    )
    return str(number)


def _record_lines(node: yaml.Node, path: Path_, walk: _Walk, ancestors: frozenset[int]) -> None:
    """Note each value's line; report repeated keys, base-60 numbers and alias bombs."""
    walk.visits += 1
    if id(node) in walk.seen and (  # reached again through an alias
        id(node) in ancestors or walk.visits - len(walk.seen) > ALIAS_EXPANSION_LIMIT
    ):
        raise _AliasBomb(walk.alias_line or node.start_mark.line + 1)
    walk.seen.add(id(node))
    ancestors = ancestors | {id(node)}
    where, file = walk.where, walk.file
    where[path] = (file, node.start_mark.line + 1)
    if isinstance(node, yaml.ScalarNode):
        number = _sexagesimal(node)
        if number is not None:
            walk.problems.append(
                Problem(
                    file,
                    node.start_mark.line + 1,
                    field_name(path),
                    _base_60_message(path, node.value, number),
                )
            )
    elif isinstance(node, yaml.MappingNode):
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in first_line:
                # YAML keeps the last value silently: a second `poll_interval:` would win unseen
                walk.problems.append(
                    Problem(
                        file,
                        line,
                        field_name((*path, key)),
                        f"defined twice (first at line {first_line[key]}); remove one",
                    )
                )
                continue
            first_line[key] = line
            walk.alias_line = line
            where[(*path, key)] = (file, line)
            _record_lines(value_node, (*path, key), walk, ancestors)
            where[(*path, key)] = (file, line)
    elif isinstance(node, yaml.SequenceNode):
        for index, child in enumerate(node.value):
            _record_lines(child, (*path, index), walk, ancestors)


def _read_text(path: Path, problems: list[Problem]) -> str | None:
    """The file's text, or None with a problem when it cannot be read as UTF-8."""
    name = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        problems.append(Problem(name, None, "(file)", f"cannot read: {exc.strerror}"))
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        problems.append(
            Problem(
                name,
                raw.count(b"\n", 0, exc.start) + 1,
                "(file)",
                f"not UTF-8 text (byte 0x{raw[exc.start]:02x}): save the file as UTF-8",
            )
        )
        return None


def _read_yaml(
    path: Path, problems: list[Problem]
) -> tuple[dict[str, Any], dict[Path_, tuple[str, int]]]:
    name = str(path)
    text = _read_text(path, problems)
    if text is None:
        return {}, {}
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problems.append(
            Problem(name, line, "(syntax)", f"not valid YAML: {getattr(exc, 'problem', exc)}")
        )
        return {}, {}
    except RecursionError:
        problems.append(Problem(name, None, "(syntax)", "nested too deeply to be a configuration"))
        return {}, {}
    if node is None:
        return {}, {}
    if not isinstance(node, yaml.MappingNode):
        problems.append(Problem(name, 1, "(top level)", "the file must be a mapping of sections"))
        return {}, {}
    walk = _Walk(name, {}, problems)
    try:
        _record_lines(node, (), walk, frozenset())
    except _AliasBomb as bomb:
        problems.append(
            Problem(
                name,
                bomb.line,
                "(aliases)",
                f"YAML aliases (*name) here expand to more than {ALIAS_EXPANSION_LIMIT:,} "
                "values or refer to themselves: write the values out",
            )
        )
        return {}, {}
    except RecursionError:
        problems.append(Problem(name, None, "(syntax)", "nested too deeply to be a configuration"))
        return {}, {}
    data = yaml.safe_load(text)  # safe now: aliases expand to a bounded size
    return data, walk.where


def _merge(
    source: _Source,
    data: dict[str, Any],
    where: dict[Path_, tuple[str, int]],
    problems: list[Problem],
) -> None:
    """Add one file's sections: list sections are appended, others may appear only once."""
    for key, value in data.items():
        if key == "include":
            continue
        if key in LIST_SECTIONS and isinstance(value, list):
            existing = source.data.setdefault(key, [])
            if not isinstance(existing, list):
                continue
            offset = len(existing)
            existing.extend(value)
            for path, loc in where.items():
                if len(path) > 1 and path[0] == key and isinstance(path[1], int):
                    source.where[(key, path[1] + offset, *path[2:])] = loc
            source.where.setdefault((key,), where.get((key,), ("", 0)))
        elif key in source.data:
            file, line = where.get((key,), ("", 0))
            problems.append(
                Problem(file, line, key, "this section is already defined in another file")
            )
        else:
            source.data[key] = value
            for path, loc in where.items():
                if path and path[0] == key:
                    source.where[path] = loc


def _gather(path: Path, problems: list[Problem]) -> _Source:
    source = _Source()
    data, where = _read_yaml(path, problems)
    source.files.append(path)
    _merge(source, data, where, problems)
    includes = data.get("include", [])
    if includes and not isinstance(includes, list):
        problems.append(
            Problem(
                str(path),
                where.get(("include",), ("", None))[1],
                "include",
                "must be a list of file paths",
            )
        )
        includes = []
    for index, rel in enumerate(includes or []):
        inc_path = (path.parent / str(rel)).resolve()
        line = where.get(("include", index), (str(path), None))[1]
        if not inc_path.is_file():
            problems.append(
                Problem(
                    str(path), line, f"include[{index}]", f"included file {rel!r} does not exist"
                )
            )
            continue
        inc_data, inc_where = _read_yaml(inc_path, problems)
        if "include" in inc_data:
            problems.append(
                Problem(
                    str(inc_path),
                    inc_where.get(("include",), ("", None))[1],
                    "include",
                    "included files cannot include others",
                )
            )
        source.files.append(inc_path)
        _merge(source, inc_data, inc_where, problems)
    return source


def _locate(source: _Source, path: Path_, fallback: str) -> tuple[str, int | None]:
    for cut in range(len(path), -1, -1):
        loc = source.where.get(tuple(path[:cut]))
        if loc and loc[0]:
            return loc
    return fallback, None


def _pydantic_problems(source: _Source, exc: ValidationError, fallback: str) -> list[Problem]:
    problems = []
    for err in exc.errors():
        path: Path_ = tuple(p for p in err["loc"] if isinstance(p, (str, int)))
        # pydantic adds the validator name for tagged/annotated types; drop non-data parts
        path = tuple(p for p in path if not (isinstance(p, str) and p.startswith("function-")))
        file, line = _locate(source, path, fallback)
        kind = err["type"]
        if kind == "extra_forbidden":
            message = "unknown field (check the spelling; see config/example.yaml)"
        elif kind == "missing":
            message = "this field is required"
        else:
            # "a valid dictionary or instance of Account": the class name means nothing to a user
            message = re.sub(r" or instance of \w+", "", str(err["msg"]))
            message = message.removeprefix("Value error, ")
        problems.append(Problem(file, line, field_name(path), message))
    return problems


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


@dataclass
class _Checks:
    """What the cross-section validators share: the raw data, and where problems go."""

    source: _Source
    fallback: str
    environ: Mapping[str, str]
    base_dir: Path
    problems: list[Problem] = field(default_factory=list)

    def __post_init__(self) -> None:
        data = self.source.data
        self.schools = _as_list(data.get("schools"))
        self.staff = _as_list(data.get("staff"))
        self.accounts = _as_list(data.get("accounts"))
        self.school_keys = {_as_dict(s).get("key") for s in self.schools}
        self.staff_by_id = {_as_dict(s).get("id"): _as_dict(s) for s in self.staff}

    def add(self, path: Path_, message: str, *, warning: bool = False) -> None:
        file, line = _locate(self.source, path, self.fallback)
        self.problems.append(Problem(file, line, field_name(path), message, warning))

    def line_of(self, path: Path_) -> int | None:
        return _locate(self.source, path, self.fallback)[1]

    def check_staff(self, path: Path_, staff_id: Any, what: str) -> None:
        if staff_id not in self.staff_by_id:
            self.add(path, f"unknown staff id {staff_id!r} in {what}")

    def check_school(self, path: Path_, school: Any) -> None:
        if school not in self.school_keys:
            self.add(path, f"unknown school {school!r}")


def _unique_fields(checks: _Checks) -> None:
    """Keys, Slack ids and emails differ between entries."""
    for section, key_field in UNIQUE_FIELDS:
        first_seen: dict[Any, int] = {}
        for index, entry in enumerate(_as_list(checks.source.data.get(section))):
            value = _as_dict(entry).get(key_field)
            if value is None:
                continue
            # one Slack id or email per person: alerts and button presses are matched by them
            seen_as = value.lower() if isinstance(value, str) and key_field == "email" else value
            if seen_as in first_seen:
                first_line = checks.line_of((section, first_seen[seen_as], key_field))
                checks.add(
                    (section, index, key_field),
                    f"duplicate {key_field} {value!r} (first used at line {first_line})",
                )
            else:
                first_seen[seen_as] = index


def _staff_references(checks: _Checks) -> None:
    """A member of staff's schools and successor exist."""
    for index, member in enumerate(checks.staff):
        member = _as_dict(member)
        for j, school in enumerate(_as_list(member.get("schools"))):
            checks.check_school(("staff", index, "schools", j), school)
        successor = member.get("successor")
        if successor is not None:
            checks.check_staff(("staff", index, "successor"), successor, "successor")
            if successor == member.get("id"):
                checks.add(
                    ("staff", index, "successor"), "a member of staff cannot succeed themselves"
                )


def _account_references(checks: _Checks) -> None:
    """An account's school and administrators exist; no platform account is listed twice."""
    handles = Counter(
        (_as_dict(a).get("platform"), str(_as_dict(a).get("handle", "")).lower())
        for a in checks.accounts
    )
    for index, account in enumerate(checks.accounts):
        account = _as_dict(account)
        if account.get("school") is not None:
            checks.check_school(("accounts", index, "school"), account.get("school"))
        if handles[(account.get("platform"), str(account.get("handle", "")).lower())] > 1:
            checks.add(
                ("accounts", index, "handle"),
                f"the same {account.get('platform')} account is configured twice",
            )
        admins = _as_list(account.get("admins"))
        for j, admin in enumerate(admins):
            checks.check_staff(("accounts", index, "admins", j), admin, "admins")
        for j, admin in enumerate(admins):
            if admins.index(admin) != j:
                checks.add(("accounts", index, "admins", j), f"{admin!r} is listed twice")
        if account.get("approved_by") is not None:
            checks.check_staff(
                ("accounts", index, "approved_by"), account["approved_by"], "approved_by"
            )


def _account_policy(checks: _Checks) -> None:
    """R3 and R13 as the policy states them (warnings: the running service raises the cases)."""
    for index, account in enumerate(checks.accounts):
        account = _as_dict(account)
        active_admins = [
            str(a)
            for a in _as_list(account.get("admins"))
            if checks.staff_by_id.get(a, {}).get("active", True) is not False
        ]
        if two_admin_problem(active_admins) is not None:
            checks.add(
                ("accounts", index, "admins"),
                "fewer than two active administrators (policy R3): this will raise a case for SLT",
                warning=True,
            )
        gaps = register_gaps(
            approved_by=account.get("approved_by"), linked_email=account.get("linked_email")
        )
        for field_name_, missing in gaps:
            checks.add(
                ("accounts", index),
                f"{missing} ({field_name_}): reported as non-compliant (R13)",
                warning=True,
            )


def _account_credentials(checks: _Checks) -> None:
    """Each account's options and credentials are its platform's, and its secrets resolve."""
    for index, account in enumerate(checks.accounts):
        _check_credentials(_as_dict(account), index, checks.add, checks.environ, checks.base_dir)


def _routing_references(checks: _Checks) -> None:
    """The people and schools routing and the digest name exist."""
    data = checks.source.data
    routing = _as_dict(data.get("routing"))
    for role in ROLE_OVERRIDES:
        for j, staff_id in enumerate(_as_list(routing.get(role))):
            checks.check_staff(("routing", role, j), staff_id, f"routing.{role}")
    for school in _as_dict(routing.get("schools")):
        checks.check_school(("routing", "schools", school), school)
    for j, staff_id in enumerate(_as_list(_as_dict(data.get("digest")).get("recipients"))):
        checks.check_staff(("digest", "recipients", j), staff_id, "digest.recipients")


def _classifier_files(checks: _Checks) -> None:
    """The protected-names file exists."""
    names_file = _as_dict(checks.source.data.get("classifier")).get("protected_names_file")
    if names_file and not (checks.base_dir / str(names_file)).is_file():
        checks.add(("classifier", "protected_names_file"), f"file {names_file!r} does not exist")


# The checks between sections, each small; problems are sorted by file and line afterwards.
CROSS_CHECKS: tuple[Callable[[_Checks], None], ...] = (
    _unique_fields,
    _staff_references,
    _account_references,
    _account_policy,
    _account_credentials,
    _routing_references,
    _classifier_files,
)


def _cross_checks(
    source: _Source, fallback: str, environ: Mapping[str, str], base_dir: Path
) -> list[Problem]:
    """References between sections, duplicates, policy gaps and secrets; runs on the raw data."""
    checks = _Checks(source, fallback, environ, base_dir)
    for validator in CROSS_CHECKS:
        validator(checks)
    return checks.problems


def _check_credentials(
    account: dict[str, Any], index: int, add: Any, environ: Mapping[str, str], base_dir: Path
) -> None:
    try:
        platform = Platform(str(account.get("platform")))
    except ValueError:
        return  # pydantic reports the bad platform
    declared = manifest(platform)  # what the platform's connector reads
    credentials = _as_dict(account.get("credentials"))
    _check_known_names(account, index, add, declared)
    if account.get("enabled", True) is False:
        return
    if declared.missing_libraries():
        add(("accounts", index, "platform"), declared.install_hint())
    for name in sorted(declared.required_credentials):
        if name not in credentials:
            add(("accounts", index, "credentials"), f"{platform.value} needs credential {name!r}")
    _check_secrets(credentials, index, add, environ, base_dir)


def _check_known_names(account: dict[str, Any], index: int, add: Any, declared: Manifest) -> None:
    """Options and credentials the platform's manifest does not declare."""
    platform = declared.platform
    known_options = declared.options
    for name in _as_dict(account.get("options")):
        if name not in known_options:
            add(
                ("accounts", index, "options", name),
                f"{platform.value} has no option {name!r} (known: {', '.join(sorted(known_options))})",
            )
    required, optional = declared.required_credentials, declared.optional_credentials
    credentials = _as_dict(account.get("credentials"))
    for name in credentials:
        if name not in required | optional:
            known = ", ".join(sorted(required | optional)) or "none"
            add(
                ("accounts", index, "credentials", name),
                f"{platform.value} has no credential {name!r} (known: {known})",
            )


def _check_secrets(
    credentials: dict[str, Any], index: int, add: Any, environ: Mapping[str, str], base_dir: Path
) -> None:
    """Each credential's secret can be read."""
    from monitor.config_models import SecretRef

    for name, ref in credentials.items():
        try:
            secret_ref = SecretRef.model_validate(ref)
        except ValidationError:
            continue  # pydantic reports the shape
        try:
            resolve_secret(secret_ref, base_dir=base_dir, environ=environ)
        except SecretMissing as exc:
            add(("accounts", index, "credentials", name), f"missing credential: {exc}")


def load_config(
    path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None
) -> LoadedConfig:
    """Load, merge includes, validate; raise ConfigError listing every problem."""
    config_path = Path(path)
    env = os.environ if environ is None else environ
    problems: list[Problem] = []
    source = _gather(config_path, problems)
    fallback = str(config_path)
    config: Config | None = None
    if not problems or source.data:
        try:
            config = Config.model_validate(source.data)
        except ValidationError as exc:
            # a base-60 number is already reported where YAML read it, with its text
            base_60 = {(p.file, p.field) for p in problems if p.message.startswith(_BASE_60)}
            problems.extend(
                p
                for p in _pydantic_problems(source, exc, fallback)
                if (p.file, p.field) not in base_60
            )
        problems.extend(_cross_checks(source, fallback, env, config_path.parent))
    errors = [p for p in problems if not p.warning]
    if errors or config is None:
        raise ConfigError(_sorted(errors or problems))
    return LoadedConfig(
        config=config, path=config_path, warnings=tuple(_sorted(p for p in problems if p.warning))
    )


def _sorted(problems: Iterable[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda p: (p.file, p.line or 0, p.field))
