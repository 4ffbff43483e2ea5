"""The served OpenAPI document of a gateway with every optional part on (payments, e-receipts,
signing, e-certification) is precise where the fuzz run cannot tell: it lists every route the app
serves and no other, every error answer is the house error shape, every JSON body route gives the
statuses json_body() can answer, every secured operation its 401."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from tests.fakes.vnpt import running_vnpt
from tests.fuzz.seal import seal_key
from tests.gateway.test_http_api import documented_routes, served_routes
from tests.harness import UNIT, Gateway, Sandbox, run_gateway, settings_for

ERROR = {"$ref": "#/components/responses/Error"}
#: the citizens' form answers its own page; /readyz answers its report, passing or not
NOT_ERROR_SHAPE = {("/verify", "post", "422"), ("/readyz", "get", "503")}


@pytest.fixture
async def full(sandbox: Sandbox, tmp_path: Path) -> AsyncIterator[tuple[Gateway, dict[str, Any]]]:
    key_file, cert_file = seal_key(tmp_path)
    async with running_vnpt() as vnpt:
        settings = settings_for(
            tmp_path, sandbox.url,
            payment={"enabled": True, "init_url": f"{sandbox.url}/payment/init",
                     "query_url": f"{sandbox.url}/payment/query", "bill_url": f"{sandbox.url}/payment/bill",
                     "partner_code": "P", "secret": "s"},
            receipts={"enabled": True, "base_url": vnpt.url, "account": "a", "acpass": "b", "username": "u",
                      "password": "p"},
            signing={"workers": 1, "trust_roots": [str(cert_file)],
                     "keys": [{"alias": "seal", "source": "file", "key_file": str(key_file),
                               "cert_file": str(cert_file), "agencies": [UNIT]}]},
            certification={"authorities": [{"code": "000.00.99.H55", "name": "UBND xã Thử", "key": "seal",
                                            "agencies": [UNIT]}]})
        async with run_gateway(settings) as gw:
            doc = await (await gw.client.get("/openapi.json")).json()
            yield gw, doc


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(p, m, op) for p, ops in doc["paths"].items() for m, op in ops.items() if m != "parameters"]


async def test_the_full_document_lists_every_served_route(full: tuple[Gateway, dict[str, Any]]) -> None:
    gw, doc = full
    validate(doc)  # type: ignore[arg-type]
    assert served_routes(gw) == documented_routes(doc)


async def test_every_error_answer_is_the_house_shape(full: tuple[Gateway, dict[str, Any]]) -> None:
    _, doc = full
    odd = [(p, m, code) for p, m, op in operations(doc) for code, resp in op["responses"].items()
           if code[0] in "45" and resp != ERROR and (p, m, code) not in NOT_ERROR_SHAPE]
    assert odd == []


async def test_json_body_routes_document_what_json_body_answers(full: tuple[Gateway, dict[str, Any]]) -> None:
    """gateway.handlers.json_body answers 400 (broken JSON), 408 (body too slow), 413 and 415; the
    CONFIRM callback reads its body itself and always answers 200."""
    _, doc = full
    missing = {(p, m): {"400", "408", "413", "415"} - set(op["responses"])
               for p, m, op in operations(doc)
               if "application/json" in op.get("requestBody", {}).get("content", {}) and p != "/v1/payments/confirm"}
    assert {k: v for k, v in missing.items() if v} == {}


async def test_every_secured_operation_documents_401(full: tuple[Gateway, dict[str, Any]]) -> None:
    _, doc = full
    assert [(p, m) for p, m, op in operations(doc) if op.get("security") and "401" not in op["responses"]] == []
