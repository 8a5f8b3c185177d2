"""What to run and how to judge it: frozen specs, every default written once, right here.

The runtime objects (:mod:`linkpronto.supervise.probes`, :mod:`linkpronto.supervise.process`)
only read these. Validation happens in ``__post_init__`` and raises
:class:`~linkpronto.errors.ConfigInvalid`, so a bad spec fails when it is built, not when used.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from linkpronto.errors import ConfigInvalid, CrashLoop
from linkpronto.i18n import Text

# Defaults, in one place.
PROBE_PERIOD_S = 0.2
PROBE_TIMEOUT_S = 1.0
PROBE_SUCCESS_THRESHOLD = 1
PROBE_FAILURE_THRESHOLD = 3
ADOPTED_CHECK_PERIOD_S = 2.0  # an adopted service is someone else's: check it, but gently
LOG_TAIL_LINES = 50
REDACTED = "**********"


def _invalid(what: str, value: object) -> ConfigInvalid:
    return ConfigInvalid(
        Text(f"Valor inválido para {what}: {value!r}", f"Invalid value for {what}: {value!r}"),
        fix=Text(f"Corrija {what}.", f"Correct {what}."),
    )


def _check_timing(kind: str, period_s: float, timeout_s: float, success: int, failure: int) -> None:
    if period_s <= 0:
        raise _invalid(f"{kind}.period_s", period_s)
    if timeout_s <= 0:
        raise _invalid(f"{kind}.timeout_s", timeout_s)
    if success < 1:
        raise _invalid(f"{kind}.success_threshold", success)
    if failure < 1:
        raise _invalid(f"{kind}.failure_threshold", failure)


@dataclass(frozen=True, slots=True)
class ProbeResult:
    ok: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class HttpProbe:
    """``GET url`` answers ``expect_status`` (and its body matches the regex ``expect_body``)."""

    url: str
    expect_status: int = 200
    expect_body: str | None = None
    period_s: float = PROBE_PERIOD_S
    timeout_s: float = PROBE_TIMEOUT_S
    success_threshold: int = PROBE_SUCCESS_THRESHOLD
    failure_threshold: int = PROBE_FAILURE_THRESHOLD

    def __post_init__(self) -> None:
        if not re.match(r"^https?://", self.url):
            raise _invalid("HttpProbe.url", self.url)
        if self.expect_body is not None:
            _compile("HttpProbe.expect_body", self.expect_body)
        _check_timing("HttpProbe", self.period_s, self.timeout_s, self.success_threshold,
                      self.failure_threshold)


@dataclass(frozen=True, slots=True)
class TcpProbe:
    """A TCP connection to ``host:port`` is accepted."""

    host: str
    port: int
    period_s: float = PROBE_PERIOD_S
    timeout_s: float = PROBE_TIMEOUT_S
    success_threshold: int = PROBE_SUCCESS_THRESHOLD
    failure_threshold: int = PROBE_FAILURE_THRESHOLD

    def __post_init__(self) -> None:
        if not 1 <= self.port <= 65535:
            raise _invalid("TcpProbe.port", self.port)
        _check_timing("TcpProbe", self.period_s, self.timeout_s, self.success_threshold,
                      self.failure_threshold)


@dataclass(frozen=True, slots=True)
class LogProbe:
    """A line of the child's output (stdout and stderr merged) matches the regex ``pattern``.

    Readiness only: once matched for a run, it stays matched until the child is started again.
    """

    pattern: str

    def __post_init__(self) -> None:
        _compile("LogProbe.pattern", self.pattern)


@dataclass(frozen=True, slots=True)
class CustomProbe:
    """Any async check, e.g. LiveKit's ``GET /`` plus ``/rtc/validate`` with a fresh probe token.

    ``check`` returns a :class:`ProbeResult`; it may raise ``OSError``/``httpx.HTTPError``/
    ``TimeoutError``, which count as a failed check.
    """

    check: Callable[[], Awaitable[ProbeResult]]
    description: str = "custom check"
    period_s: float = PROBE_PERIOD_S
    timeout_s: float = PROBE_TIMEOUT_S
    success_threshold: int = PROBE_SUCCESS_THRESHOLD
    failure_threshold: int = PROBE_FAILURE_THRESHOLD

    def __post_init__(self) -> None:
        _check_timing("CustomProbe", self.period_s, self.timeout_s, self.success_threshold,
                      self.failure_threshold)


Probe = HttpProbe | TcpProbe | LogProbe | CustomProbe
PolledProbe = HttpProbe | TcpProbe | CustomProbe


def _compile(what: str, pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise _invalid(what, pattern) from exc


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """Growing back-off between restarts, capped; too many failures in a window ends in ``failed``."""

    enabled: bool = True
    backoff_initial_s: float = 0.5
    backoff_factor: float = 2.0
    backoff_max_s: float = 30.0
    crash_loop_failures: int = 5
    crash_loop_window_s: float = 60.0
    reset_after_ready_s: float = 30.0

    def __post_init__(self) -> None:
        if self.backoff_initial_s < 0:
            raise _invalid("RestartPolicy.backoff_initial_s", self.backoff_initial_s)
        if self.backoff_factor < 1:
            raise _invalid("RestartPolicy.backoff_factor", self.backoff_factor)
        if self.backoff_max_s < self.backoff_initial_s:
            raise _invalid("RestartPolicy.backoff_max_s", self.backoff_max_s)
        if self.crash_loop_failures < 1:
            raise _invalid("RestartPolicy.crash_loop_failures", self.crash_loop_failures)
        if self.crash_loop_window_s <= 0:
            raise _invalid("RestartPolicy.crash_loop_window_s", self.crash_loop_window_s)
        if self.reset_after_ready_s < 0:
            raise _invalid("RestartPolicy.reset_after_ready_s", self.reset_after_ready_s)


@dataclass(frozen=True, slots=True)
class ProcessSpec:
    """One supervised child. ``argv`` is a list of arguments, never a shell string.

    ``env`` is added to the orchestrator's environment. ``port``, when given, is checked before
    every start: a port that already answers is adopted (when the component's ``adopt`` check says
    it is ours) or reported as ``PORT_IN_USE`` naming its holder. ``port_setting`` names the
    setting that changes that port (e.g. ``"livekit.port"``) for the fix text. ``redact`` lists
    substrings (secrets, tokens) replaced by ``**********`` in everything captured from the child.
    """

    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    readiness: Probe | None = None
    liveness: Probe | None = None
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    start_timeout_s: float = 30.0
    stop_grace_s: float = 5.0
    error_code: str = CrashLoop.code
    log_tail_lines: int = LOG_TAIL_LINES
    port: int | None = None
    redact: tuple[str, ...] = ()
    port_setting: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            raise _invalid("ProcessSpec.name", self.name)
        if isinstance(self.argv, str):  # a shell string would be split wrongly: refuse it outright
            raise _invalid(f"{self.name}.argv (a list of arguments, not a string)", self.argv)
        object.__setattr__(self, "argv", tuple(self.argv))
        object.__setattr__(self, "redact", tuple(s for s in self.redact if s))
        if not self.argv or not self.argv[0]:
            raise _invalid(f"{self.name}.argv", self.argv)
        if isinstance(self.liveness, LogProbe):
            raise _invalid(f"{self.name}.liveness (a log line cannot show liveness)", self.liveness)
        if self.start_timeout_s <= 0:
            raise _invalid(f"{self.name}.start_timeout_s", self.start_timeout_s)
        if self.stop_grace_s < 0:
            raise _invalid(f"{self.name}.stop_grace_s", self.stop_grace_s)
        if self.log_tail_lines < 1:
            raise _invalid(f"{self.name}.log_tail_lines", self.log_tail_lines)
        if self.port is not None and not 1 <= self.port <= 65535:
            raise _invalid(f"{self.name}.port", self.port)

    def health_probe(self) -> PolledProbe | None:
        """The probe that keeps checking a running (or adopted) service: liveness, else readiness."""
        for probe in (self.liveness, self.readiness):
            if probe is not None and not isinstance(probe, LogProbe):
                return probe
        return None
