"""Running the service: ``monitor run`` (worker and web in one process), ``worker``, ``web``."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer

from monitor.config import LoadedConfig
from monitor.context import AppContext, config_path_option, load_or_exit
from monitor.logs import configure
from monitor.secrets import configured_secret_values

ConfigOption = Annotated[Path | None, typer.Option("--config", help="Configuration file.")]
HostOption = Annotated[str, typer.Option("--host", help="Address the web app listens on.")]
PortOption = Annotated[int, typer.Option("--port", help="Port the web app listens on.")]


def _start_logging(ctx: AppContext, loaded: LoadedConfig | None = None) -> None:
    """Logs with every secret redacted: the environment's and each account's credentials."""
    secrets = ctx.settings.secret_values()
    from monitor.audit_key import AuditKeyError, load_key

    # a generated audit key is not in the settings: redact it too (none yet on the first
    # start, when it is generated just after; a bad one is reported by _check_audit_key)
    with contextlib.suppress(AuditKeyError):
        secrets.append(load_key(create=False).secret.decode("utf-8"))
    if loaded is not None:
        refs = [ref for account in loaded.config.accounts for ref in account.credentials.values()]
        oidc = loaded.config.web.oidc
        if oidc is not None and oidc.client_secret is not None:
            refs.append(oidc.client_secret)
        secrets += configured_secret_values(refs, base_dir=loaded.path.parent)
    configure(ctx.settings.log_level, ctx.settings.log_format, secrets=secrets, hooks=True)


def _assessor(loaded: Any) -> Any:
    from monitor.classify.pipeline import ClassifierPipeline

    return ClassifierPipeline(
        loaded.config.classifier, loaded.config.schools, base_dir=loaded.path.parent
    )


def _start_worker(ctx: AppContext, loaded: Any) -> tuple[Any, threading.Thread]:
    from monitor.service import make_worker_process

    _ = ctx.engine  # an unreachable database is one line and exit 2, before anything starts
    process = make_worker_process(ctx, loaded, _assessor(loaded))
    thread = threading.Thread(target=process.run, name="worker", daemon=False)
    thread.start()
    return process, thread


def _serve_web(
    ctx: AppContext,
    loaded: LoadedConfig,
    host: str,
    port: int,
    worker_state: Any = None,
    on_stop: Any = None,
) -> None:
    """Serve the web app until SIGTERM or Ctrl-C; then ``on_stop`` (stop the worker) and return."""
    import uvicorn

    from monitor.secrets import SecretMissing, resolve_secret
    from monitor.web.app import create_app

    oidc = loaded.config.web.oidc
    client_secret = None
    if oidc is not None and oidc.client_secret is not None:
        try:
            client_secret = resolve_secret(oidc.client_secret, base_dir=loaded.path.parent)
        except SecretMissing as exc:
            typer.echo(f"web.oidc.client_secret: error: {exc}", err=True)
            raise typer.Exit(2) from exc
    session_secret = ctx.settings.web_session_secret

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # our handlers, so that after the web app the worker is stopped too and we exit 0
            yield

    config = uvicorn.Config(
        create_app(
            ctx.engine,
            worker_state=worker_state,
            config=loaded.config,
            session_secret=session_secret.get_secret_value() if session_secret else None,
            oidc_client_secret=client_secret,
            media_dir=ctx.settings.monitor_data_dir / "post-media",
            config_dir=loaded.path.parent,
        ),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
    )
    server = Server(config)

    def stop(_signum: int, _frame: FrameType | None) -> None:
        server.should_exit = True
        if on_stop is not None:
            on_stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.run()


def _check_audit_key() -> None:
    """The audit key, read (or generated) before anything starts; a bad one exits 2."""
    from monitor.audit_key import AuditKeyError, load_key

    try:
        load_key()
    except AuditKeyError as exc:
        typer.echo(f"environment: error: {exc}", err=True)
        raise typer.Exit(2) from exc


def _scaled_worker(ctx: AppContext, loaded: LoadedConfig, threads: int) -> None:
    """``monitor worker --scale``: consume tasks until SIGTERM (a drain) or Ctrl-C."""
    from monitor.scale import process
    from monitor.scale.broker import ScaleError, ScaleSettings

    try:
        scale = ScaleSettings.from_settings(ctx.settings)
    except ScaleError as exc:
        typer.echo(f"environment: error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if scale is None:
        typer.echo("environment: error: --scale needs MONITOR_BROKER_URL", err=True)
        raise typer.Exit(2)
    if ctx.engine.dialect.name != "postgresql":
        typer.echo("environment: error: --scale needs PostgreSQL (DATABASE_URL)", err=True)
        raise typer.Exit(2)
    process.one_torch_thread()
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    process.run(ctx, loaded, _assessor(loaded), scale, threads=threads, stop=stop)


def run(
    config: ConfigOption = None, host: HostOption = "127.0.0.1", port: PortOption = 8080
) -> None:
    """Run everything in one process: the worker (polling, alerts, checks) and the web app."""
    ctx = AppContext.from_env()
    loaded = load_or_exit(config_path_option(config, ctx.settings))
    _start_logging(ctx, loaded)
    _check_audit_key()
    process, thread = _start_worker(ctx, loaded)
    try:
        _serve_web(
            ctx,
            loaded,
            host,
            port,
            worker_state=lambda: dict(process.state),
            on_stop=process.stop.set,
        )
    finally:
        process.stop.set()
        thread.join()  # running jobs finish or roll back before we exit


def worker(
    config: ConfigOption = None,
    scale: Annotated[
        bool,
        typer.Option(
            "--scale",
            help="Consume the scaled mode's task queues (MONITOR_BROKER_URL) instead of leading.",
        ),
    ] = False,
    threads: Annotated[
        int,
        typer.Option(
            "--threads",
            min=1,
            max=5,  # a task holds two of the engine's ten connections: its lease, its work
            help="Tasks run at once (with --scale); more workers for more.",
        ),
    ] = 4,
) -> None:
    """Run the worker alone (one leads; others wait as standbys and take over within a minute).

    With --scale, consume tasks: any number of these share the leader's work.
    """
    ctx = AppContext.from_env()
    loaded = load_or_exit(config_path_option(config, ctx.settings))
    _start_logging(ctx, loaded)
    _check_audit_key()
    if scale:
        _scaled_worker(ctx, loaded, threads)
        return
    process, thread = _start_worker(ctx, loaded)

    def stop(_signum: int, _frame: FrameType | None) -> None:
        process.stop.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while thread.is_alive():
        thread.join(timeout=1.0)


def web(
    config: ConfigOption = None, host: HostOption = "127.0.0.1", port: PortOption = 8080
) -> None:
    """Run the web app alone: the staff's workplace, /healthz and /readyz."""
    ctx = AppContext.from_env()
    loaded = load_or_exit(config_path_option(config, ctx.settings))
    _start_logging(ctx, loaded)
    _ = ctx.engine  # an unreachable database is one line and exit 2
    _serve_web(ctx, loaded, host, port)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("run")(run)
    app.command("worker")(worker)
    app.command("web")(web)
