"""Lesion-load history: studies in date order with the change since previous and first."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from mslesion.services.store.enums import Role, Source
from mslesion.services.store.repositories import audit, jobs, studies
from mslesion.services.store.repositories.jobs import JobOutcome
from mslesion.services.store.repositories.studies import InstanceRecord
from tests.api.conftest import Gateway


def analysed_study(
    gateway: Gateway, patient: str, uid: str, date: dt.date, volume: float, count: int
) -> str:
    """A study of ``patient`` with a succeeded job that measured ``volume`` ml."""
    with gateway.db.session() as session:
        studies.record_instance(
            session,
            InstanceRecord(
                study_uid=uid,
                series_uid=f"{uid}.1",
                sop_instance_uid=f"{uid}.1.1",
                sop_class_uid="1.2.840.10008.5.1.4.1.1.4",
                patient_id=patient,
                study_date=date,
                path="x.dcm",
                size_bytes=1,
            ),
            Source.DIMSE,
            "PACS",
        )
        study = studies.get_study(session, uid)
        assert study is not None
        job_id = jobs.create_job(session, study.id, "PACS").id
        jobs.claim(session, job_id, "w")
        jobs.succeed(
            session,
            job_id,
            JobOutcome(
                timings_s={},
                series=[],
                provider="CPUExecutionProvider",
                model="m 1",
                lesion_count=count,
                lesion_volume_ml=volume,
                brain_volume_ml=1200.0,
                results=[],
            ),
        )
    return job_id


def test_two_studies_in_date_order_with_changes(client: TestClient, gateway: Gateway) -> None:
    # Analysed in the reverse order of their dates: the answer is by study date.
    later = analysed_study(gateway, "P01", "1.2.20", dt.date(2014, 3, 1), 6.0, 9)
    earlier = analysed_study(gateway, "P01", "1.2.10", dt.date(2012, 3, 1), 4.0, 7)
    analysed_study(gateway, "P02", "1.2.30", dt.date(2013, 1, 1), 50.0, 1)

    response = client.get("/api/v1/patients/P01/lesion-load", headers=gateway.auth(Role.READER))

    assert response.status_code == 200
    body = response.json()
    first, second = body["studies"]
    assert body["patient_id"] == "P01"
    assert [first["job_id"], second["job_id"]] == [earlier, later]
    assert [first["study_date"], second["study_date"]] == ["2012-03-01", "2014-03-01"]
    assert first["change_since_previous"] is None and first["change_since_first"] is None
    assert second["change_since_previous"] == {"volume_ml": 2.0, "percent": 50.0}
    assert second["change_since_first"] == {"volume_ml": 2.0, "percent": 50.0}
    assert (second["lesion_count"], second["brain_volume_ml"]) == (9, 1200.0)


def test_three_studies_change_since_previous_and_first(
    client: TestClient, gateway: Gateway
) -> None:
    analysed_study(gateway, "P03", "1.3.1", dt.date(2010, 1, 1), 0.0, 0)
    analysed_study(gateway, "P03", "1.3.2", dt.date(2011, 1, 1), 2.0, 2)
    analysed_study(gateway, "P03", "1.3.3", dt.date(2012, 1, 1), 1.0, 1)

    body = client.get("/api/v1/patients/P03/lesion-load", headers=gateway.auth(Role.READER)).json()
    third = body["studies"][2]
    assert body["studies"][1]["change_since_previous"] == {"volume_ml": 2.0, "percent": None}
    assert third["change_since_previous"] == {"volume_ml": -1.0, "percent": -50.0}
    assert third["change_since_first"] == {"volume_ml": 1.0, "percent": None}


def test_chart_and_audit(client: TestClient, gateway: Gateway) -> None:
    analysed_study(gateway, "P04", "1.4.1", dt.date(2015, 5, 1), 3.0, 2)
    analysed_study(gateway, "P04", "1.4.2", dt.date(2016, 5, 1), 3.5, 3)
    response = client.get("/api/v1/patients/P04/lesion-load.png", headers=gateway.auth(Role.READER))

    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(response.content)).size == (800, 480)
    with gateway.db.session() as session:
        (event,) = audit.events(session)
    assert (event.action, event.resource, event.outcome) == (
        "read lesion-load",
        "/api/v1/patients/P04/lesion-load.png",
        200,
    )


@pytest.mark.parametrize("suffix", ["lesion-load", "lesion-load.png"])
def test_unknown_patient_is_404(client: TestClient, gateway: Gateway, suffix: str) -> None:
    response = client.get(f"/api/v1/patients/NOBODY/{suffix}", headers=gateway.auth(Role.READER))
    assert response.status_code == 404 and response.json()["detail"]
    bad = client.get(f"/api/v1/patients/A%5CB/{suffix}", headers=gateway.auth(Role.READER))
    assert bad.status_code == 422
