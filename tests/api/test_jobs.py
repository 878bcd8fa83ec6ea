"""Jobs: list with paging and state filter, detail, malformed ids, re-send of forwards."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient

from mslesion.services.store.enums import ForwardState, JobState, Role
from mslesion.services.store.repositories import audit, forwards
from tests.api.conftest import Gateway
from tests.api.make_jobs import make_job


def test_list_filters_by_state_and_pages(client: TestClient, gateway: Gateway) -> None:
    queued = make_job(gateway, "1.2.3")
    failed = make_job(gateway, "1.2.4", JobState.FAILED)
    headers = gateway.auth(Role.UPLOADER)

    everything = client.get("/api/v1/jobs", headers=headers).json()
    only_failed = client.get("/api/v1/jobs?state=failed", headers=headers).json()
    page = client.get("/api/v1/jobs?limit=1&offset=1", headers=headers).json()

    assert everything["total"] == 2 and {j["id"] for j in everything["items"]} == {queued, failed}
    assert [j["id"] for j in only_failed["items"]] == [failed]
    assert page["total"] == 2 and len(page["items"]) == 1 and page["offset"] == 1
    bad = client.get("/api/v1/jobs?state=exploded", headers=headers)
    assert bad.status_code == 422


def test_detail_of_a_failed_job(client: TestClient, gateway: Gateway) -> None:
    job_id = make_job(gateway, "1.2.5", JobState.FAILED)
    response = client.get(f"/api/v1/jobs/{job_id}", headers=gateway.auth(Role.READER))

    assert response.status_code == 200
    detail = response.json()
    assert detail["state"] == "failed" and detail["attempts"] == 1
    assert detail["error"] == "no FLAIR series: the study has only T1W"
    assert detail["study_uid"] == "1.2.5" and detail["lesions"] is None
    assert detail["results"] == [] and detail["forwards"] == []
    with gateway.db.session() as session:
        (event,) = audit.events(session)
    assert (event.action, event.outcome, event.actor) == ("read job", 200, "reader-key")


def test_malformed_and_unknown_job_ids(client: TestClient, gateway: Gateway) -> None:
    headers = gateway.auth(Role.ADMIN)
    for bad in ("not-a-uuid", "1' OR '1'='1", "%00", "A" * 300, "..%2F..%2Fetc"):
        for url in (f"/api/v1/jobs/{bad}", f"/api/v1/jobs/{bad}/results/seg"):
            response = client.get(url, headers=headers)
            assert response.status_code in (404, 422), (url, response.status_code)
            assert "detail" in response.json()
        assert client.post(f"/api/v1/jobs/{bad}/forward", headers=headers).status_code in (
            404,
            422,
        )
    unknown = client.get(f"/api/v1/jobs/{uuid.uuid4()}", headers=headers)
    assert unknown.status_code == 404 and "no job" in unknown.json()["detail"]


def test_resend_failed_forwards(client: TestClient, gateway: Gateway) -> None:
    job_id = make_job(gateway, "1.2.6")
    with gateway.db.session() as session:
        (fwd,) = forwards.ensure_forwards(session, job_id, ["dicom://PACS@pacs:104"])
        forwards.record_attempt(session, fwd.id, error="association rejected", final=True)
    admin = gateway.auth(Role.ADMIN)

    detail = client.get(f"/api/v1/jobs/{job_id}", headers=admin).json()
    (shown,) = detail["forwards"]
    assert shown["state"] == "failed" and shown["last_error"] == "association rejected"
    assert shown["attempts"] == 1

    response = client.post(f"/api/v1/jobs/{job_id}/forward", headers=admin)
    assert response.status_code == 202 and response.json() == {"job_id": job_id, "resent": 1}
    assert gateway.dispatcher.forwards == [job_id]
    with gateway.db.session() as session:
        assert forwards.forwards_of(session, job_id)[0].state == ForwardState.PENDING
    again = client.post(f"/api/v1/jobs/{job_id}/forward", headers=admin)
    assert again.status_code == 409
    missing = client.post(f"/api/v1/jobs/{uuid.uuid4()}/forward", headers=admin)
    assert missing.status_code == 404
