"""HTTPS at the gateway: with a certificate configured the node's HTTP port speaks TLS only."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from mslesion.node import Node, Parts
from mslesion.services.config import Settings
from mslesion.services.tls import TLSConfigError, http_scheme
from tests.security.pki import Pki


@pytest.fixture
def https_node(node_settings: Settings, pki: Pki) -> Iterator[Node]:
    """A node running only its gateway, with the test CA's server certificate."""
    settings = node_settings.model_copy(
        update={"http_tls_cert": pki.server_cert, "http_tls_key": pki.server_key}
    )
    node = Node(settings, Parts(http=True, dicom=False, in_process_worker=True))
    node.start(migrate=False, create_admin_key=True)
    yield node
    node.stop()


def test_https_request_verified_against_the_test_ca(https_node: Node, pki: Pki) -> None:
    assert http_scheme(https_node.settings) == "https"
    url = f"https://localhost:{https_node.http_port}"
    with httpx.Client(verify=pki.client_context(with_cert=False)) as client:
        assert client.get(f"{url}/health/live").status_code == 200
        jobs = client.get(
            f"{url}/api/v1/jobs", headers={"Authorization": f"Bearer {https_node.admin_key}"}
        )
        assert jobs.status_code == 200


def test_plain_http_to_the_https_port_fails(https_node: Node) -> None:
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{https_node.http_port}/health/live", timeout=10)


def test_a_client_not_trusting_the_ca_refuses_the_gateway(https_node: Node) -> None:
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"https://localhost:{https_node.http_port}/health/live", timeout=10)


def test_certificate_without_key_stops_the_gateway(node_settings: Settings, pki: Pki) -> None:
    settings = node_settings.model_copy(update={"http_tls_cert": pki.server_cert})
    node = Node(settings, Parts(http=True, dicom=False, in_process_worker=True))
    try:
        with pytest.raises(TLSConfigError, match="MSLESION_HTTP_TLS_KEY"):
            node.start(migrate=False, create_admin_key=False)
    finally:
        node.stop()
