"""Supervised child processes: frozen specs (:mod:`.spec`), probes (:mod:`.probes`) and the runtime
object :class:`ManagedProcess` (:mod:`.process`). Platform details live in :mod:`linkpronto.platform`."""

from linkpronto.supervise.process import ManagedProcess
from linkpronto.supervise.spec import (
    CustomProbe,
    HttpProbe,
    LogProbe,
    Probe,
    ProbeResult,
    ProcessSpec,
    RestartPolicy,
    TcpProbe,
)

__all__ = [
    "CustomProbe",
    "HttpProbe",
    "LogProbe",
    "ManagedProcess",
    "PartState",
    "Probe",
    "ProbeResult",
    "ProcessSpec",
    "RestartPolicy",
    "TcpProbe",
]
