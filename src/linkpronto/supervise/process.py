"""ManagedProcess: one supervised child, from spawn to a clean stop of its whole tree.

States (``PartState``) and what moves between them::

    STOPPED ──start()──> STARTING ──readiness passes──> READY
       ^                   │  exit / start timeout        │ exit / liveness fails (UNHEALTHY first)
       │                   v                              v
       │                BACKOFF <─────────────────────────┘   (growing delay, capped)
       │                   │ delay over → respawn → STARTING
       │                   └ N failures within the window → FAILED (error: <COMPONENT>_CRASH_LOOP)
       └──stop()── STOPPING (terminate the tree → grace → kill the tree)

    port already answers before a spawn → adopt() says "ours" → ADOPTED (health-checked, never
    stopped by us; if it goes away we start our own) — otherwise FAILED with PORT_IN_USE.

Exit detection waits on the child (``Process.wait``), it does not poll. Output is read line by
line, redacted, kept in a bounded tail and given to ``on_line``. Every change of state, reason,
pid or restart count notifies the listeners.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime

import httpx

from linkpronto import platform
from linkpronto.aio import wait_set
from linkpronto.components import Observable, PartStatus, utcnow
from linkpronto.errors import AppCrashLoop, CrashLoop, LinkprontoError, LivekitCrashLoop, PortInUse
from linkpronto.i18n import Text
from linkpronto.schema import PartState
from linkpronto.supervise import probes
from linkpronto.supervise.env import child_environment
from linkpronto.supervise.logtail import OutputTail
from linkpronto.supervise.spec import ADOPTED_CHECK_PERIOD_S, LogProbe, ProbeResult, ProcessSpec

log = logging.getLogger(__name__)

PORT_CHECK_TIMEOUT_S = 0.5
LEFTOVER_GRACE_S = 1.0  # after the main process died: how long its leftovers get to exit politely
KILL_WAIT_S = 5.0
READER_DRAIN_S = 1.0


_CRASH_LOOP_CLASSES: dict[str, type[LinkprontoError]] = {c.code: c for c in (LivekitCrashLoop, AppCrashLoop)}


def describe_exit(code: int | None) -> Text:
    if code is None:
        return Text("terminou", "exited")
    if code < 0:
        return Text(f"foi encerrado pelo sinal {-code}", f"was killed by signal {-code}")
    return Text(f"terminou com o código {code}", f"exited with code {code}")


class ManagedProcess(Observable):
    """A supervised child process; implements :class:`linkpronto.components.Component`."""

    def __init__(
        self,
        spec: ProcessSpec,
        *,
        on_line: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        adopt: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.name = spec.name
        self.state = PartState.STOPPED
        self.reason_text = Text("não iniciado", "not started")
        self.pid: int | None = None
        self.restarts = 0
        self.error: LinkprontoError | None = None
        self.exit_code: int | None = None
        self.since: datetime = utcnow()
        self._clock = clock
        self._adopt = adopt
        self._output = OutputTail(spec.log_tail_lines, spec.redact, on_line)
        self._log_pattern = re.compile(spec.readiness.pattern) if isinstance(spec.readiness, LogProbe) else None
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._tree: platform.ProcessTree | None = None
        self._reader: asyncio.Task[None] | None = None
        self._log_matched: asyncio.Event | None = None
        self._client: httpx.AsyncClient | None = None
        self._failures: deque[float] = deque()
        self._delay = spec.restart.backoff_initial_s
        self._ready_since: float | None = None
        self._last_probe: list[ProbeResult] = []
        self.adopted_check_period_s = ADOPTED_CHECK_PERIOD_S

    # --- Component ---------------------------------------------------------------------------
    def status(self) -> PartStatus:
        return PartStatus(
            state=self.state,
            detail=self.reason_text,
            pid=self.pid,
            restarts=self.restarts,
            since=self.since,
            error=self.error,
        )

    def log_tail(self) -> list[str]:
        return list(self._output.lines)

    async def start(self) -> None:
        """Spawn (or adopt) and return at once; supervision continues in a background task.

        Raises :class:`~linkpronto.errors.PortInUse` when ``spec.port`` is held by something that is
        not ours, and :class:`~linkpronto.errors.BinaryNotFound` when ``argv[0]`` does not exist
        (the state is FAILED with that error in both cases).
        """
        if self._task is not None and not self._task.done():
            return
        self.error = None
        self.exit_code = None
        self._failures.clear()
        self._delay = self.spec.restart.backoff_initial_s
        try:
            if await self._port_taken():
                if await self._is_ours():
                    await self._enter_adopted()
                    self._task = asyncio.create_task(self._watch_adopted(), name=f"adopted:{self.name}")
                    return
                raise await self._port_in_use()
            self._set(PartState.STARTING, Text("iniciando", "starting"))
            await self._spawn()
        except LinkprontoError as exc:
            self._fail(exc)
            raise
        self._task = asyncio.create_task(self._supervise(), name=f"supervise:{self.name}")

    async def wait_ready(self, timeout: float) -> bool:  # noqa: ASYNC109 - the Component API
        """True once READY or ADOPTED; False on FAILED or when ``timeout`` seconds pass."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self.state in (PartState.READY, PartState.ADOPTED):
                return True
            if self.state is PartState.FAILED:
                return False
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            changed = self._changed
            if not await wait_set(changed, remaining):
                return False

    async def stop(self) -> None:
        """Stop the whole tree (terminate → ``stop_grace_s`` → kill), then STOPPED.

        An adopted service is left running: it is not ours to stop.
        """
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.error = None
        if self.state is PartState.ADOPTED or self._proc is None:
            self.pid = None
            await self._close_client()
            self._set(PartState.STOPPED, Text("parado", "stopped") if self.state is not PartState.ADOPTED
                      else Text("sem acompanhar (o serviço adotado continua rodando)",
                                "stopped watching (the adopted service keeps running)"))
            return
        self._set(PartState.STOPPING, Text("parando", "stopping"))
        await self._stop_tree(self.spec.stop_grace_s)
        await self._close_client()
        self.pid = None
        self.error = None
        self._set(PartState.STOPPED, Text("parado", "stopped"))

    async def restart(self) -> None:
        """A planned restart (e.g. the app after the public URL changed); not counted as a failure."""
        if self.state is PartState.ADOPTED:
            log.info("%s is adopted (not ours): not restarting it", self.name)
            return
        restarts = self.restarts
        await self.stop()
        self.restarts = restarts + 1
        await self.start()

    # --- state ---------------------------------------------------------------------------------
    @property
    def reason(self) -> str:
        """Why it is in its state, in English (logs, tests); ``reason_text`` has both languages."""
        return self.reason_text.en

    def _set(self, state: PartState, reason: Text) -> None:
        if state is self.state and reason == self.reason_text:
            return
        if state is not self.state:
            self.since = utcnow()
            log.info("%s: %s → %s (%s)", self.name, self.state.value, state.value, reason)
        self.state = state
        self.reason_text = reason
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        self._notify()

    def _fail(self, error: LinkprontoError) -> None:
        self.error = error
        self._set(PartState.FAILED, error.text)

    # --- spawning and stopping -----------------------------------------------------------------
    async def _spawn(self) -> None:
        argv = platform.build_argv(self.spec.argv)
        # The user's environment minus linkpronto's secrets; the spec adds back what this child needs.
        env = child_environment(self.spec.env)
        tree = platform.new_process_tree()
        self._log_matched = self._output.watch(self._log_pattern)
        self._last_probe = []
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                cwd=self.spec.cwd,
                **tree.popen_kwargs(),
            )
        except OSError as exc:
            raise CrashLoop(
                Text(f"Não consegui iniciar {self.name}: {exc.strerror or exc}",
                     f"Could not start {self.name}: {exc.strerror or exc}"),
                fix=Text(f"Confira o comando de {self.name}: {argv[0]}",
                         f"Check the command of {self.name}: {argv[0]}"),
                code=self.spec.error_code,
            ) from exc
        tree.attach(proc.pid)
        self._proc, self._tree = proc, tree
        self.pid = proc.pid
        self.exit_code = None
        self._ready_since = None
        if self._reader is not None and not self._reader.done():
            self._reader.cancel()  # a leftover of the previous run still holding the old pipe
        assert proc.stdout is not None
        self._reader = asyncio.create_task(self._output.pump(proc.stdout), name=f"output:{self.name}")
        self._notify()

    async def _stop_tree(self, grace_s: float) -> None:
        """terminate → wait (main process and every descendant) up to ``grace_s`` → kill."""
        proc, tree = self._proc, self._tree
        if proc is None or tree is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        tree.terminate()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), max(0.0, deadline - loop.time()))
        # Descendants are not our children: there is no exit event to wait on, so poll, bounded.
        while tree.alive() and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        if proc.returncode is None or tree.alive():
            tree.kill()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), KILL_WAIT_S)
        self.exit_code = proc.returncode
        tree.release()
        await self._drain_reader()
        self._proc, self._tree = None, None
        if self.pid == proc.pid:
            self.pid = None

    async def _drain_reader(self) -> None:
        reader = self._reader
        if reader is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(reader), READER_DRAIN_S)
        except TimeoutError:
            reader.cancel()  # a detached descendant still holds the pipe: stop listening to it
        except asyncio.CancelledError:
            if not reader.cancelled():
                raise

    async def _close_client(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = probes.new_client()
        return self._client

    # --- supervision ---------------------------------------------------------------------------
    async def _supervise(self) -> None:
        """One run after another until a crash loop, a port conflict, or cancellation by stop()."""
        policy = self.spec.restart
        while True:
            outcome = await self._run_once()
            # Still running (not ready in time, unhealthy): a full stop. Exited: whatever it left behind.
            still_running = self._proc is not None and self._proc.returncode is None
            await self._stop_tree(self.spec.stop_grace_s if still_running else LEFTOVER_GRACE_S)
            now = self._clock()
            if self._ready_since is not None and now - self._ready_since >= policy.reset_after_ready_s:
                self._delay = policy.backoff_initial_s
            self._failures.append(now)
            while self._failures and now - self._failures[0] > policy.crash_loop_window_s:
                self._failures.popleft()
            if not policy.enabled or len(self._failures) >= policy.crash_loop_failures:
                self._fail(self._crash_loop_error(outcome, len(self._failures), policy.enabled))
                return
            delay = self._delay
            self._delay = min(self._delay * policy.backoff_factor, policy.backoff_max_s)
            self._set(PartState.RESTARTING, outcome + Text(f"; reiniciando em {delay:.2f} s",
                                                           f"; restarting in {delay:.2f} s"))
            await asyncio.sleep(delay)
            try:
                if await self._port_taken():
                    if await self._is_ours():
                        await self._enter_adopted()
                        await self._watch_adopted()
                        return
                    self._fail(await self._port_in_use())
                    return
                self.restarts += 1
                self._set(PartState.STARTING, Text(f"reiniciando (reinício {self.restarts})",
                                                   f"restarting (restart {self.restarts})"))
                await self._spawn()
            except LinkprontoError as exc:
                self._fail(exc)
                return

    async def _run_once(self) -> Text:
        """Wait for readiness, then for the end of this run; returns why the run ended."""
        proc = self._proc
        assert proc is not None
        exited = asyncio.create_task(proc.wait(), name=f"wait:{self.name}")
        pending: set[asyncio.Task[object]] = set()
        try:
            readiness = self._readiness_task()
            if readiness is not None:
                self._set(PartState.STARTING, Text("aguardando ficar pronto", "waiting for readiness"))
                pending = {readiness}
                done, _ = await asyncio.wait(
                    {exited, readiness}, timeout=self.spec.start_timeout_s,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if exited in done:
                    return describe_exit(exited.result()) + Text(" antes de ficar pronto", " before it was ready")
                if readiness not in done:
                    last = self._last_probe[0].detail if self._last_probe else ""
                    t = self.spec.start_timeout_s
                    return Text(
                        f"não ficou pronto em {t:g} s" + (f" (última verificação: {last})" if last else ""),
                        f"not ready after {t:g} s" + (f" (last check: {last})" if last else ""),
                    )
            self._ready_since = self._clock()
            self._set(PartState.READY, Text("pronto", "ready"))
            health = self.spec.liveness
            if health is None or isinstance(health, LogProbe):
                return describe_exit(await exited)
            liveness: asyncio.Task[object] = asyncio.create_task(
                probes.until_unhealthy(health, self._http()), name=f"liveness:{self.name}")
            pending = {liveness}
            done, _ = await asyncio.wait({exited, liveness}, return_when=asyncio.FIRST_COMPLETED)
            if exited in done:
                return describe_exit(exited.result())
            result = liveness.result()
            detail = result.detail if isinstance(result, ProbeResult) else "health check failed"
            self._set(PartState.UNHEALTHY, Text(f"a verificação de saúde falhou: {detail}",
                                                f"health check failed: {detail}"))
            return Text(f"parado porque a verificação de saúde falhou ({detail})",
                        f"stopped after its health check failed ({detail})")
        finally:
            for task in (*pending, exited):
                task.cancel()
            self.exit_code = proc.returncode

    def _readiness_task(self) -> asyncio.Task[object] | None:
        probe = self.spec.readiness
        if probe is None:
            return None
        if isinstance(probe, LogProbe):
            matched = self._log_matched
            assert matched is not None
            return asyncio.create_task(matched.wait(), name=f"ready-log:{self.name}")
        return asyncio.create_task(probes.until_ready(probe, self._http(), self._last_probe),
                                   name=f"ready:{self.name}")

    def _crash_loop_error(self, outcome: Text, failures: int, restart_enabled: bool) -> LinkprontoError:
        window = self.spec.restart.crash_loop_window_s
        if restart_enabled:
            message = Text(
                f"{self.name} parou {failures} vezes em {window:g} s e não será mais reiniciado "
                f"automaticamente. Última vez: {outcome.pt}.",
                f"{self.name} stopped {failures} times within {window:g} s and will not be restarted "
                f"again automatically. Last time: {outcome.en}.",
            )
        else:
            message = Text(f"{self.name} parou: {outcome.pt}.", f"{self.name} stopped: {outcome.en}.")
        fix = Text(
            f"Veja as últimas linhas da saída de {self.name} (no detalhe do erro), corrija a causa e "
            "reinicie com: linkpronto up",
            f"Read the last lines of {self.name}'s output (in the error detail), fix the cause and "
            "restart with: linkpronto up",
        )
        cls = _CRASH_LOOP_CLASSES.get(self.spec.error_code, CrashLoop)
        return cls(message, fix=fix, detail="\n".join(self.log_tail()), code=self.spec.error_code,
                   exit_code=self.exit_code, failures=failures)

    # --- ports and adoption ----------------------------------------------------------------------
    async def _port_taken(self) -> bool:
        port = self.spec.port
        return port is not None and await probes.tcp_accepts("127.0.0.1", port, PORT_CHECK_TIMEOUT_S)

    async def _is_ours(self) -> bool:
        return self._adopt is not None and await self._adopt()

    async def _enter_adopted(self) -> None:
        port = self.spec.port
        holder = await asyncio.to_thread(platform.port_holder, port) if port is not None else None
        self.pid = holder[0] if holder else None
        who = f" (pid {holder[0]}, {holder[1]})" if holder else ""
        self._set(PartState.ADOPTED, Text(
            f"já rodava na porta {port}{who}; adotado, não iniciado por nós",
            f"already running on port {port}{who}; adopted, not started by us",
        ))

    async def _watch_adopted(self) -> None:
        """Health-check an adopted service; if it goes away, start our own copy."""
        probe = self.spec.health_probe()
        period = max(probe.period_s if probe else 0.0, self.adopted_check_period_s)
        threshold = probe.failure_threshold if probe else 3
        failures = 0
        while True:
            await asyncio.sleep(period)
            if probe is not None:
                result = await probes.check(probe, self._http())
            else:
                ok = await self._port_taken()
                result = ProbeResult(ok, "" if ok else "port closed")
            if result.ok:
                failures = 0
                if self.state is not PartState.ADOPTED:
                    await self._enter_adopted()
                continue
            failures += 1
            if failures < threshold:
                continue
            if await self._port_taken():
                self._set(PartState.UNHEALTHY, Text(f"serviço adotado com problema: {result.detail}",
                                                    f"adopted service unhealthy: {result.detail}"))
                continue
            self._set(PartState.STARTING, Text("o serviço adotado sumiu; iniciando o nosso",
                                               "the adopted service went away; starting our own"))
            try:
                await self._spawn()
            except LinkprontoError as exc:
                self._fail(exc)
                return
            await self._supervise()
            return

    async def _port_in_use(self) -> PortInUse:
        port = self.spec.port
        holder = await asyncio.to_thread(platform.port_holder, port) if port is not None else None
        setting = self.spec.port_setting or "linkpronto.toml"
        return PortInUse.held(port, self.name, holder, setting)
