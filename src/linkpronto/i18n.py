"""User-facing text in pt-BR (default) and English, with the language chosen once, at rendering.

Code, identifiers and logs are English; what a clinic's receptionist reads is a :class:`Text` that
carries both languages until the moment it is rendered (the idea of Django's ``gettext_lazy``).
The renderer picks the language:

- HTTP (API, SSE, pages): :func:`pick_lang` — ``?lang=``, then ``Accept-Language``, then the
  process default;
- the command line: the process default, :func:`default_lang` — ``LINKPRONTO_LANG`` (``pt-BR`` or
  ``en``) read ONCE, when first needed (or set with :func:`set_default_lang`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Lang = Literal["pt-BR", "en"]
DEFAULT_LANG: Lang = "pt-BR"
LANGS: tuple[Lang, ...] = ("pt-BR", "en")

_default: Lang | None = None


def normalize_lang(value: str | None) -> Lang:
    if value and value.strip().lower().startswith("en"):
        return "en"
    return "pt-BR"


def lang_from_env(environ: Mapping[str, str] | None = None) -> Lang:
    value = (os.environ if environ is None else environ).get("LINKPRONTO_LANG", "")
    return normalize_lang(value) if value.strip() else DEFAULT_LANG


def default_lang() -> Lang:
    """The process's language (``LINKPRONTO_LANG``), read once."""
    global _default
    if _default is None:
        _default = lang_from_env()
    return _default


def set_default_lang(lang: Lang | None) -> None:
    """Fix the process's language (``None``: read ``LINKPRONTO_LANG`` again when next needed)."""
    global _default
    _default = lang


def accept_language(header: str | None) -> Lang | None:
    """The first of our languages in an ``Accept-Language`` header, by preference (q), or None."""
    best: tuple[float, int, Lang] | None = None
    for i, part in enumerate((header or "").split(",")):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip().lower()
        q = 1.0
        for p in params.split(";"):
            k, _, v = p.strip().partition("=")
            if k == "q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
        if q <= 0:
            continue
        lang: Lang | None = "en" if tag.startswith("en") else "pt-BR" if tag.startswith("pt") else None
        if lang is not None and (best is None or (q, -i) > (best[0], best[1])):
            best = (q, -i, lang)
    return best[2] if best else None


def pick_lang(query: str | None, accept: str | None) -> Lang:
    """An HTTP request's language: ``?lang=``, then ``Accept-Language``, then the process default."""
    if query:
        return normalize_lang(query)
    return accept_language(accept) or default_lang()


@dataclass(frozen=True, slots=True)
class Text:
    """One message in both languages."""

    pt: str
    en: str

    def get(self, lang: Lang | None = None) -> str:
        return self.en if (lang or default_lang()) == "en" else self.pt

    def format(self, **kwargs: object) -> Text:
        return Text(self.pt.format(**kwargs), self.en.format(**kwargs))

    def __add__(self, other: Text | str) -> Text:
        if isinstance(other, Text):
            return Text(self.pt + other.pt, self.en + other.en)
        return Text(self.pt + other, self.en + other)

    def to_json(self) -> dict[str, str]:
        """Both languages, for storage (rendered later)."""
        return {"pt-BR": self.pt, "en": self.en}

    @classmethod
    def same(cls, text: str) -> Text:
        """Text that reads the same in both languages (a URL, a number, a program's own words)."""
        return cls(text, text)

    def __str__(self) -> str:
        return self.get()


#: No text (an empty detail).
EMPTY = Text("", "")


def T(pt: str, en: str) -> Text:
    return Text(pt, en)


def render(value: object, lang: Lang | None) -> str | None:
    """A stored message in ``lang``: a :class:`Text`, a ``{"pt-BR", "en"}`` dict, or a plain string."""
    if value is None:
        return None
    if isinstance(value, Text):
        return value.get(lang)
    if isinstance(value, dict):
        key = lang or default_lang()
        return str(value.get(key) or value.get("pt-BR") or value.get("en") or "")
    return str(value)
