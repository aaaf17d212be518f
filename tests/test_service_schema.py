"""schemathesis against the service's own OpenAPI schema, on a real server: no input gives a 5xx.

Every documented operation gets generated requests (random bodies, ids, query values), sent with
the admin key so that they reach the handlers rather than stop at the key check.
"""

from __future__ import annotations


import pytest

pytest.importorskip("fastapi", reason="the service extra is not installed: pip install -e '.[service]'")
schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed: pip install -e '.[test]'")
from hypothesis import HealthCheck, given, settings  # noqa: E402

from faceprint.service.testing import running_server  # noqa: E402

ADMIN = "schema-admin-key"


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    db = tmp_path_factory.mktemp("schema") / "gallery.db"
    with running_server(db, {"FACEPRINT_ADMIN_KEY": ADMIN, "FACEPRINT_API_KEY": "schema-read-key"}) as url:
        yield schemathesis.openapi.from_url(f"{url}/openapi.json")


def test_no_server_errors(api_schema) -> None:  # noqa: ANN001
    # Operations are driven one by one with Hypothesis directly (schemathesis' pytest plugin does
    # not load with this pytest).
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 12
    # GET /v1/events answers for as long as the client listens (Server-Sent Events): a whole-body
    # call would never return. tests/test_streams.py drives it.
    operations = [op for op in operations if op.path != "/v1/events"]
    for op in operations:

        @given(case=op.as_strategy())
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case) -> None:  # noqa: ANN001
            response = case.call(headers={"X-API-Key": ADMIN}, timeout=120)
            where = f"{case.method} {case.formatted_path}"
            assert response.status_code < 500, f"{where}: {response.status_code} {response.text[:300]}"
            ctype = (response.headers.get("content-type") or [""])[0]  # schemathesis keeps header lists
            if response.status_code >= 400 and ctype.startswith("application/json"):
                assert set(response.json()) == {"error"}, f"{where}: {response.text[:300]}"

        check()
