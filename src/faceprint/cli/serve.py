"""`faceprint serve`: the HTTP service and its web page on a persistent gallery."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from ..models import LICENCE_ENV
from .common import AcceptLicenceOpt, CooldownOpt, GreetOpt, GreetTemplateOpt, GreetToOpt, MinQualityOpt

err = Console(stderr=True)


def serve(
    host: Optional[str] = typer.Option(None, "--host", help="Address to listen on (env FACEPRINT_HOST; default 127.0.0.1)."),
    port: Optional[int] = typer.Option(None, "--port", help="Port (env FACEPRINT_PORT; default 8000)."),
    db: Optional[str] = typer.Option(
        None, "--db",
        help="The gallery: a SQLite file or a postgresql:// URL (env FACEPRINT_GALLERY; default ~/.cache/faceprint/gallery.db)."
    ),
    detector: Optional[str] = typer.Option(None, "--detector", "-d", help="Face detector (default: the model's own)."),
    workers: int = typer.Option(
        1, "--workers", min=1, help="Server processes sharing the port; more than 1 needs a postgresql:// gallery."
    ),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Embedding model (default: the gallery's own)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for the networks."),
    far: Optional[float] = typer.Option(
        None, "--far", min=0.0, max=0.5, help="Decide at this false-accept rate (env FACEPRINT_FAR) via the model's calibration."
    ),
    accept_licence: Optional[str] = AcceptLicenceOpt,
    min_quality: Optional[float] = MinQualityOpt,
    api_key: Optional[str] = typer.Option(None, "--api-key", help="Key needed for every /v1 call (env FACEPRINT_API_KEY)."),
    admin_key: Optional[str] = typer.Option(None, "--admin-key", help="Key needed for changes (env FACEPRINT_ADMIN_KEY)."),
    cors: Optional[str] = typer.Option(None, "--cors", help="Allowed browser origins, comma-separated (env FACEPRINT_CORS_ORIGINS)."),
    greet: bool = GreetOpt,
    greet_template: str = GreetTemplateOpt,
    greet_to: Optional[Path] = GreetToOpt,
    cooldown: float = CooldownOpt,
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level."),
) -> None:
    """Serve the HTTP API (OpenAPI at /docs) and the web page (at /) on a persistent gallery."""
    try:
        import uvicorn

        from ..gallery.store import is_url, redact
        from ..service import Settings, create_app, exposure_warning
        from ..service.middleware import GuardedH11Protocol
    except ImportError as exc:
        err.print(f"[red]error:[/] the service needs its extra ({exc.name} is missing): pip install 'faceprint[service]'")
        raise typer.Exit(2) from None
    if accept_licence:  # the service builds its models from the environment's accepted licences
        os.environ[LICENCE_ENV] = accept_licence
    try:
        settings = Settings.from_env(
            host=host, port=port, db=db, detector=detector, model=model, threads=threads, far=far,
            min_quality=min_quality,
            api_key=api_key, admin_key=admin_key, cors_origins=cors,
            greet_template=greet_template if greet or greet_to is not None else None,
            greet_to=None if greet_to is None else str(greet_to), greet_cooldown=cooldown,
        )
    except ValueError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
    if settings.greet_template is not None:  # a wrong template or a missing espeak-ng: said now, not at start-up
        from ..errors import FaceprintError
        from ..video.greeter import Greeter

        try:
            Greeter(template=settings.greet_template, to=settings.greet_to).close()
        except (FaceprintError, ValueError) as exc:
            err.print(f"[red]error:[/] {escape(str(exc))}")
            raise typer.Exit(2) from None
    warning = exposure_warning(settings)
    if warning:
        err.print(f"[yellow]warning:[/] {warning}")
    if workers > 1 and not is_url(settings.db):
        err.print(
            f"[red]error:[/] --workers {workers}: a SQLite gallery keeps one server process (its writes and "
            "in-memory index are per process); use a postgresql:// gallery for several"
        )
        raise typer.Exit(2)
    err.print(
        f"faceprint: gallery {redact(settings.db)}; web page and API on http://{settings.host}:{settings.port}/ "
        f"(API docs at /docs){f'; {workers} worker processes' if workers > 1 else ''}"
    )
    # GuardedH11Protocol limits connections (in all and per client address) and gives each request
    # head a deadline; the app limits requests (settings.max_requests) with the service's JSON 503.
    # uvicorn's limit_concurrency is not used: it counts idle connections too, which slow clients exhaust.
    # timeout_graceful_shutdown: the open-ended answers (/v1/events, stream previews) would otherwise
    # hold a stop (Ctrl-C, SIGTERM) for as long as their clients stay.
    common: dict = dict(host=settings.host, port=settings.port, log_level=log_level, http=GuardedH11Protocol,
                        timeout_keep_alive=10, timeout_graceful_shutdown=5)
    if workers == 1:
        uvicorn.run(create_app(settings), **common)
        return
    os.environ.update(settings.to_env())  # each worker process builds its app from the environment
    uvicorn.run("faceprint.service.app:create_app", factory=True, workers=workers, **common)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
