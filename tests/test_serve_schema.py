"""Schemathesis in-process against the server's OpenAPI schema, every check, bounded.

A quick version of ``benchmarks/schemathesis_serve.py``: the app is called over ASGI (no
socket), each operation gets at most ``MAX_EXAMPLES`` generated cases (valid and invalid
ones) besides its examples and the coverage cases, and every built-in check is run on each
answer: no 5xx, documented statuses, content types, headers and bodies, valid bodies
accepted and invalid ones refused.
"""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="the server needs FastAPI")
schemathesis = pytest.importorskip(
    "schemathesis", reason="schemathesis is not installed (pip install schemathesis, or the test extra)"
)

from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

from anyner import AnyNER  # noqa: E402
from anyner.serve import create_app  # noqa: E402

pytestmark = pytest.mark.slow
MAX_EXAMPLES = 100


def _hooks():
    """The hooks of benchmarks/schemathesis_serve.py: the rules of the API that JSON Schema cannot
    say (one label set per text, a per-label threshold naming only labels), kept in one place."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "schemathesis_serve.py"
    spec = importlib.util.spec_from_file_location("schemathesis_serve_hooks", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


valid_case = _hooks().valid_case


@pytest.fixture(scope="module")
def api(tiny_bert_dir):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = AnyNER.from_encoder(tiny_bert_dir, hidden_size=32, num_rnn_layers=0)
    loaded = schemathesis.openapi.from_asgi("/openapi.json", create_app(model, max_wait_ms=0))

    @loaded.hook
    def map_case(context, case):
        return valid_case(case)

    yield loaded
    torch.set_num_threads(before)


schema = schemathesis.pytest.from_fixture("api")


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_server_does_what_its_schema_says(case):
    case.call_and_validate()  # every check enabled in the config: all of them by default


def test_every_check_is_enabled(api):
    config = api.config.checks_config_for(operation=None, phase=None)
    for name in ("not_a_server_error", "status_code_conformance", "content_type_conformance",
                 "response_headers_conformance", "response_schema_conformance",
                 "negative_data_rejection", "positive_data_acceptance", "unsupported_method"):  # fmt: skip
        assert getattr(config, name).enabled, name
