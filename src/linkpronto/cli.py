"""The ``linkpronto`` command. The only place that turns errors into exit codes.

Exit codes: 0 success, 1 error, 2 usage, 3 not ready (``status --wait-ready`` timed out, or a link
could not be verified in time).
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from pydantic import ValidationError

from linkpronto import console, schema
from linkpronto.config import Settings, load_settings
from linkpronto.errors import LinkprontoError, NotRunning, NotStopped, UsageError, VerifyTimeout
from linkpronto.i18n import Text, default_lang


def _h(pt: str, en: str) -> str:
    """Help text in the process's language (``LINKPRONTO_LANG``), chosen once, when the CLI is built."""
    return Text(pt, en).get()


EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_NOT_READY = 0, 1, 2, 3

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help=_h(
        "linkpronto: links de consulta que funcionam — provados antes de serem enviados.",
        "linkpronto: consultation links that work — proven before anyone receives them.",
    ),
    pretty_exceptions_enable=False,
)
link_app = typer.Typer(
    no_args_is_help=True,
    help=_h("Criar, listar e cancelar links de consulta.", "Create, list and revoke consultation links."),
)
app.add_typer(link_app, name="link")

ConfigOpt = Annotated[Path | None, typer.Option("--config", help=_h("Arquivo linkpronto.toml.", "The linkpronto.toml file."))]


def _settings(config: Path | None, overrides: dict[str, dict[str, Any]] | None = None) -> Settings:
    return load_settings(config, overrides)


class AdminClient:
    """Talks to a running orchestrator's admin API with the admin token."""

    def __init__(self, settings: Settings) -> None:
        from linkpronto.platform import read_orchestrator_info

        info = read_orchestrator_info(settings.data_dir)
        self.base = (info or {}).get("admin_url") or f"http://127.0.0.1:{settings.server.admin_port}"
        token_path = settings.data_dir / "admin-token"
        if not token_path.exists():
            raise NotRunning(
                fix=Text(
                    f"Inicie com: linkpronto up (pasta de dados: {settings.data_dir})",
                    f"Start it with: linkpronto up (data folder: {settings.data_dir})",
                )
            )
        self.client = httpx.Client(
            base_url=self.base,
            headers={
                "Authorization": "Bearer " + token_path.read_text("ascii").strip(),
                # Answers (status, problems, fixes) in the CLI's own language.
                "Accept-Language": default_lang(),
            },
            timeout=httpx.Timeout(75.0, connect=3.0),
        )

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            return self.client.request(method, path, **kw)
        except httpx.ConnectError as exc:
            raise NotRunning() from exc
        except httpx.TimeoutException as exc:
            raise VerifyTimeout() from exc


def _problem_exit(res: httpx.Response) -> None:
    try:
        body = res.json()
    except ValueError:
        body = {}
    try:
        problem: schema.Problem | None = schema.ErrorBody.model_validate(body).error
    except ValidationError:  # not one of our answers (a proxy's page, another program on the port)
        problem = None
    if problem is not None:
        console.print_problem(problem)
    else:
        sys.stderr.write(f"error[HTTP_{res.status_code}]: {res.text[:300]}\n")
    raise typer.Exit(EXIT_ERROR)


# -- up -----------------------------------------------------------------------------------------------
@app.command(help=_h("Sobe tudo: LiveKit, túnel, seu app, e prova que os links funcionam.",
                     "Starts everything: LiveKit, the tunnel, your app, and proves that links work."))
def up(
    config: ConfigOpt = None,
    tunnel: Annotated[
        str | None, typer.Option(help="auto|ngrok|ngrok-agent|cloudflared|ssh|static|lan")
    ] = None,
    livekit: Annotated[str | None, typer.Option(help="local|external|cloud")] = None,
    app_cmd: Annotated[
        str | None, typer.Option("--app", help=_h('Comando do seu app, ex.: "npx next dev -p 3001"',
                                      'Your app\'s command, e.g. "npx next dev -p 3001"'))
    ] = None,
    app_port: Annotated[int | None, typer.Option("--app-port")] = None,
    link_path: Annotated[
        str | None, typer.Option("--link-path", help=_h("ex.: /consultations/client/{token}", "e.g. /consultations/client/{token}"))
    ] = None,
    mode: Annotated[str | None, typer.Option(help="always-on|on-demand")] = None,
    no_install: Annotated[bool, typer.Option("--no-install", help=_h("Nunca baixar binários.", "Never download binaries."))] = False,
) -> None:
    """Sobe tudo: LiveKit, túnel, seu app, e prova que os links funcionam."""
    overrides: dict[str, dict[str, Any]] = {
        "tunnel": {"provider": tunnel},
        "livekit": {"mode": livekit},
        "app": {"command": app_cmd, "port": app_port, "link_path": link_path},
        "stack": {"mode": mode, "install": False if no_install else None},
    }
    settings = _settings(config, overrides)
    from linkpronto.live import run_up

    code = run_up(settings)
    raise typer.Exit(code)


# -- serve --------------------------------------------------------------------------------------------
@app.command()
def serve(
    config: ConfigOpt = None,
    public_url: Annotated[
        str | None, typer.Option("--public-url", help="Seu domínio, ex.: https://consultas.clinica.com.br")
    ] = None,
    livekit: Annotated[str | None, typer.Option(help="external|cloud")] = None,
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="postgresql://usuario:senha@host/banco")
    ] = None,
    rate_limit_storage: Annotated[
        str | None, typer.Option("--rate-limit-storage", help="redis://host:6379")
    ] = None,
    admin_bind: Annotated[
        str | None, typer.Option("--admin-bind", help="HOST[:PORTA] da API de admin (padrão 127.0.0.1)")
    ] = None,
    public_bind: Annotated[
        str | None, typer.Option("--public-bind", help="HOST[:PORTA] da escuta pública")
    ] = None,
    app_port: Annotated[int | None, typer.Option("--app-port")] = None,
    link_path: Annotated[str | None, typer.Option("--link-path")] = None,
) -> None:
    """Modo produção: várias instâncias atrás do seu domínio (nada supervisionado)."""
    from linkpronto.production import run_serve, split_bind

    admin_host, admin_port = split_bind(admin_bind, "admin-bind")
    public_host, public_port = split_bind(public_bind, "public-bind")
    overrides: dict[str, dict[str, Any]] = {
        "server": {
            "database_url": database_url,
            "rate_limit_storage": rate_limit_storage,
            "admin_bind": admin_host,
            "admin_port": admin_port,
            "public_bind": public_host,
            "public_port": public_port,
        },
        "tunnel": {"provider": "static" if public_url else None, "static_url": public_url},
        "livekit": {"mode": livekit},
        "app": {"port": app_port, "link_path": link_path},
    }
    settings = _settings(config, overrides)
    raise typer.Exit(run_serve(settings))


# -- status -------------------------------------------------------------------------------------------
@app.command(help=_h("Mostra o estado do linkpronto (e espera ficar pronto com --wait-ready).",
                     "Shows linkpronto's state (and waits for it to be ready with --wait-ready)."))
def status(
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    wait_ready: Annotated[float | None, typer.Option("--wait-ready", help=_h("Espera até N segundos.", "Wait up to N seconds."))] = None,
) -> None:
    """Mostra o estado do linkpronto (e espera ficar pronto com --wait-ready)."""
    settings = _settings(config)
    deadline = time.monotonic() + (wait_ready or 0)
    while True:
        try:
            res = AdminClient(settings).request("GET", "/api/status")
        except NotRunning:
            # --wait-ready also waits for an `up` that is still starting.
            if wait_ready is None or time.monotonic() >= deadline:
                raise
            time.sleep(0.2)
            continue
        if res.status_code != 200:
            _problem_exit(res)
        doc = res.json()
        state = schema.Status.model_validate(doc)
        if wait_ready is None or state.state is schema.StackState.READY or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    if as_json:
        console.print_json(doc)
    else:
        console.print_status(state)
    if wait_ready is not None and state.state is not schema.StackState.READY:
        raise typer.Exit(EXIT_NOT_READY)


# -- logs ---------------------------------------------------------------------------------------------
LOGS_POLL_S = 0.5


@app.command()
def logs(
    component: Annotated[str, typer.Argument(help="app | livekit | tunnel")] = "app",
    follow: Annotated[bool, typer.Option("-f", "--follow", help="Continua mostrando novas linhas.")] = False,
    lines: Annotated[int, typer.Option("-n", "--lines", help="Quantas linhas do fim.")] = 100,
    config: ConfigOpt = None,
) -> None:
    """Mostra a saída do seu app (ou do LiveKit, ou do túnel) guardada pelo linkpronto."""
    if component not in ("app", "livekit", "tunnel"):
        raise typer.BadParameter("app | livekit | tunnel", param_hint="COMPONENT")
    client = AdminClient(_settings(config))
    res = client.request("GET", "/api/logs", params={"component": component, "n": max(0, lines)})
    if res.status_code != 200:
        _problem_exit(res)
    doc = res.json()
    console.print_log_lines(doc["lines"])
    after = int(doc.get("last_seq") or 0)
    while follow:
        try:
            time.sleep(LOGS_POLL_S)
            res = client.request("GET", "/api/logs", params={"component": component, "n": 2000, "after": after})
        except KeyboardInterrupt:
            break
        if res.status_code != 200:
            _problem_exit(res)
        doc = res.json()
        console.print_log_lines(doc["lines"])
        after = max(after, int(doc.get("last_seq") or 0))


# -- links --------------------------------------------------------------------------------------------
@link_app.command("create", help=_h("Cria um link de consulta verificado.", "Creates a verified consultation link."))
def link_create(
    professional: Annotated[str, typer.Option("--professional", help=_h("ID do profissional.", "The professional's ID."))],
    client_id: Annotated[str | None, typer.Option("--client")] = None,
    consultation_type: Annotated[str | None, typer.Option("--type")] = None,
    expires_in: Annotated[str | None, typer.Option("--expires-in", help=_h("ex.: 24h, 30m", "e.g. 24h, 30m"))] = None,
    max_uses: Annotated[int | None, typer.Option("--max-uses")] = None,
    wait: Annotated[float, typer.Option("--wait", help=_h("Segundos esperando a verificação.", "Seconds to wait for verification."))] = 20,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    config: ConfigOpt = None,
) -> None:
    """Cria um link de consulta verificado."""
    from linkpronto.config import parse_duration

    body: dict[str, Any] = {"professional_id": professional, "wait_s": min(max(wait, 0), 60)}
    if client_id:
        body["client_id"] = client_id
    if consultation_type:
        body["consultation_type"] = consultation_type
    if expires_in:
        try:
            body["expires_in_s"] = parse_duration(expires_in)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--expires-in") from exc
    if max_uses is not None:
        body["max_uses"] = max_uses
    try:  # the request model the API validates with: a bad value is refused here, in words
        schema.CreateLinkRequest.model_validate(body)
    except ValidationError as exc:
        raise typer.BadParameter("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())) from exc
    client = AdminClient(_settings(config))
    res = client.request("POST", "/api/consultation-links", json=body)
    if res.status_code not in (201, 202):
        _problem_exit(res)
    doc = res.json()
    link = schema.Link.model_validate(doc)
    if as_json:
        console.print_json(doc)
    else:
        console.print_link(link)
    if res.status_code != 201:
        raise typer.Exit(EXIT_NOT_READY)


@link_app.command("list", help=_h("Lista os links.", "Lists the links."))
def link_list(as_json: Annotated[bool, typer.Option("--json")] = False, config: ConfigOpt = None) -> None:
    """Lista os links."""
    client = AdminClient(_settings(config))
    res = client.request("GET", "/api/consultation-links")
    if res.status_code != 200:
        _problem_exit(res)
    doc = res.json()
    links = schema.LinkList.model_validate(doc)  # the wire's shape, or a clear error instead of a KeyError
    if as_json:
        console.print_json(doc)
    else:
        console.print_links(links.items)


@link_app.command("revoke", help=_h("Cancela um link e tira da sala quem estiver nela.",
                                    "Revokes a link and removes whoever is in its room."))
def link_revoke(
    link_id: Annotated[str, typer.Argument(help=_h("ID do link (lk_...).", "The link's ID (lk_...)."))],
    as_json: Annotated[bool, typer.Option("--json")] = False,
    config: ConfigOpt = None,
) -> None:
    """Cancela um link e tira da sala quem estiver nela."""
    client = AdminClient(_settings(config))
    res = client.request("DELETE", f"/api/consultation-links/{link_id}")
    if res.status_code != 200:
        _problem_exit(res)
    if as_json:
        console.print_json(res.json())
    else:
        console.out.print(Text(f"Link {link_id} cancelado.", f"Link {link_id} revoked.").get())


@link_app.command("purge")
def link_purge(
    older_than: Annotated[
        str | None,
        typer.Option("--older-than", help="ex.: 30d (padrão: links.retention)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    config: ConfigOpt = None,
) -> None:
    """Apaga links encerrados (expirados, cancelados, esgotados) há mais que o prazo, com seus testes."""
    from linkpronto.config import parse_duration
    from linkpronto.links.health import open_store
    from linkpronto.links.retention import purge
    from linkpronto.links.store import sqlite_url

    settings = _settings(config)
    try:
        seconds = parse_duration(older_than) if older_than else settings.links.retention
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--older-than") from exc
    store = open_store(settings.server.database_url.get_secret_value() or sqlite_url(settings.data_dir),
                       settings.data_dir)
    try:
        deleted = store.guarded(purge, store, seconds)
    finally:
        store.close()
    if as_json:
        console.print_json({"deleted": deleted, "older_than_s": seconds})
    else:
        console.out.print(
            Text(
                f"{deleted} link(s) encerrado(s) há mais de {seconds / 86400:g} dia(s) apagado(s).",
                f"{deleted} link(s) that ended more than {seconds / 86400:g} day(s) ago deleted.",
            ).get()
        )


# -- down ---------------------------------------------------------------------------------------------
@app.command(help=_h("Mostra (e abre) um endereço novo de acesso ao painel, de uso único.",
                     "Prints (and opens) a new one-time address for the dashboard."))
def dashboard(config: ConfigOpt = None) -> None:
    """Mostra (e abre) um endereço novo de acesso ao painel, de uso único."""
    from linkpronto.web.session import open_dashboard

    client = AdminClient(_settings(config))
    res = client.request("POST", "/api/dashboard-login")
    if res.status_code != 200:
        _problem_exit(res)
    url = str(res.json()["url"])
    console.out.print(url)
    open_dashboard(url)


@app.command(help=_h("Para o linkpronto e tudo o que ele iniciou.", "Stops linkpronto and everything it started."))
def down(config: ConfigOpt = None, timeout: float = 20.0) -> None:
    """Para o linkpronto e tudo o que ele iniciou."""
    settings = _settings(config)
    client = AdminClient(settings)
    client.request("POST", "/api/shutdown")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            client.client.get("/api/status", timeout=1)
        except httpx.HTTPError:
            console.out.print(Text("linkpronto parado.", "linkpronto stopped.").get())
            return
        time.sleep(0.2)
    raise NotStopped()


# -- env ----------------------------------------------------------------------------------------------
@app.command(help=_h("Variáveis para o seu app (endereço público atual, URL do LiveKit, acesso à API).",
                     "Variables for your app (current public address, LiveKit URL, API access)."))
def env(
    fmt: Annotated[str, typer.Option("--format", help="dotenv|json")] = "dotenv",
    write: Annotated[
        Path | None, typer.Option("--write", help=_h("Grava num arquivo (ex.: .env.local).", "Writes to a file (e.g. .env.local)."))
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Variáveis para o seu app (endereço público atual, URL do LiveKit, acesso à API)."""
    if fmt not in ("dotenv", "json"):
        raise typer.BadParameter("use dotenv or json", param_hint="--format")
    settings = _settings(config)
    client = AdminClient(settings)
    res = client.request("GET", "/api/status")
    if res.status_code != 200:
        _problem_exit(res)
    st = res.json()
    token = (settings.data_dir / "admin-token").read_text("ascii").strip()
    values = {
        "NEXT_PUBLIC_SITE_URL": st.get("public_url") or "",
        "NEXT_PUBLIC_LIVEKIT_URL": st.get("livekit_url") or "",
        "LINKPRONTO_ADMIN_URL": client.base,
        "LINKPRONTO_ADMIN_TOKEN": token if write else "**********",
    }
    from linkpronto.events.hub import secret_from_files

    events_secret = secret_from_files(settings)  # the key of the presence callbacks' signatures
    if events_secret:
        values["LINKPRONTO_EVENTS_SECRET"] = events_secret if write else "**********"
    if fmt == "json":
        text = json.dumps(values, indent=2) + "\n"
    else:
        text = "".join(f"{k}={v}\n" for k, v in values.items())
    if write:
        from linkpronto.platform import write_private

        write_private(write, text.encode("utf-8"))
        console.say(Text(f"Gravado em {write}", f"Written to {write}").get())
    else:
        sys.stdout.write(text)


# -- install ------------------------------------------------------------------------------------------
@app.command(help=_h("Baixa e verifica o livekit-server ou o cloudflared oficiais.",
                     "Downloads and verifies the official livekit-server or cloudflared."))
def install(
    what: Annotated[str, typer.Argument(help="livekit | cloudflared")],
    version: Annotated[str | None, typer.Option("--version")] = None,
    config: ConfigOpt = None,
) -> None:
    """Baixa e verifica o livekit-server ou o cloudflared oficiais."""
    settings = _settings(config)
    from linkpronto.live import install_binary

    if what not in ("livekit", "cloudflared"):
        raise typer.BadParameter("use livekit or cloudflared", param_hint="WHAT")
    path = install_binary(settings, what, version)
    console.out.print(Text(f"Instalado: {path}", f"Installed: {path}").get())


# -- doctor -------------------------------------------------------------------------------------------
@app.command(help=_h("Confere binários, portas, chaves, túnel e o seu projeto Next.js — cada item com a correção.",
                     "Checks binaries, ports, keys, the tunnel and your Next.js project — each item with its fix."))
def doctor(
    as_json: Annotated[bool, typer.Option("--json")] = False,
    project: Annotated[Path | None, typer.Option("--project", help=_h("Pasta do seu app Next.js.", "Your Next.js app's folder."))] = None,
    config: ConfigOpt = None,
) -> None:
    """Confere binários, portas, chaves, túnel e o seu projeto Next.js — cada item com a correção."""
    from linkpronto.doctor import run_doctor

    settings = _settings(config)
    report = run_doctor(settings, project or settings.app.cwd or Path.cwd())
    if as_json:
        console.print_json(report)
    else:
        console.print_doctor(report)
    if not report["ok"]:
        raise typer.Exit(EXIT_ERROR)


def _click_flavours() -> tuple[tuple[type[Exception], ...], tuple[type[BaseException], ...]]:
    """(usage errors, aborts) of every click the installed typer may use: the ``click`` package, and
    the copy newer typer releases bundle (``typer._click``, 0.29+), whose classes are not click's."""
    usage: list[type[Exception]] = []
    aborts: list[type[BaseException]] = [typer.Abort]
    for name in ("click.exceptions", "typer._click.exceptions"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        usage.append(module.UsageError)
        if hasattr(module, "Abort"):
            aborts.append(module.Abort)
    return tuple(usage), tuple(aborts)


def main(argv: list[str] | None = None) -> None:
    usage_errors, aborts = _click_flavours()
    try:
        # With standalone_mode=False, click returns the code of a typer.Exit instead of raising it.
        rc = app(args=argv, standalone_mode=False)
    except LinkprontoError as exc:
        console.print_error(exc)
        sys.exit(EXIT_ERROR)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except usage_errors as exc:
        console.print_error(_usage_error(exc))
        sys.exit(EXIT_USAGE)
    except aborts:
        sys.exit(130)
    sys.exit(rc if isinstance(rc, int) else EXIT_OK)


def _usage_error(exc: Exception) -> UsageError:
    """click's ``UsageError`` (either flavour) as ``error[USAGE]`` naming the command to ask for help."""
    ctx = getattr(exc, "ctx", None)
    command = getattr(ctx, "command_path", None) or "linkpronto"
    detail = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    return UsageError(detail.strip() or str(exc), command=str(command))
