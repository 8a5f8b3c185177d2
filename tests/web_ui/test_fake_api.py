"""The browser tests' fake API speaks the contract's models: it cannot answer what the real API would not."""

from __future__ import annotations

import inspect
import re

import pytest
from fake_api import FakeStack  # type: ignore[import-not-found]
from pydantic import ValidationError

from linkpronto import schema, verify


def test_every_document_is_a_contract_model() -> None:
    stack = FakeStack()
    stack.public_origin = "http://127.0.0.1:9"
    schema.Status.model_validate(stack.status())
    link = stack.add_link(consultation_type="psicoterapia")
    schema.Link.model_validate(stack.public_link(link["id"]))
    stack.set_starting()
    assert schema.Status.model_validate(stack.status()).state is schema.StackState.STARTING


def test_a_field_the_real_api_does_not_have_is_refused() -> None:
    stack = FakeStack()
    with pytest.raises(ValidationError):
        stack.add_link(qr_svg="<svg/>")  # the old fake's inline QR: the real API has qr_svg_url
    link = stack.add_link()
    stack.links[link["id"]]["status"] = "gone"  # not a LinkStatus
    with pytest.raises(ValidationError):
        stack.public_link(link["id"])


def test_check_names_are_the_real_ladders() -> None:
    """The ladder's steps as linkpronto/verify.py names them (the ``app`` step only runs with an app;
    ``media`` is its informational last check)."""
    real = (set(re.findall(r'_timed\("(\w+)"', inspect.getsource(verify))) - {"app"}) | {"media"}
    names = {c["name"] for c in FakeStack().status()["verification"]["checks"]}
    assert real and names == real
