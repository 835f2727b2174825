"""The classifier the worker calls: rules always, the toxicity model whenever it is available.

The model loads lazily, once per process. When it cannot load, nothing is raised: one clear
error is logged (cause and fix), assessments come from the rules alone with ``model=None``
(so the caller stores them as unscored and rescores them later), loading is retried after a
back-off, and ``on_status_change`` is called once when the model goes down and once when it
is back, so IT can be alerted once rather than per item.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, cast

from monitor.classify.assessment import Assessment
from monitor.classify.engine import Hit, RuleEngine, combine
from monitor.classify.personal_data import ProtectedNames
from monitor.clock import require_aware, utcnow
from monitor.config_models import Classifier, School, UnknownSchool
from monitor.constants import SEVERITY_ORDER, Category

if TYPE_CHECKING:
    from monitor.classify.concern import ConcernModel
    from monitor.classify.precision import GuardFigures, PrecisionStore
    from monitor.classify.toxicity import ToxicityModel

log = logging.getLogger(__name__)
# rule hits that put a comment at the front of the scoring queue: what someone must act on fast
URGENT_CATEGORIES = frozenset(
    {Category.SAFEGUARDING, Category.THREAT, Category.ABUSIVE, Category.PERSONAL_DATA}
)


def urgency(hits: Iterable[Hit]) -> int:
    """0 when no hit makes a comment urgent; else 1 + the gravest urgent hit's severity rank."""
    ranks = [
        SEVERITY_ORDER[severity] for match, severity in hits if match.category in URGENT_CATEGORIES
    ]
    return 1 + max(ranks) if ranks else 0


@dataclass(frozen=True)
class Triaged:
    """A comment's rule hits, worked out before the model scores it."""

    hits: tuple[Hit, ...]
    priority: int  # 0: scored in turn; higher: scored sooner (a disclosure before an insult)

    @property
    def urgent(self) -> bool:
        """Whether it is scored ahead of the queue."""
        return self.priority > 0


RETRY_FIRST = timedelta(minutes=1)
RETRY_MAX = timedelta(minutes=30)


class ModelState(StrEnum):
    """Where the toxicity model is."""

    NOT_LOADED = "not_loaded"  # not needed yet (it loads on first use)
    LOADED = "loaded"
    UNAVAILABLE = "unavailable"  # failed; rules only until a retry succeeds


@dataclass(frozen=True)
class ModelStatus:
    """The toxicity model's state, with the cause and fix while it is unavailable."""

    state: ModelState
    model: str
    reason: str | None = None
    fix: str | None = None
    down_since: datetime | None = None
    next_retry_at: datetime | None = None
    failures: int = 0
    still_scoring: str | None = None  # the model that still scores while the other is down

    @property
    def available(self) -> bool:
        """True once the model is loaded."""
        return self.state is ModelState.LOADED

    def message(self) -> str:
        """One paragraph for the IT alert or the command line."""
        if self.state is ModelState.LOADED:
            return f"Toxicity model {self.model} is loaded."
        if self.state is ModelState.NOT_LOADED:
            return f"Toxicity model {self.model} is not loaded yet (it loads on first use)."
        since = self.down_since.strftime("%Y-%m-%d %H:%M UTC") if self.down_since else "?"
        retry = (
            f" Next try at {self.next_retry_at.strftime('%H:%M UTC')}."
            if self.next_retry_at
            else ""
        )
        checked = f"the rules and {self.still_scoring}" if self.still_scoring else "the rules alone"
        return (
            f"Toxicity model {self.model} unavailable since {since}: {self.reason}. "
            f"Fix: {self.fix}. Comments are checked by {checked} and marked unscored; "
            f"they are rescored once the model loads.{retry}"
        )


_SHARED_LOCK = threading.Lock()
_SHARED: dict[tuple[str, str | None, str | None, str], object] = {}


def _shared_detoxify(config: Classifier, base_dir: Path | None) -> object:
    """One Detoxify per process and configuration: a second pipeline reuses the first's."""
    from monitor.classify.toxicity import load_detoxify

    key = (
        config.model,
        str(base_dir / config.checkpoint) if base_dir and config.checkpoint else config.checkpoint,
        str(base_dir / config.huggingface_config_path)
        if base_dir and config.huggingface_config_path
        else config.huggingface_config_path,
        config.device,
    )
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = load_detoxify(config, base_dir=base_dir)
        return _SHARED[key]


def _shared_concern(config: Classifier, base_dir: Path | None) -> ConcernModel:
    """One concern model per process and configuration."""
    from monitor.classify.concern import ConcernModel

    concern = config.concern
    path = str(base_dir / concern.model_path) if base_dir and concern.model_path else None
    key = ("concern", path or concern.model_path, None, concern.device)
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = ConcernModel.load(concern, base_dir=base_dir)
        return cast("ConcernModel", _SHARED[key])


class ClassifierPipeline:
    """Assess comments: rule hits, model scores, categories and a severity for each."""

    def __init__(
        self,
        config: Classifier,
        schools: Sequence[School] | None = None,
        *,
        base_dir: Path | None = None,
        clock: Callable[[], datetime] = utcnow,
        on_status_change: Callable[[ModelStatus], None] | None = None,
        retry_first: timedelta = RETRY_FIRST,
        retry_max: timedelta = RETRY_MAX,
        precision_store: PrecisionStore | None = None,
    ) -> None:
        from monitor.classify.toxicity import describe

        self.config = config
        self.base_dir = base_dir
        self.schools = {school.key: school for school in schools or ()}
        self._clock = clock
        self._on_status_change = on_status_change
        self._retry_first = retry_first
        self._retry_max = retry_max
        self._lock = threading.RLock()  # the model: one scoring at a time
        self._engines_lock = threading.Lock()  # not the model's: rules run while it scores
        self._engines: dict[str | None, RuleEngine] = {}
        self._model: ToxicityModel | None = None
        self._concern: ConcernModel | None = None
        self._precision_store = precision_store
        # what the int8 guard found for each loaded model (none with precision: fp32)
        self.precision_figures: dict[str, GuardFigures] = {}
        name = describe(config) + (" + concern model" if config.concern.enabled else "")
        self._status = ModelStatus(state=ModelState.NOT_LOADED, model=name)
        names_file = config.protected_names_file
        if names_file:
            path = Path(names_file)
            if not path.is_absolute() and base_dir is not None:
                path = base_dir / path
            self.names: ProtectedNames | None = ProtectedNames(path)
            self.names.refresh()  # warn about a missing or readable file at start
        else:
            self.names = None

    @property
    def model_status(self) -> ModelStatus:
        """Whether the model is loaded; the reason and the fix when it is not."""
        return self._status

    def engine(self, school_key: str | None = None) -> RuleEngine:
        """The rules for ``school_key`` (None: no school's names or terms), compiled once.

        ``UnknownSchool`` if ``school_key`` is not configured.
        """
        with self._engines_lock:
            if school_key not in self._engines:
                if school_key is not None and school_key not in self.schools:
                    raise UnknownSchool(school_key)
                school = self.schools.get(school_key) if school_key else None
                self._engines[school_key] = RuleEngine.for_school(school, self.names)
            return self._engines[school_key]

    def load(self, *, force: bool = False) -> ModelStatus:
        """Load the model now unless it is waiting for its retry time (``force``: try anyway)."""
        with self._lock:
            self._ensure_model(force=force)
            return self._status

    def triage(self, texts: Sequence[str], *, school_key: str | None = None) -> list[Triaged]:
        """The rule hits of each text (cheap, no model), and whether they make it urgent.

        The worker triages comments as they are stored and scores the urgent ones first;
        ``assess(..., triaged=...)`` reuses these hits instead of running the rules again.
        """
        engine = self.engine(school_key)
        out = []
        for text in texts:
            hits = tuple(engine.run(text))
            out.append(Triaged(hits, priority=urgency(hits)))
        return out

    def assess(
        self,
        texts: Sequence[str],
        *,
        school_key: str | None = None,
        triaged: Sequence[Triaged | None] | None = None,
    ) -> list[Assessment]:
        """One assessment per text, in order; rules only (``model=None``) if the model is down.

        ``triaged``: what ``triage`` said of each text (None where it was not triaged).
        """
        engine = self.engine(school_key)
        known = list(triaged) if triaged is not None else [None] * len(texts)
        if len(known) != len(texts):
            raise ValueError("triaged must have one entry per text")
        hits = [
            list(done.hits) if done is not None else engine.run(text)
            for text, done in zip(texts, known, strict=True)
        ]
        scores: list[dict[str, float]] | None = None
        name: str | None = None
        if texts:
            with self._lock:
                scores, name = self._score([engine.for_model(text) for text in texts])
                from monitor.classify.heap import release_free_memory

                release_free_memory()  # the batch's activations, back to the system
        thresholds = self.config.thresholds
        return [
            combine(
                text_hits,
                scores[i] if scores is not None else None,
                thresholds,
                name,
                named=engine.subjects_named(text) if scores is not None else frozenset(),
            )
            for i, (text, text_hits) in enumerate(zip(texts, hits, strict=True))
        ]

    def model_scores(self, texts: Sequence[str]) -> list[dict[str, float]] | None:
        """The models' scores for ``texts`` as given (no rules; the caller has prepared them
        with ``engine(...).for_model``), or None while no model can score."""
        if not texts:
            return []
        with self._lock:
            scores, _name = self._score(list(texts))
        return scores

    def _score(self, texts: list[str]) -> tuple[list[dict[str, float]] | None, str | None]:
        """Each model's scores for ``texts`` and the models' name (None unless all scored).

        Each model degrades alone: with the toxicity model down the concern model still
        scores (and the reverse); the assessment is then marked unscored (name None) so it
        is rescored once every model is back, but its scores already raise categories.
        """
        model = self._ensure_model(force=False)
        concern = self._concern
        if model is None and concern is None:
            return None, None
        rows: list[dict[str, float]] = [{} for _ in texts]
        names: list[str] = []
        if model is not None:
            try:
                rows = model.score(texts)
                names.append(model.name)
            except Exception as exc:  # a broken model must not stop the monitor
                log.debug("toxicity scoring failed", exc_info=True)
                self._model = None
                self._failed(
                    f"scoring failed ({type(exc).__name__}: {str(exc)[:200]})",
                    "see the debug log; the model is reloaded after a pause",
                )
        if concern is not None:
            try:
                for row, extra in zip(rows, concern.score(texts), strict=True):
                    row.update(extra)
                names.append(concern.name)
            except Exception as exc:
                log.debug("concern scoring failed", exc_info=True)
                self._concern = None
                self._failed(
                    f"the concern model failed ({type(exc).__name__}: {str(exc)[:200]})",
                    "see the debug log; the model is reloaded after a pause",
                )
        if not names:
            return None, None
        complete = self._model is not None and (
            self._concern is not None or not self.config.concern.enabled
        )
        return rows, "+".join(names) if complete else None

    def _ensure_model(self, *, force: bool) -> ToxicityModel | None:
        """The toxicity model, loading whichever model is missing (each on its own)."""
        wants_concern = self.config.concern.enabled
        if self._model is not None and (self._concern is not None or not wants_concern):
            return self._model
        status = self._status
        if (
            not force
            and status.state is ModelState.UNAVAILABLE
            and status.next_retry_at is not None
            and require_aware(self._clock()) < status.next_retry_at
        ):
            return self._model
        from monitor.classify.concern import ConcernLoadError
        from monitor.classify.heap import return_large_blocks
        from monitor.classify.toxicity import ModelLoadError, ToxicityModel, describe, fingerprint

        return_large_blocks()  # each batch's activations go back to the system when freed
        failed: list[ModelLoadError | ConcernLoadError] = []
        if self._model is None:
            try:
                detoxify = _shared_detoxify(self.config, self.base_dir)
                model = ToxicityModel(
                    detoxify, name=describe(self.config), batch_size=self.config.batch_size
                )
                self._choose_precision(
                    model.name,
                    lambda: fingerprint(self.config, base_dir=self.base_dir),
                    model.score,
                    model.labels,
                    model.use,
                )
                self._model = model
            except ModelLoadError as exc:
                failed.append(exc)
        if wants_concern and self._concern is None:
            try:
                concern = _shared_concern(self.config, self.base_dir)
                self._choose_precision(
                    concern.name,
                    lambda: concern.fingerprint,
                    concern.score,
                    concern.labels,
                    concern.use,
                )
                self._concern = concern
            except ConcernLoadError as exc:
                failed.append(exc)
        if failed:
            self._failed(
                "; ".join(exc.reason for exc in failed),
                "; ".join(exc.fix for exc in failed),
                still_scoring=self._still_scoring(),
            )
            return self._model
        was_down = status.state is ModelState.UNAVAILABLE
        self._status = ModelStatus(state=ModelState.LOADED, model=status.model)
        if was_down:
            log.info(
                "toxicity model %s loaded after %d failed attempts; unscored items can be rescored",
                status.model,
                status.failures,
            )
            self._notify()
        else:
            log.info("toxicity model %s loaded", status.model)
        return self._model

    def _choose_precision(
        self,
        name: str,
        model_fingerprint: Callable[[], str],
        score: Callable[..., list[dict[str, float]]],
        labels: Sequence[str],
        use: Callable[[str], None],
    ) -> None:
        """int8 or fp32 for one loaded model, by the accuracy guard (see precision.py)."""
        from monitor.classify.precision import PrecisionStore, run_guard

        requested = self.config.precision
        if requested == "fp32":
            use("fp32")
            return
        thresholds = {label: self.config.thresholds.get(label) for label in labels}
        try:
            figures = run_guard(
                model=name,
                fingerprint=model_fingerprint(),
                score_fp32=lambda texts: score(texts, precision="fp32"),
                score_int8=lambda texts: score(texts, precision="int8"),
                thresholds=thresholds,
                tolerance=self.config.precision_tolerance,
                requested=requested,
                store=self._precision_store or PrecisionStore(),
                now=require_aware(self._clock()),
            )
        except Exception as exc:  # the guard failing must not keep the model down
            log.warning("%s: the int8 guard failed (%s); staying on fp32", name, exc)
            log.debug("int8 guard failure", exc_info=True)
            use("fp32")
            return
        use(figures.mode)
        self.precision_figures[name] = figures
        if figures.mode == "int8" or requested == "int8":
            log.info("%s runs in %s: %s", name, figures.mode, figures.reason)
        else:
            log.warning("%s runs in fp32: %s", name, figures.reason)

    def _still_scoring(self) -> str | None:
        if self._model is not None:
            return f"the toxicity model {self._model.name}"
        if self._concern is not None:
            return f"the concern model {self._concern.name} (safeguarding by meaning)"
        return None

    def _failed(self, reason: str, fix: str, *, still_scoring: str | None = None) -> None:
        now = require_aware(self._clock())
        previous = self._status
        failures = previous.failures + 1 if previous.state is ModelState.UNAVAILABLE else 1
        delay = min(self._retry_first * 2 ** (failures - 1), self._retry_max)
        first = previous.state is not ModelState.UNAVAILABLE
        self._status = replace(
            previous,
            state=ModelState.UNAVAILABLE,
            reason=reason,
            fix=fix,
            down_since=now if first else previous.down_since,
            next_retry_at=now + delay,
            failures=failures,
            still_scoring=still_scoring,
        )
        if first:
            log.error("%s", self._status.message())
            self._notify()
        else:
            log.debug("toxicity model still unavailable (attempt %d): %s", failures, reason)

    def _notify(self) -> None:
        if self._on_status_change is None:
            return
        try:
            self._on_status_change(self._status)
        except Exception:  # the alert path failing must not break classification
            log.exception("the classifier status callback failed")
