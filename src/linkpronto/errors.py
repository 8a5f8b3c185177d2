"""Every failure linkpronto reports, with a stable code, a plain message and a fix.

The tree::

    LinkprontoError                       code            (root; never raised itself)
    ├── ConfigInvalid                     CONFIG_INVALID
    ├── AlreadyRunning                    ALREADY_RUNNING
    ├── PortInUse                         PORT_IN_USE
    ├── BinaryNotFound                    BINARY_NOT_FOUND
    ├── InstallFailed                     INSTALL_FAILED
    ├── LivekitUnhealthy                  LIVEKIT_UNHEALTHY
    ├── LivekitCrashLoop                  LIVEKIT_CRASH_LOOP
    │   (LivekitUnhealthy ▸ LivekitRoomNotCreated  LIVEKIT_ROOM_NOT_CREATED)
    ├── InsecureLivekitKeys               INSECURE_LIVEKIT_KEYS
    ├── TunnelError
    │   ├── TunnelAuth                    TUNNEL_AUTH
    │   ├── TunnelLimit                   TUNNEL_LIMIT
    │   ├── TunnelUnreachable             TUNNEL_UNREACHABLE
    │   └── TunnelUrlChanged              TUNNEL_URL_CHANGED
    ├── AppUnhealthy                      APP_UNHEALTHY
    ├── VerifyFailed                      VERIFY_FAILED
    ├── VerifyTimeout                     VERIFY_TIMEOUT
    ├── MediaSameNetworkOnly              MEDIA_SAME_NETWORK_ONLY
    ├── InsecureOrigin                    INSECURE_ORIGIN
    ├── CrashLoop                         <component>_CRASH_LOOP (generic supervised child)
    ├── NotRunning                        NOT_RUNNING
    ├── StoreUnavailable                  STORE_UNAVAILABLE (links database unreachable; retryable)
    └── LinkError
        ├── LinkNotFound                  LINK_NOT_FOUND
        └── LinkGone                      LINK_GONE (expired, revoked, used up)

Libraries raise these; only the CLI turns them into exit codes, and only the web layer into HTTP
answers. ``message`` and ``fix`` are :class:`~linkpronto.i18n.Text` (pt-BR and English). ``detail``
is technical context (a log tail, a URL, an exit code) that must never contain a secret.
"""

from __future__ import annotations

from typing import Any, ClassVar

from linkpronto.i18n import Lang, Text


class LinkprontoError(Exception):
    code: ClassVar[str] = "LINKPRONTO_ERROR"
    default_message: ClassVar[Text] = Text("Algo deu errado.", "Something went wrong.")
    default_fix: ClassVar[Text | None] = None

    def __init__(
        self,
        message: Text | None = None,
        *,
        fix: Text | None = None,
        detail: str | None = None,
        code: str | None = None,
        **context: Any,
    ) -> None:
        self.text = message or self.default_message
        self.fix_text = fix if fix is not None else self.default_fix
        self.detail = detail
        self.context = context
        if code is not None:
            self.code = code  # type: ignore[misc]  # instance override of the class default
        super().__init__(self.text.en)

    def message(self, lang: Lang | None = None) -> str:
        return self.text.get(lang)

    def fix(self, lang: Lang | None = None) -> str | None:
        return self.fix_text.get(lang) if self.fix_text else None

    def to_problem(self, lang: Lang | None = None) -> dict[str, Any]:
        """The ``Problem`` shape of the contract: ``{code, message, fix}`` (+ ``detail`` when known)."""
        out: dict[str, Any] = {"code": self.code, "message": self.message(lang), "fix": self.fix(lang)}
        if self.detail:
            out["detail"] = self.detail
        return out

    def __str__(self) -> str:
        return f"{self.code}: {self.text.en}"


class ConfigInvalid(LinkprontoError):
    code = "CONFIG_INVALID"
    default_fix = Text(
        "Corrija o valor em linkpronto.toml, na variável de ambiente ou na opção da linha de comando.",
        "Correct the value in linkpronto.toml, the environment variable or the command-line option.",
    )


class AlreadyRunning(LinkprontoError):
    code = "ALREADY_RUNNING"


class NotRunning(LinkprontoError):
    code = "NOT_RUNNING"
    default_message = Text("O linkpronto não está rodando.", "linkpronto is not running.")
    default_fix = Text("Inicie com: linkpronto up", "Start it with: linkpronto up")


class PortInUse(LinkprontoError):
    code = "PORT_IN_USE"

    @classmethod
    def held(cls, port: int | None, needed_by: str, holder: tuple[int, str] | None, setting: str) -> PortInUse:
        """The one way to say it: which port, who needs it, who holds it, and how to free or change it.

        ``setting`` names the setting (or variable) that changes the port."""
        if holder:
            pid, name = holder
            message = Text(
                f"A porta {port}, de que {needed_by} precisa, já está em uso por {name} (PID {pid}).",
                f"Port {port}, which {needed_by} needs, is already used by {name} (PID {pid}).",
            )
            fix = Text(
                f"Feche {name} (PID {pid}) — no Windows pelo Gerenciador de Tarefas, no macOS/Linux com "
                f"'kill {pid}' — ou escolha outra porta ({setting}).",
                f"Close {name} (PID {pid}) — on Windows from Task Manager, on macOS/Linux with "
                f"'kill {pid}' — or choose another port ({setting}).",
            )
        else:
            message = Text(
                f"A porta {port}, de que {needed_by} precisa, já está em uso por outro programa.",
                f"Port {port}, which {needed_by} needs, is already used by another program.",
            )
            fix = Text(
                f"Feche o programa que usa a porta {port} ou escolha outra porta ({setting}).",
                f"Close the program using port {port} or choose another port ({setting}).",
            )
        return cls(
            message,
            fix=fix,
            port=port,
            holder_pid=holder[0] if holder else None,
            holder_name=holder[1] if holder else None,
        )


class BinaryNotFound(LinkprontoError):
    code = "BINARY_NOT_FOUND"


class InstallFailed(LinkprontoError):
    code = "INSTALL_FAILED"


class LivekitUnhealthy(LinkprontoError):
    code = "LIVEKIT_UNHEALTHY"


class LivekitCrashLoop(LinkprontoError):
    code = "LIVEKIT_CRASH_LOOP"


class LivekitRoomNotCreated(LivekitUnhealthy):
    """An external LiveKit with ``room.auto_create: false`` refused linkpronto's CreateRoom (503)."""

    code = "LIVEKIT_ROOM_NOT_CREATED"


class CrashLoop(LinkprontoError):
    """A supervised child failed too often; ``code`` is the component's own (e.g. ``APP_CRASH_LOOP``)."""

    code = "CRASH_LOOP"


class InsecureLivekitKeys(LinkprontoError):
    code = "INSECURE_LIVEKIT_KEYS"


class TunnelError(LinkprontoError):
    code = "TUNNEL_UNREACHABLE"


class TunnelAuth(TunnelError):
    code = "TUNNEL_AUTH"


class TunnelLimit(TunnelError):
    code = "TUNNEL_LIMIT"


class TunnelUnreachable(TunnelError):
    code = "TUNNEL_UNREACHABLE"


class TunnelUrlChanged(TunnelError):
    code = "TUNNEL_URL_CHANGED"
    default_fix = Text(
        "Reenvie os links marcados, ou use um endereço fixo (domínio do ngrok, túnel "
        "nomeado do cloudflared ou ssh para o seu VPS).",
        "Resend the flagged links, or use a fixed address (ngrok domain, named cloudflared "
        "tunnel or ssh to your VPS).",
    )

    @classmethod
    def between(cls, old: str | None, new: str | None) -> TunnelUrlChanged:
        return cls(
            Text(
                f"O endereço público mudou de {old} para {new}. Links já enviados "
                "com o endereço antigo estão marcados para reenviar.",
                f"The public address changed from {old} to {new}. Links already "
                "sent with the old address are flagged for resending.",
            ),
            old_url=old,
            url=new,
        )


class AppUnhealthy(LinkprontoError):
    code = "APP_UNHEALTHY"

    @classmethod
    def of_check(cls, detail: Text, fix: Text | None) -> AppUnhealthy:
        return cls(Text(f"Seu app não responde: {detail.pt}", f"Your app does not answer: {detail.en}"), fix=fix)


class VerifyFailed(LinkprontoError):
    code = "VERIFY_FAILED"

    @classmethod
    def of_check(cls, name: str, detail: Text, fix: Text | None) -> VerifyFailed:
        """A rung of the ladder failed: its name, what it saw and its own fix."""
        return cls(
            Text(f"Verificação '{name}' falhou: {detail.pt}", f"Check '{name}' failed: {detail.en}"),
            fix=fix,
            check=name,
        )


class VerifyTimeout(LinkprontoError):
    code = "VERIFY_TIMEOUT"
    default_message = Text("O linkpronto não respondeu a tempo.", "linkpronto did not answer in time.")
    default_fix = Text(
        "Confira a conexão e veja 'linkpronto status'.", "Check the connection and see 'linkpronto status'."
    )


def check_failed(name: str, detail: Text, fix: Text | None) -> LinkprontoError:
    """The problem for a failed rung of the ladder: the app's own code for the app, else VERIFY_FAILED."""
    if name == "app":
        return AppUnhealthy.of_check(detail, fix)
    return VerifyFailed.of_check(name, detail, fix)


class MediaSameNetworkOnly(LinkprontoError):
    code = "MEDIA_SAME_NETWORK_ONLY"
    default_message = Text(
        "Só aparelhos nesta mesma rede (Wi-Fi) terão vídeo.",
        "Only devices on this same network (Wi-Fi) will get video.",
    )

    @classmethod
    def build(cls, fix: Text | None) -> MediaSameNetworkOnly:
        return cls(fix=fix)


class InsecureOrigin(LinkprontoError):
    code = "INSECURE_ORIGIN"
    default_message = Text(
        "O endereço público não é HTTPS: celulares não liberam câmera e microfone.",
        "The public address is not HTTPS: phones will not allow camera and microphone.",
    )
    default_fix = Text(
        "Use um túnel HTTPS (cloudflared, ngrok) ou um domínio com certificado.",
        "Use an HTTPS tunnel (cloudflared, ngrok) or a domain with a certificate.",
    )


class StoreUnavailable(LinkprontoError):
    """The links database does not answer (PostgreSQL down, network cut): retryable, nothing lost."""

    code = "STORE_UNAVAILABLE"
    default_message = Text(
        "O banco de dados dos links não está acessível.", "The links database is not reachable."
    )
    default_fix = Text(
        "Tente de novo em alguns segundos; o linkpronto reconecta sozinho.",
        "Try again in a few seconds; linkpronto reconnects by itself.",
    )


class LinkError(LinkprontoError):
    code = "LINK_ERROR"


class LinkNotFound(LinkError):
    code = "LINK_NOT_FOUND"
    default_message = Text(
        "Este link de consulta não existe. Confira se ele foi copiado inteiro.",
        "This consultation link does not exist. Check that it was copied in full.",
    )
    default_fix = Text("Peça um novo link ao profissional.", "Ask the professional for a new link.")


class LinkGone(LinkError):
    code = "LINK_GONE"

    def __init__(self, reason: str, message: Text | None = None, **kw: Any) -> None:
        self.reason = reason  # "expired" | "revoked" | "exhausted"
        super().__init__(message or _GONE_TEXT.get(reason, _GONE_TEXT["expired"]), **kw)

    default_fix = Text("Peça um novo link ao profissional.", "Ask the professional for a new link.")


_GONE_TEXT = {
    "expired": Text("Este link de consulta expirou.", "This consultation link has expired."),
    "revoked": Text("Este link de consulta foi cancelado.", "This consultation link was cancelled."),
    "exhausted": Text(
        "Este link de consulta já foi usado o número máximo de vezes.",
        "This consultation link has already been used the maximum number of times.",
    ),
}
