"""Every failure linkpronto reports, with a stable code, a plain message and a fix.

The tree (every stable code is a class here; nothing passes a code as a bare string)::

    LinkprontoError                       LINKPRONTO_ERROR  (root; never raised itself)
    │                                     each class: code, default_message and default_fix (pt-BR + en)
    ├── ConfigInvalid                     CONFIG_INVALID
    ├── AlreadyRunning                    ALREADY_RUNNING
    ├── NotRunning                        NOT_RUNNING
    ├── NotStopped                        NOT_STOPPED           (linkpronto down waited in vain)
    ├── PortInUse                         PORT_IN_USE
    ├── ListenerFailed                    LISTENER_FAILED       (the HTTP listeners did not start)
    ├── BinaryNotFound                    BINARY_NOT_FOUND
    ├── InstallFailed                     INSTALL_FAILED
    ├── AssetsMissing                     ASSETS_MISSING        (livekit-client not installed)
    ├── LivekitUnhealthy                  LIVEKIT_UNHEALTHY
    │   └── LivekitRoomNotCreated         LIVEKIT_ROOM_NOT_CREATED (auto_create false refused CreateRoom)
    ├── InsecureLivekitKeys               INSECURE_LIVEKIT_KEYS
    ├── CrashLoop                         CRASH_LOOP / <component>_CRASH_LOOP (supervised child)
    │   ├── LivekitCrashLoop              LIVEKIT_CRASH_LOOP
    │   └── AppCrashLoop                  APP_CRASH_LOOP
    ├── TunnelError                       TUNNEL_UNREACHABLE
    │   ├── TunnelAuth                    TUNNEL_AUTH
    │   ├── TunnelLimit                   TUNNEL_LIMIT
    │   ├── TunnelUnreachable             TUNNEL_UNREACHABLE
    │   └── TunnelUrlChanged              TUNNEL_URL_CHANGED
    ├── AppUnhealthy                      APP_UNHEALTHY
    ├── VerifyFailed                      VERIFY_FAILED
    │   └── CheckFailure                  VERIFY_FAILED         (why a rung failed; each kind carries its fix)
    │       ├── CheckTimedOut · LivekitCheckFailed · AppCheckFailed · NoPublicUrl
    │       ├── ProbeMismatch · SignallingUnreachable · TunnelWarningPage
    │       └── LinkRouteFailed · AppLinkRouteMissing · MediaNotAnywhere
    ├── VerifyTimeout                     VERIFY_TIMEOUT
    ├── MediaSameNetworkOnly              MEDIA_SAME_NETWORK_ONLY
    ├── InsecureOrigin                    INSECURE_ORIGIN
    ├── StoreUnavailable                  STORE_UNAVAILABLE     (links database unreachable; retryable)
    ├── StorageFault                      STORAGE_FAULT         (links/health.py detects these)
    │   ├── DbCorrupt                     DB_CORRUPT
    │   ├── DbDriverMissing               DB_DRIVER_MISSING
    │   ├── DiskFull                      DISK_FULL             (a create answers 507)
    │   ├── DbFileMissing                 DB_FILE_MISSING
    │   └── DbFileReplaced                DB_FILE_REPLACED
    ├── LinkError                         LINK_ERROR
    │   ├── LinkNotFound                  LINK_NOT_FOUND
    │   ├── LinkGone                      LINK_GONE             (expired, revoked, used up)
    │   └── LinkRequired                  LINK_REQUIRED         (a protected app route, no live link opened)
    ├── RateLimited                       RATE_LIMITED          (429)
    ├── RequestTooLarge                   BODY_TOO_LARGE        (413)
    ├── InvalidRequest                    INVALID_REQUEST       (422)
    ├── AccessDenied                      (the admin listener's refusals)
    │   ├── ForbiddenHost                 FORBIDDEN_HOST        (403)
    │   ├── ForbiddenOrigin               FORBIDDEN_ORIGIN      (403)
    │   └── Unauthorized                  UNAUTHORIZED          (401)
    ├── WebhookRejected                   WEBHOOK_REJECTED      (401; LiveKit's signature did not match)
    ├── WebhookTooLarge                   WEBHOOK_TOO_LARGE     (413)
    └── EventsUndelivered                 EVENTS_UNDELIVERED    (the app's events_url keeps failing)

Libraries raise these; only the CLI turns them into exit codes, and only the web layer into HTTP
answers. ``message`` and ``fix`` are :class:`~linkpronto.i18n.Text` (pt-BR and English). ``detail``
is technical context (a log tail, a URL, an exit code) that must never contain a secret.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from linkpronto.i18n import Lang, Text

if TYPE_CHECKING:
    from linkpronto import schema


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

    def to_schema(self, lang: Lang | None = None) -> schema.Problem:
        """The same, as the wire's model (:class:`linkpronto.schema.Problem`)."""
        from linkpronto.schema import Problem

        return Problem.model_validate(self.to_problem(lang))

    def __str__(self) -> str:
        return f"{self.code}: {self.text.en}"


class ConfigInvalid(LinkprontoError):
    code = "CONFIG_INVALID"
    default_fix = Text(
        "Corrija o valor em linkpronto.toml, na variável de ambiente ou na opção da linha de comando.",
        "Correct the value in linkpronto.toml, the environment variable or the command-line option.",
    )


class UsageError(LinkprontoError):
    """The command line itself is wrong (unknown command or option, a value of the wrong shape): exit 2."""

    code = "USAGE"

    def __init__(self, detail: str, command: str = "linkpronto", **kw: Any) -> None:
        self.command = command
        super().__init__(
            Text(f"Comando inválido: {detail}", f"Invalid command: {detail}"),
            fix=Text(f"Veja as opções com: {command} --help", f"See the options with: {command} --help"),
            **kw,
        )


class LimiterUnavailable(LinkprontoError):
    """The failed-join limiter's shared storage (Redis) does not answer: guesses are not counted
    meanwhile (links still join; tokens carry ≥128 bits), and the status says so."""

    code = "LIMITER_UNAVAILABLE"
    default_message = Text(
        "O contador de tentativas inválidas (Redis) não está respondendo; os links continuam funcionando.",
        "The invalid-attempt counter (Redis) is not answering; links keep working.",
    )
    default_fix = Text(
        "Confira se o Redis de server.rate_limit_storage está no ar; o linkpronto volta a contar sozinho.",
        "Check that the Redis in server.rate_limit_storage is up; linkpronto resumes counting by itself.",
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


class LivekitRoomNotCreated(LivekitUnhealthy):
    """An external LiveKit with ``room.auto_create: false`` refused linkpronto's CreateRoom (503)."""

    code = "LIVEKIT_ROOM_NOT_CREATED"


class CrashLoop(LinkprontoError):
    """A supervised child failed too often; ``code`` is the component's own (e.g. ``APP_CRASH_LOOP``)."""

    code = "CRASH_LOOP"


class LivekitCrashLoop(CrashLoop):
    code = "LIVEKIT_CRASH_LOOP"


class AppCrashLoop(CrashLoop):
    code = "APP_CRASH_LOOP"


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
    if name == "media" and detail.en.startswith(MediaUnreachable.code):
        return MediaUnreachable.of_check(detail, fix)
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


class MediaUnreachable(LinkprontoError):
    """The media rung decoded no frame through the public URL: no link becomes ready."""

    code = "MEDIA_UNREACHABLE"
    default_message = Text(
        "O vídeo não passa: o teste de vídeo do linkpronto não recebeu nenhuma imagem pelo endereço público.",
        "Video does not get through: linkpronto's video check received no picture through the public address.",
    )
    default_fix = Text(
        "Confira livekit.node_ip (deixe vazio para o endereço desta rede) e se um firewall bloqueia as portas "
        "do LiveKit; depois rode linkpronto status.",
        "Check livekit.node_ip (leave it empty for this network's address) and whether a firewall blocks "
        "LiveKit's ports; then run linkpronto status.",
    )

    @classmethod
    def of_check(cls, detail: Text, fix: Text | None) -> MediaUnreachable:
        prefix = cls.code + ": "
        pt = detail.pt[len(prefix):] if detail.pt.startswith(prefix) else detail.pt
        en = detail.en[len(prefix):] if detail.en.startswith(prefix) else detail.en
        return cls(Text(f"{cls.default_message.pt} ({pt})", f"{cls.default_message.en} ({en})"),
                   fix=fix or cls.default_fix, check="media")


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



class LinkRequired(LinkError):
    """A public request to an ``app.protected_routes`` route from a browser that opened no live link."""

    code = "LINK_REQUIRED"
    default_message = Text(
        "Esta parte do aplicativo só funciona a partir de um link de consulta válido.",
        "This part of the app only works from a valid consultation link.",
    )
    default_fix = Text(
        "Abra o link de consulta que você recebeu (neste mesmo navegador) e tente de novo.",
        "Open the consultation link you received (in this same browser) and try again.",
    )

_GONE_TEXT = {
    "expired": Text("Este link de consulta expirou.", "This consultation link has expired."),
    "revoked": Text("Este link de consulta foi cancelado.", "This consultation link was cancelled."),
    "exhausted": Text(
        "Este link de consulta já foi usado o número máximo de vezes.",
        "This consultation link has already been used the maximum number of times.",
    ),
}


# -- requests refused at the web layer ------------------------------------------------------------
class RateLimited(LinkprontoError):
    code = "RATE_LIMITED"
    default_message = Text("Muitas tentativas com links inválidos.", "Too many attempts with invalid links.")
    default_fix = Text(
        "Aguarde um minuto e abra o link recebido de novo.", "Wait a minute and open the link you received again."
    )


class RequestTooLarge(LinkprontoError):
    """A public request body over the limit (413). Not ``web.bounded.BodyTooLarge``, the read's signal."""

    code = "BODY_TOO_LARGE"
    default_message = Text("Pedido grande demais.", "Request too large.")
    default_fix = Text("Abra o link recebido de novo.", "Open the link you received again.")
    #: The one pre-rendered body the edge sends before any app runs (bytes, no language known yet).
    WIRE_BODY = b'{"error":{"code":"BODY_TOO_LARGE","message":"Request body too large","fix":""}}'


class InvalidRequest(LinkprontoError):
    code = "INVALID_REQUEST"
    default_message = Text("Pedido inválido.", "Invalid request.")

    @classmethod
    def field(cls, field: str, fix: Text | None = None) -> InvalidRequest:
        return cls(
            Text(f"Campo inválido ou ausente: {field}", f"Missing or invalid field: {field}"),
            fix=fix or Text("Abra o link recebido de novo.", "Open the link you received again."),
        )


class AccessDenied(LinkprontoError):
    """The admin listener refused a request (wrong host, another page's origin, no token)."""

    code = "UNAUTHORIZED"
    status: ClassVar[int] = 401


class ForbiddenHost(AccessDenied):
    code = "FORBIDDEN_HOST"
    status = 403
    default_message = Text(
        "Acesso recusado: o painel só atende em 127.0.0.1 ou localhost.",
        "Access refused: the dashboard only answers on 127.0.0.1 or localhost.",
    )


class ForbiddenOrigin(AccessDenied):
    code = "FORBIDDEN_ORIGIN"
    status = 403
    default_message = Text(
        "Acesso recusado: pedido vindo de outra página.", "Access refused: request from another page."
    )


class Unauthorized(AccessDenied):
    code = "UNAUTHORIZED"
    status = 401
    default_message = Text(
        "É preciso o token de administrador ou abrir o painel pelo endereço que o 'linkpronto up' mostra.",
        "The admin token is required, or open the dashboard through the address 'linkpronto up' shows.",
    )


class WebhookRejected(LinkprontoError):
    """Missing/invalid signature, wrong key, expired token or a body that does not match its hash.

    ``reason`` (also ``detail``) is the technical why, for the log; never shown to a patient."""

    code = "WEBHOOK_REJECTED"
    default_message = Text(
        "Webhook recusado: a assinatura do LiveKit não confere com este corpo e esta chave de API.",
        "Webhook refused: LiveKit's signature does not match this body and this API key.",
    )
    default_fix = Text(
        "Configure o webhook do LiveKit com a mesma chave (webhook.api_key) e o mesmo segredo que o linkpronto usa.",
        "Configure LiveKit's webhook with the same key (webhook.api_key) and secret that linkpronto uses.",
    )

    def __init__(self, reason: str, **kw: Any) -> None:
        self.reason = reason
        super().__init__(detail=reason, **kw)


class WebhookTooLarge(LinkprontoError):
    code = "WEBHOOK_TOO_LARGE"
    default_message = Text("Corpo grande demais.", "Body too large.")


# -- running the stack ----------------------------------------------------------------------------
class ListenerFailed(LinkprontoError):
    code = "LISTENER_FAILED"
    default_message = Text("Os servidores HTTP não iniciaram.", "The HTTP listeners did not start.")
    default_fix = Text(
        "Veja o registro do linkpronto e rode 'linkpronto doctor'.", "See linkpronto's log and run 'linkpronto doctor'."
    )


class NotStopped(LinkprontoError):
    code = "NOT_STOPPED"
    default_message = Text("O linkpronto não parou a tempo.", "linkpronto did not stop in time.")
    default_fix = Text("Feche a janela onde ele roda (Ctrl+C).", "Close the window where it runs (Ctrl+C).")


class EventsUndelivered(LinkprontoError):
    code = "EVENTS_UNDELIVERED"
    default_fix = Text(
        "Verifique se o app está no ar e se a rota de app.events_url responde 2xx.",
        "Check that the app is up and that the app.events_url route answers 2xx.",
    )

    @classmethod
    def to(cls, events_url: str, error: str) -> EventsUndelivered:
        return cls(
            Text(
                f"O app não está recebendo os avisos de presença ({events_url}): {error}. Tentando de novo.",
                f"The app is not receiving the presence events ({events_url}): {error}. Retrying.",
            ),
            detail=error,
        )


class AssetsMissing(LinkprontoError):
    code = "ASSETS_MISSING"
    default_message = Text(
        "Os arquivos do navegador (livekit-client) não estão instalados.",
        "The browser files (livekit-client) are not installed.",
    )
    default_fix = Text(
        "Reinstale o linkpronto a partir do pacote publicado (pip install --force-reinstall linkpronto), que "
        "já traz o livekit-client; numa cópia do código-fonte rode: npm install e depois "
        "python -m linkpronto.web.assets",
        "Reinstall linkpronto from the published package (pip install --force-reinstall linkpronto), which "
        "carries livekit-client; in a source checkout run: npm install and then python -m linkpronto.web.assets",
    )
    #: The fix when the ladder finds the files missing *through the public URL* (a page that loads no video).
    ladder_fix: ClassVar[Text] = Text(
        "Os arquivos da página do paciente (livekit-client) não carregam: reinstale o linkpronto a partir "
        "do pacote publicado (pip install --force-reinstall linkpronto); numa cópia do código-fonte rode "
        "npm install e python -m linkpronto.web.assets.",
        "The patient page's files (livekit-client) do not load: reinstall linkpronto from the published "
        "package (pip install --force-reinstall linkpronto); in a source checkout run npm install and "
        "python -m linkpronto.web.assets.",
    )


# -- the links database (links/health.py detects these) ------------------------------------------
class StorageFault(LinkprontoError):
    code = "STORAGE_FAULT"
    default_message = Text("Não foi possível gravar no banco de links.", "Could not write to the links database.")
    default_fix = Text(
        "Veja o registro do linkpronto; rode 'linkpronto doctor'.", "See linkpronto's log; run 'linkpronto doctor'."
    )


class DbCorrupt(StorageFault):
    code = "DB_CORRUPT"

    @classmethod
    def at(cls, path: object | None, exc: BaseException) -> DbCorrupt:
        where = str(path) if path else "database"
        return cls(
            Text(
                f"O banco de links {where} está corrompido ou não é um banco SQLite ({exc}).",
                f"The links database {where} is corrupt or not an SQLite database ({exc}).",
            ),
            fix=Text(
                f"Restaure {where} de um backup; ou renomeie-o (por exemplo para {where}.corrupt) para começar um "
                "banco novo — os links emitidos nele deixam de funcionar. O linkpronto não apaga o arquivo.",
                f"Restore {where} from a backup; or rename it (for example to {where}.corrupt) to start a new "
                "database — links issued from it stop working. linkpronto never deletes the file.",
            ),
        )


class DbDriverMissing(StorageFault):
    code = "DB_DRIVER_MISSING"

    @classmethod
    def for_url(cls, url: str, exc: BaseException) -> DbDriverMissing:
        scheme = url.split(":", 1)[0]
        if scheme.startswith("postgres"):
            fix = Text(
                'Instale o driver do PostgreSQL: pip install "linkpronto[postgres]" — ou deixe '
                "server.database_url vazio para usar SQLite.",
                'Install the PostgreSQL driver: pip install "linkpronto[postgres]" — or leave '
                "server.database_url empty to use SQLite.",
            )
        else:
            fix = Text(
                f"Instale o driver Python que o banco {scheme} usa, ou deixe server.database_url vazio para usar "
                "SQLite.",
                f"Install the Python driver the {scheme} database uses, or leave server.database_url empty to use "
                "SQLite.",
            )
        return cls(
            Text(
                f"O banco de dados configurado ({scheme}) precisa de um driver que não está instalado ({exc}).",
                f"The configured database ({scheme}) needs a driver that is not installed ({exc}).",
            ),
            fix=fix,
        )


class DiskFull(StorageFault):
    code = "DISK_FULL"
    #: The HTTP status a create answers with on a full disk (Insufficient Storage).
    status: ClassVar[int] = 507

    @classmethod
    def at(cls, where: object, detail: str = "") -> DiskFull:
        return cls(
            Text(
                f"O disco onde ficam os links ({where}) está cheio: novos links não podem ser gravados.",
                f"The disk that holds the links ({where}) is full: new links cannot be stored.",
            ),
            fix=Text(
                "Libere espaço nesse disco (ou mude server.data_dir). Os links já emitidos continuam valendo; "
                "o linkpronto volta ao normal sozinho.",
                "Free space on that disk (or change server.data_dir). Links already issued keep working; "
                "linkpronto recovers by itself.",
            ),
            detail=detail or None,
        )


class DbFileMissing(StorageFault):
    code = "DB_FILE_MISSING"


class DbFileReplaced(StorageFault):
    code = "DB_FILE_REPLACED"


# -- why a rung of the verification ladder failed: each carries the fix the ladder shows ------------
class CheckFailure(VerifyFailed):
    """A rung's failure kind; the code stays ``VERIFY_FAILED`` (``AppUnhealthy`` for the app rung).

    The ladder (``verify.py``) reports ``Check(detail, fix)`` with ``fix = <Kind>.default_fix``; the
    problem shown for a failed rung is built by :func:`check_failed`."""


class CheckTimedOut(CheckFailure):
    default_fix = Text(
        "A verificação demorou demais. Confira sua conexão com a internet.",
        "The check took too long. Check your internet connection.",
    )


class LivekitCheckFailed(CheckFailure):
    default_fix = Text(
        "Confira se o LiveKit está rodando (linkpronto status) e se as chaves estão corretas.",
        "Check that LiveKit is running (linkpronto status) and that its keys are right.",
    )


class AppCheckFailed(CheckFailure):
    default_fix = Text(
        "Seu app não respondeu na porta configurada. Confira --app e --app-port.",
        "Your app did not answer on the configured port. Check --app and --app-port.",
    )


class NoPublicUrl(CheckFailure):
    default_message = Text("ainda sem endereço público", "no public URL yet")
    default_fix = Text(
        "O túnel ainda não tem endereço público. Aguarde; veja 'linkpronto status' para o motivo.",
        "The tunnel has no public address yet. Wait; see 'linkpronto status' for the reason.",
    )


class ProbeMismatch(CheckFailure):
    default_fix = Text(
        "O endereço público não leva a este computador (túnel antigo ou parado). O linkpronto vai "
        "reabrir o túnel; se persistir, reinicie com: linkpronto down && linkpronto up",
        "The public address does not lead to this computer (old or stopped tunnel). linkpronto will "
        "reopen the tunnel; if it persists, restart with: linkpronto down && linkpronto up",
    )


class SignallingUnreachable(CheckFailure):
    default_fix = Text(
        "A sinalização do LiveKit não passa pelo endereço público. Confira o modo do LiveKit e o túnel.",
        "LiveKit signalling does not get through the public address. Check the LiveKit mode and the tunnel.",
    )


class TunnelWarningPage(CheckFailure):
    default_message = Text(
        "uma página de aviso do túnel aparece antes do link", "a tunnel warning page stands in front of the link"
    )
    default_fix = Text(
        "O túnel mostra uma página de aviso antes do link (plano gratuito do ngrok). Use um domínio "
        "próprio, cloudflared ou ssh (linkpronto up --tunnel cloudflared).",
        "The tunnel shows a warning page before the link (ngrok free plan). Use your own domain, "
        "cloudflared or ssh (linkpronto up --tunnel cloudflared).",
    )


class LinkRouteFailed(CheckFailure):
    default_fix = Text(
        "A página do link não respondeu pelo endereço público. Confira o app e o link_path.",
        "The link's page did not answer through the public address. Check the app and link_path.",
    )


class AppLinkRouteMissing(CheckFailure):
    default_fix = Text(
        "Seu app não tem uma página no link_path (um link de teste não abriu). Confira --link-path: ele "
        "deve ser a rota do app que abre a consulta, ex.: /consultations/client/{token}; ou remova-o para "
        "usar a página do linkpronto.",
        "Your app has no page at link_path (a probe link did not open). Check --link-path: it must be the "
        "app's route that opens the consultation, e.g. /consultations/client/{token}; or remove it to use "
        "linkpronto's page.",
    )


class MediaNotAnywhere(CheckFailure):
    """The media rung (informational): phones outside this network get no video."""

    default_fix = Text(
        "Celulares fora desta rede não terão vídeo. Use LiveKit Cloud (--livekit cloud), um VPS com "
        "--tunnel ssh e ssh_forward_media = true, ou configure TURN (livekit.turn_url).",
        "Phones outside this network will get no video. Use LiveKit Cloud (--livekit cloud), a VPS "
        "with --tunnel ssh and ssh_forward_media = true, or configure TURN (livekit.turn_url).",
    )


def all_codes() -> dict[str, type[LinkprontoError]]:
    """Every stable code and the (first, most general) class that carries it — walked from the root."""
    out: dict[str, type[LinkprontoError]] = {}
    todo: list[type[LinkprontoError]] = [LinkprontoError]
    while todo:
        cls = todo.pop(0)
        out.setdefault(cls.code, cls)
        todo.extend(cls.__subclasses__())
    return out
