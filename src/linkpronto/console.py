"""Everything linkpronto prints to a terminal, in one place (rich)."""

from __future__ import annotations

import io
import json
import sys
from datetime import UTC, datetime
from typing import Any

import segno
from rich.console import Console, Group
from rich.panel import Panel
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text as RichText

from linkpronto import schema
from linkpronto.errors import LinkprontoError
from linkpronto.i18n import T

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

STATE_STYLE = {
    "ready": "bold green",
    "adopted": "green",
    "external": "green",
    "starting": "yellow",
    "verifying": "yellow",
    "restarting": "yellow",
    "stopping": "yellow",
    "degraded": "bold yellow",
    "unhealthy": "red",
    "failed": "bold red",
    "stopped": "dim",
}
#: The stack's and the parts' states (schema.StackState, schema.PartState) as a person reads them.
STATE_LABEL = {
    "ready": T("pronto", "ready"),
    "adopted": T("adotado", "adopted"),
    "external": T("externo", "external"),
    "starting": T("iniciando", "starting"),
    "verifying": T("verificando", "verifying"),
    "restarting": T("reiniciando", "restarting"),
    "stopping": T("parando", "stopping"),
    "degraded": T("degradado", "degraded"),
    "unhealthy": T("com problema", "unhealthy"),
    "failed": T("falhou", "failed"),
    "stopped": T("parado", "stopped"),
    "ok": T("ok", "ok"),
    "fail": T("falhou", "failed"),
    "info": T("aviso", "note"),
    "unknown": T("desconhecido", "unknown"),
    "preparing": T("preparando", "preparing"),
    "expired": T("expirado", "expired"),
    "revoked": T("cancelado", "revoked"),
    "exhausted": T("esgotado", "used up"),
    "same-network": T("só nesta rede", "same network only"),
    "anywhere": T("qualquer rede", "anywhere"),
}


def print_json(doc: Any) -> None:
    """One JSON document on stdout, nothing else (``--json``)."""
    sys.stdout.write(json.dumps(doc, ensure_ascii=False, indent=2) + "\n")
    sys.stdout.flush()


def print_error(exc: LinkprontoError) -> None:
    """``error[CODE]: message`` then ``fix: ...`` on stderr (CONTRACT.md)."""
    sys.stderr.write(f"error[{exc.code}]: {exc.message()}\n")
    fix = exc.fix()
    if fix:
        sys.stderr.write(f"fix: {fix}\n")
    sys.stderr.flush()


def print_problem(problem: schema.Problem) -> None:
    sys.stderr.write(f"error[{problem.code}]: {problem.message}\n")
    if problem.fix:
        sys.stderr.write(f"fix: {problem.fix}\n")
    sys.stderr.flush()


def qr_text(url: str) -> str:
    buf = io.StringIO()
    segno.make_qr(url, error="l").terminal(out=buf, compact=True, border=2)
    return buf.getvalue()


def _label(state: str) -> str:
    text = STATE_LABEL.get(state)
    return text.get() if text is not None else state


def _styled(state: str) -> RichText:
    return RichText(_label(state), style=STATE_STYLE.get(state, ""))


def status_renderable(status: schema.Status) -> Group:
    """The live status table of ``linkpronto up`` and ``linkpronto status`` (the **Status** model)."""
    head = Table.grid(padding=(0, 1))
    head.add_row(T("Estado", "State").get() + ":", _styled(status.state.value))
    if status.reason:
        head.add_row("", RichText(status.reason, style="dim"))
    head.add_row(T("Endereço público", "Public address").get() + ":", status.public_url or "—")
    head.add_row("Admin:", status.admin_url or "—")
    media = status.media
    head.add_row(T("Vídeo", "Media").get() + ":", f"{_label(media.reach)} — {media.detail}")

    table = Table(show_header=True, header_style="bold", expand=False, box=None, pad_edge=False)
    table.add_column(T("Etapa", "Step").get())
    table.add_column(T("Estado", "State").get())
    table.add_column("ms", justify="right")
    table.add_column(T("Detalhe", "Detail").get(), overflow="fold")
    for name, comp in status.components.items():
        pid = f" pid {comp.pid}" if comp.pid else ""
        restarts = f" ↻{comp.restarts}" if comp.restarts else ""
        detail = comp.detail
        if detail.strip().lower() in (_label(comp.state.value).lower(), comp.state.value.lower()):
            detail = ""  # "app  pronto  pronto": the state says it already
        table.add_row(name, _styled(comp.state.value), "", f"{detail}{pid}{restarts}")
    for check in status.verification.checks:
        state = "ok" if check.ok else ("info" if not check.required else "fail")
        style = {"ok": "green", "fail": "red", "info": "yellow"}[state]
        detail = check.detail
        if not check.ok and check.fix:
            detail += f"\n→ {check.fix}"
        mark = "✓" if check.ok else ("!" if state == "info" else "✗")
        table.add_row(f"{mark} {check.name}", RichText(_label(state), style=style), f"{check.duration_ms:.0f}", detail)
    parts: list[Any] = [head, table]
    # On a ready stack what is left to say are warnings (media on this network only, plain HTTP).
    ready = status.state is schema.StackState.READY
    word, colour = (T("aviso", "warning").get(), "yellow") if ready else ("error", "red")
    seen: set[tuple[object, object, object]] = set()
    for p in status.problems:
        key = (p.code, p.message, p.fix)
        if key in seen:  # the same error can come from a component and from the tunnel: say it once
            continue
        seen.add(key)
        # Wrapped here: `out` soft-wraps, and inside `up`'s Live view long lines would be cut at the width.
        parts.append(
            RichText(
                f"{word}[{p.code}]: {p.message}\n  fix: {p.fix or '—'}",
                style=colour,
                no_wrap=False,
                overflow="fold",
            )
        )
    return Group(*parts)


def ready_panel(public_url: str) -> Panel:
    body = RichText(qr_text(public_url) + "\n" + public_url)
    return Panel(
        body, title=T("Pronto — aponte a câmera do celular", "Ready — point your phone's camera").get()
    )


def print_status(status: schema.Status) -> None:
    out.print(status_renderable(status))


def print_link(link: schema.Link) -> None:
    if link.url:
        out.print(qr_text(link.url), end="")
        out.print(f"[bold]{link.url}[/bold]")
        out.print(T("Expira em", "Expires at").get() + f": {schema.iso(link.expires_at)}")
    else:
        status = link.status.value
        out.print(
            T(
                f"Link {link.id} em preparação ({status}); ele ficará pronto sozinho.",
                f"Link {link.id} is preparing ({status}); it will become ready by itself.",
            ).get()
        )


def print_links(items: list[schema.Link]) -> None:
    """``link list``: the links as the API answered them (parsed with :class:`schema.LinkList`)."""
    header = (
        "id",
        T("situação", "status").get(),
        T("profissional", "professional").get(),
        T("expira (UTC)", "expires (UTC)").get(),
        T("usos", "uses").get(),
        "url",
    )
    rows = [
        (
            link.id,
            link.status.value,
            link.professional_id,
            _minute(link.expires_at),
            f"{link.uses}/{link.max_uses or '∞'}",
            f"{link.url or '—'}{' ⚠' if link.sent_with_old_address else ''}",
        )
        for link in items
    ]
    if not out.is_terminal:
        # Piped or redirected: one link per line, tab-separated, ids and URLs whole (copyable, greppable).
        for row in (header, *rows):
            out.print("\t".join(row), soft_wrap=True, highlight=False)
        return
    table = Table(show_header=True, header_style="bold")
    for col in header:
        table.add_column(col, no_wrap=col in ("id", "url"))
    for row in rows:
        table.add_row(row[0], _styled(row[1]), *row[2:])
    out.print(table)


def _minute(when: datetime) -> str:
    """``2026-12-03T04:16:37.505614Z`` → ``2026-12-03 04:16`` (UTC)."""
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


CHILD_STYLE = {"app": "cyan", "livekit": "magenta", "tunnel": "blue"}


def child_line(name: str, line: str, width: int = 8) -> RichText:
    """``app     | <line>``: a child's output line, its name as a (coloured on a terminal) prefix."""
    text = RichText(f"{name:<{width}}| ", style=CHILD_STYLE.get(name, "dim"), no_wrap=False)
    text.append(line)  # plain text: a child's "[red]" is never rich markup
    return text


def print_child_line(name: str, line: str) -> None:
    out.print(child_line(name, line))


def print_log_lines(lines: list[dict[str, Any]], *, with_name: bool = False) -> None:
    """``linkpronto logs``: each line as the child printed it (prefixed with its name when asked)."""
    for item in lines:
        if with_name:
            out.print(child_line(str(item.get("name", "")), str(item.get("line", ""))))
        else:
            out.print(RichText(str(item.get("line", ""))))


def say(message: str, style: str = "") -> None:
    err.print(message, style=style)


def download_progress(description: str) -> Progress:
    return Progress(
        TextColumn(description),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )


DOCTOR_STYLE = {"ok": ("✓", "green"), "info": ("i", "cyan"), "warn": ("!", "yellow"), "error": ("✗", "bold red")}


def print_doctor(report: dict[str, Any]) -> None:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(width=2)
    table.add_column(overflow="fold")
    for c in report["checks"]:
        mark, style = DOCTOR_STYLE[c["level"]]
        body = c["message"] + (f"\n  → {c['fix']}" if c.get("fix") and c["level"] != "ok" else "")
        table.add_row(RichText(mark, style=style), body)
    out.print(table)
    message, style = doctor_verdict(report)
    out.print(message, style=style)


def doctor_verdict(report: dict[str, Any]) -> tuple[str, str]:
    """The last line of ``doctor`` and its style: never "All good." with a warning above it."""
    warnings = sum(1 for c in report["checks"] if c["level"] == "warn")
    if not report["ok"]:
        return T("Há problemas a corrigir.", "There are problems to fix.").get(), "bold red"
    if warnings:
        return T(
            f"Nada impede o 'linkpronto up', mas leia o(s) {warnings} aviso(s) acima.",
            f"Nothing stops 'linkpronto up', but read the {warnings} warning(s) above.",
        ).get(), "yellow"
    return T("Tudo certo.", "All good.").get(), "green"
