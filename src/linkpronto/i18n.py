"""User-facing text in pt-BR (default) and English.

Code, identifiers and logs are English; what a clinic's receptionist reads is a :class:`Text` that
carries both languages. The language is chosen by ``LINKPRONTO_LANG`` (``pt-BR`` or ``en``), or per
call with :meth:`Text.get`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

Lang = Literal["pt-BR", "en"]
DEFAULT_LANG: Lang = "pt-BR"


def current_lang() -> Lang:
    value = os.environ.get("LINKPRONTO_LANG", "").strip().lower()
    if value.startswith("en"):
        return "en"
    return DEFAULT_LANG


def normalize_lang(value: str | None) -> Lang:
    if value and value.lower().startswith("en"):
        return "en"
    return "pt-BR"


@dataclass(frozen=True, slots=True)
class Text:
    """One message in both languages."""

    pt: str
    en: str

    def get(self, lang: Lang | None = None) -> str:
        return self.en if (lang or current_lang()) == "en" else self.pt

    def format(self, **kwargs: object) -> Text:
        return Text(self.pt.format(**kwargs), self.en.format(**kwargs))

    def __str__(self) -> str:
        return self.get()


def T(pt: str, en: str) -> Text:
    return Text(pt, en)
