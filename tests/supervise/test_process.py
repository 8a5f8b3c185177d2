"""ManagedProcess with real children (``sys.executable sup_child.py ...``)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
from sup_helpers import child_argv, free_port, gone, kill_quietly, until, wait_gone

from linkpronto.errors import BinaryNotFound, CrashLoop, LivekitCrashLoop, PortInUse
from linkpronto.schema import PartState
from linkpronto.supervise import (
    HttpProbe,
    LogProbe,
    ManagedProcess,
    ProcessSpec,
    RestartPolicy,
    TcpProbe,
)

posix_only = pytest.mark.only_on("posix")  # POSIX signals
FAST = RestartPolicy(backoff_initial_s=0.05, backoff_max_s=0.2, crash_loop_failures=3, crash_loop_window_s=30)


@pytest.mark.slow
async def test_ready_only_after_the_probe_passes() -> None:
    port = free_port()
    spec = ProcessSpec("web", child_argv("http", port, 0.6), port=port,
                       readiness=HttpProbe(f"http://127.0.0.1:{port}/", expect_body="^OK$", period_s=0.05))
    mp = ManagedProcess(spec)
    seen: list[PartState] = []
    mp.subscribe(lambda _st: seen.append(mp.state))
    started = time.monotonic()
    await mp.start()
    try:
        assert mp.pid is not None
        assert mp.state is PartState.STARTING
        assert not await mp.wait_ready(0.3)  # the child only listens after 0.6 s
        assert mp.status().state is PartState.STARTING
        assert "connection refused" in mp.reason or "waiting" in mp.reason
        assert await mp.wait_ready(5)
        assert time.monotonic() - started >= 0.6
        assert mp.status().state is PartState.READY
        assert seen[-1] is PartState.READY
    finally:
        await mp.stop()
    assert mp.state is PartState.STOPPED
    assert seen[-1] is PartState.STOPPED


@pytest.mark.slow
async def test_log_line_readiness_and_output_callback() -> None:
    lines: list[str] = []
    spec = ProcessSpec("term", child_argv("ignore-term"), readiness=LogProbe(r"^ready$"), stop_grace_s=0.2)
    mp = ManagedProcess(spec, on_line=lines.append)
    await mp.start()
    try:
        assert await mp.wait_ready(5)
        assert lines == ["ready"]
        assert mp.log_tail() == ["ready"]
    finally:
        await mp.stop()


@pytest.mark.slow
@posix_only
async def test_sigkill_of_the_child_is_detected_and_it_comes_back_ready() -> None:
    port = free_port()
    spec = ProcessSpec("web", child_argv("http", port, 0), port=port, restart=FAST,
                       readiness=TcpProbe("127.0.0.1", port, period_s=0.05))
    mp = ManagedProcess(spec)
    await mp.start()
    try:
        assert await mp.wait_ready(5)
        first = mp.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        # How fast the kill is seen is measured in bench/recovery.py (target ≤ 0.5 s), not asserted here.
        assert await until(lambda: mp.state is not PartState.READY, 5.0, step=0.001)
        assert "killed by signal 9" in mp.reason
        assert await until(lambda: mp.state is PartState.READY, 5)
        assert mp.pid != first
        assert mp.restarts == 1
        assert mp.status().restarts == 1
    finally:
        await mp.stop()


@pytest.mark.slow
async def test_crash_loop_fails_with_the_code_and_a_redacted_log_tail() -> None:
    secret = "s3cr3t-value-that-must-not-leak"
    spec = ProcessSpec("app", child_argv("crash", 3, 60, f"token={secret}"), restart=FAST,
                       error_code="APP_CRASH_LOOP", redact=(secret,))
    lines: list[str] = []
    mp = ManagedProcess(spec, on_line=lines.append)
    await mp.start()
    try:
        assert await until(lambda: mp.state is PartState.FAILED, 10)
        assert not await mp.wait_ready(0.1)
        error = mp.error
        assert isinstance(error, CrashLoop)
        assert error.code == "APP_CRASH_LOOP"
        assert mp.status().error is error
        assert mp.status().to_schema("en").error.code == "APP_CRASH_LOOP"  # type: ignore[union-attr]
        assert error.detail is not None
        tail = error.detail.splitlines()
        assert len(tail) == 50
        assert tail[-1] == "line 59 token=**********"
        assert secret not in error.detail
        assert all(secret not in line for line in lines)
        assert "exited with code 3" in error.text.en
        assert mp.restarts == 2  # 3 runs = the first + 2 restarts
    finally:
        await mp.stop()


@pytest.mark.slow
async def test_livekit_crash_loop_has_its_own_class() -> None:
    spec = ProcessSpec("livekit", child_argv("crash", 1, 1, "boom"), restart=FAST,
                       error_code="LIVEKIT_CRASH_LOOP")
    mp = ManagedProcess(spec)
    await mp.start()
    try:
        assert await until(lambda: mp.state is PartState.FAILED, 10)
        assert isinstance(mp.error, LivekitCrashLoop)
        assert mp.error.code == "LIVEKIT_CRASH_LOOP"
    finally:
        await mp.stop()


async def _backoff_delays(clock_step: float) -> list[str]:
    now = [0.0]

    def clock() -> float:
        now[0] += clock_step
        return now[0]

    policy = RestartPolicy(backoff_initial_s=0.01, backoff_factor=2, backoff_max_s=0.04,
                           crash_loop_failures=100, reset_after_ready_s=30)
    mp = ManagedProcess(ProcessSpec("app", child_argv("crash", 0, 0, "x"), restart=policy), clock=clock)
    reasons: list[str] = []
    mp.subscribe(lambda _st: reasons.append(mp.reason) if mp.state is PartState.RESTARTING else None)
    await mp.start()
    try:
        assert await until(lambda: len(reasons) >= 4, 10)
    finally:
        await mp.stop()
    return [r.rsplit("restarting in ", 1)[1] for r in reasons[:4]]


@pytest.mark.slow
async def test_back_off_grows_and_is_capped() -> None:
    assert await _backoff_delays(clock_step=0.0) == ["0.01 s", "0.02 s", "0.04 s", "0.04 s"]


@pytest.mark.slow
async def test_back_off_resets_after_a_long_ready_run() -> None:
    # Each run is "ready" (no probe) and the fake clock moves 100 s per reading: every run was long.
    assert await _backoff_delays(clock_step=100.0) == ["0.01 s"] * 4


@pytest.mark.slow
async def test_port_held_by_another_process_is_port_in_use_naming_it() -> None:
    port = free_port()
    holder = subprocess.Popen(child_argv("listen", port), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "listening"
        spec = ProcessSpec("livekit", child_argv("http", port, 0), port=port, port_setting="livekit.port")
        mp = ManagedProcess(spec)
        with pytest.raises(PortInUse) as caught:
            await mp.start()
        error = caught.value
        assert error.code == "PORT_IN_USE"
        assert f"PID {holder.pid}" in error.text.en
        assert f"PID {holder.pid}" in error.text.pt
        name = psutil.Process(holder.pid).name()
        assert name in error.text.en
        assert error.fix_text is not None and "livekit.port" in error.fix_text.en
        assert error.context["holder_pid"] == holder.pid
        assert mp.state is PartState.FAILED
        assert mp.error is error
        await mp.stop()
    finally:
        holder.kill()
        holder.wait(5)


@pytest.mark.slow
async def test_adopts_a_service_that_is_already_ours_and_never_stops_it() -> None:
    port = free_port()
    other = subprocess.Popen(child_argv("http", port, 0), stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout is not None and other.stdout.readline().startswith("serving")

        async def ours() -> bool:
            return True

        spec = ProcessSpec("livekit", child_argv("http", port, 0), port=port,
                           readiness=HttpProbe(f"http://127.0.0.1:{port}/"))
        mp = ManagedProcess(spec, adopt=ours)
        await mp.start()
        assert mp.state is PartState.ADOPTED
        assert mp.status().state is PartState.ADOPTED
        assert await mp.wait_ready(0.1)
        assert mp.pid == other.pid
        await mp.stop()
        assert mp.state is PartState.STOPPED
        assert other.poll() is None  # still running: not ours to stop
    finally:
        other.kill()
        other.wait(5)


@pytest.mark.slow
async def test_an_adopted_service_that_goes_away_is_replaced_by_our_own() -> None:
    port = free_port()
    other = subprocess.Popen(child_argv("http", port, 0), stdout=subprocess.PIPE, text=True)
    assert other.stdout is not None and other.stdout.readline().startswith("serving")

    async def ours() -> bool:
        return True

    spec = ProcessSpec("svc", child_argv("http", port, 0), port=port,
                       readiness=HttpProbe(f"http://127.0.0.1:{port}/", period_s=0.05, failure_threshold=1))
    mp = ManagedProcess(spec, adopt=ours)
    mp.adopted_check_period_s = 0.05
    try:
        await mp.start()
        assert mp.state is PartState.ADOPTED
        other.kill()
        other.wait(5)
        assert await until(lambda: mp.state is PartState.READY and mp.pid != other.pid, 5)
    finally:
        await mp.stop()
        if other.poll() is None:
            other.kill()
            other.wait(5)


@pytest.mark.slow
async def test_a_port_not_ours_is_refused_even_with_an_adopt_check() -> None:
    port = free_port()
    other = subprocess.Popen(child_argv("listen", port), stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout is not None and other.stdout.readline().strip() == "listening"

        async def not_ours() -> bool:
            return False

        mp = ManagedProcess(ProcessSpec("svc", child_argv("http", port, 0), port=port), adopt=not_ours)
        with pytest.raises(PortInUse):
            await mp.start()
    finally:
        other.kill()
        other.wait(5)


@pytest.mark.slow
@posix_only
async def test_a_child_ignoring_sigterm_is_killed_after_the_grace_period() -> None:
    spec = ProcessSpec("stubborn", child_argv("ignore-term"), readiness=LogProbe("ready"), stop_grace_s=0.5)
    mp = ManagedProcess(spec)
    await mp.start()
    assert await mp.wait_ready(5)
    pid = mp.pid
    assert pid is not None
    started = time.monotonic()
    await mp.stop()
    assert time.monotonic() - started >= 0.5  # the grace period was given before the kill
    assert gone(pid)
    assert mp.exit_code == -signal.SIGKILL


@pytest.mark.slow
async def test_a_grandchild_is_stopped_with_its_parent() -> None:
    pids: list[int] = []

    def on_line(line: str) -> None:
        if line.startswith("pids "):
            pids.extend(int(p) for p in line.split()[1:])

    mp = ManagedProcess(ProcessSpec("tree", child_argv("tree"), readiness=LogProbe("^pids "), stop_grace_s=2),
                        on_line=on_line)
    await mp.start()
    try:
        assert await mp.wait_ready(5)
        assert len(pids) == 2 and pids[0] == mp.pid
        assert not gone(pids[1])
    finally:
        await mp.stop()
    try:
        assert wait_gone(pids, 2)
    finally:
        kill_quietly(pids)


@pytest.mark.slow
@posix_only
def test_sigkill_of_the_orchestrator_leaves_no_child_alive(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import asyncio, sys
        from linkpronto.supervise import ManagedProcess, ProcessSpec, LogProbe
        async def main():
            def on_line(line):
                if line.startswith("pids "):
                    print(line, flush=True)
            spec = ProcessSpec("tree", {child_argv("tree")!r}, readiness=LogProbe("^pids "))
            mp = ManagedProcess(spec, on_line=on_line)
            await mp.start()
            await mp.wait_ready(10)
            await asyncio.sleep(60)
        asyncio.run(main())
    """)
    orchestrator = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    pids: list[int] = []
    try:
        assert orchestrator.stdout is not None
        line = orchestrator.stdout.readline()
        assert line.startswith("pids "), line
        pids = [int(p) for p in line.split()[1:]]
        descendants = [p.pid for p in psutil.Process(orchestrator.pid).children(recursive=True)]
        assert set(pids) <= set(descendants)
        orchestrator.kill()
        orchestrator.wait(5)
        assert wait_gone(descendants, 5.0), [p for p in descendants if not gone(p)]
    finally:
        if orchestrator.poll() is None:
            orchestrator.kill()
            orchestrator.wait(5)
        kill_quietly(pids)


@pytest.mark.slow
async def test_liveness_failure_makes_it_unhealthy_then_restarts_it(tmp_path: Path) -> None:
    port = free_port()
    sick = tmp_path / "sick"
    spec = ProcessSpec(
        "web", child_argv("http", port, 0, sick), port=port, restart=FAST, stop_grace_s=1,
        readiness=TcpProbe("127.0.0.1", port, period_s=0.05),
        liveness=HttpProbe(f"http://127.0.0.1:{port}/health", period_s=0.05, failure_threshold=2),
    )
    mp = ManagedProcess(spec)
    seen: list[tuple[PartState, str]] = []
    mp.subscribe(lambda _st: seen.append((mp.state, mp.reason)))
    await mp.start()
    try:
        assert await mp.wait_ready(5)
        first = mp.pid
        sick.touch()
        assert await until(lambda: any(s is PartState.UNHEALTHY for s, _ in seen), 5)
        unhealthy = next(r for s, r in seen if s is PartState.UNHEALTHY)
        assert "answered 500, expected 200" in unhealthy
        sick.unlink()
        assert await until(lambda: mp.state is PartState.READY and mp.pid != first, 5)
        assert first is not None and gone(first)
        assert mp.restarts == 1
    finally:
        await mp.stop()


@pytest.mark.slow
async def test_not_ready_within_the_start_timeout_counts_as_a_failure() -> None:
    port = free_port()
    spec = ProcessSpec("slow", child_argv("http", port, 30), port=port, start_timeout_s=0.3, stop_grace_s=0.5,
                       restart=RestartPolicy(enabled=False),
                       readiness=HttpProbe(f"http://127.0.0.1:{port}/", period_s=0.05))
    mp = ManagedProcess(spec)
    await mp.start()
    pid = mp.pid
    try:
        assert await until(lambda: mp.state is PartState.FAILED, 5)
        assert mp.error is not None and "not ready after 0.3 s" in mp.error.text.en
        assert "connection refused" in mp.error.text.en
        assert pid is not None and gone(pid)
    finally:
        await mp.stop()


@pytest.mark.slow
async def test_planned_restart_is_not_a_failure() -> None:
    port = free_port()
    spec = ProcessSpec("web", child_argv("http", port, 0), port=port,
                       readiness=TcpProbe("127.0.0.1", port, period_s=0.05))
    mp = ManagedProcess(spec)
    await mp.start()
    try:
        assert await mp.wait_ready(5)
        first = mp.pid
        await mp.restart()
        assert await mp.wait_ready(5)
        assert mp.pid != first and mp.restarts == 1 and mp.error is None
    finally:
        await mp.stop()


async def test_a_missing_program_is_binary_not_found() -> None:
    mp = ManagedProcess(ProcessSpec("ghost", ("linkpronto-no-such-program-xyz",)))
    with pytest.raises(BinaryNotFound):
        await mp.start()
    assert mp.state is PartState.FAILED
    assert isinstance(mp.error, BinaryNotFound)


@pytest.mark.slow
async def test_stop_is_safe_before_start_and_twice() -> None:
    mp = ManagedProcess(ProcessSpec("idle", child_argv("ignore-term"), stop_grace_s=0.3))
    await mp.stop()
    assert mp.state is PartState.STOPPED
    await mp.start()
    await mp.stop()
    await mp.stop()
    assert mp.state is PartState.STOPPED and mp.pid is None


@pytest.mark.slow
async def test_env_and_cwd_reach_the_child(tmp_path: Path) -> None:
    lines: list[str] = []
    code = "import os; print(os.environ['LP_TEST_VALUE'], os.getcwd(), flush=True)"
    spec = ProcessSpec("env", (sys.executable, "-c", code), env={"LP_TEST_VALUE": "hello"}, cwd=tmp_path,
                       restart=RestartPolicy(enabled=False))
    mp = ManagedProcess(spec, on_line=lines.append)
    await mp.start()
    try:
        assert await until(lambda: mp.state is PartState.FAILED, 5)
        assert lines == [f"hello {tmp_path}"] or lines == [f"hello {os.path.realpath(tmp_path)}"]
        assert mp.exit_code == 0
    finally:
        await mp.stop()


@pytest.mark.slow
async def test_wait_ready_times_out() -> None:
    mp = ManagedProcess(ProcessSpec("never", child_argv("ignore-term"), readiness=LogProbe("never matches"),
                                    stop_grace_s=0.2))
    await mp.start()
    try:
        # It returns False on its own timeout (wait_for would raise TimeoutError if it did not).
        assert await asyncio.wait_for(mp.wait_ready(0.2), 10) is False
    finally:
        await mp.stop()
