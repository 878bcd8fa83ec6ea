"""Follow-up reading over HTTP: activity in the lesion-load history, tracked lesions,
comparison detail and files, explicit re-analysis; every read audited, keys required."""

from __future__ import annotations

import datetime as dt
import io
import uuid

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from mslesion.services.followup.model import ChangeCategory as C
from mslesion.services.store.enums import ComparisonState, ResultKind, Role
from mslesion.services.store.repositories import audit, comparisons, lesions
from mslesion.services.store.repositories.jobs import ResultRecord
from mslesion.services.store.repositories.lesions import PriorLesion
from tests.api.conftest import Gateway
from tests.corpus.base import mr_dataset, new_uid, part10
from tests.services.store.followup_rows import analysed, change, report, succeeded_comparison

A, B, C3 = "1.9.1", "1.9.2", "1.9.3"


def _two_visits(gateway: Gateway, *, files: bool = False) -> dict[str, str]:
    """P1 with three analysed studies: B compared with A (active), C not compared."""
    db = gateway.db
    _, job_a = analysed(db, "P1", A, dt.date(2020, 1, 1), volume=1.0, count=2)
    _, job_b = analysed(db, "P1", B, dt.date(2021, 1, 1), volume=1.5, count=3)
    _, job_c = analysed(db, "P1", C3, dt.date(2022, 1, 1), volume=1.5, count=3)
    ids, _ = lesions.identities_from_report([(1, "2.25.1"), (2, "2.25.2")], 0, lambda: "")
    followup = report(
        A,
        B,
        [
            change("2.25.1", "L1", C.ENLARGING, 1, [1], volume=0.8),
            change("2.25.2", "L2", C.STABLE, 2, [2], volume=0.3),
            change("2.25.3", "L3", C.NEW, 3, volume=0.4),
        ],
    )
    records = _files(gateway, job_b) if files else []
    cid = succeeded_comparison(
        db, job_a, job_b, followup, ids, {1: PriorLesion(0.5), 2: PriorLesion(0.3)}, records
    )
    return {"a": job_a, "b": job_b, "c": job_c, "comparison": cid}


def _files(gateway: Gateway, job_id: str) -> list[ResultRecord]:
    """A follow-up SEG stand-in, two secondary captures and a JSON report, on disk."""
    folder = gateway.settings.results_dir / job_id / "followup" / "x"
    folder.mkdir(parents=True)
    records = []
    seg_series, sc_series = new_uid(2), new_uid(2)
    for kind, part in ((ResultKind.FOLLOWUP_SEG, 0), (ResultKind.FOLLOWUP_SC, 1),
                       (ResultKind.FOLLOWUP_SC, 2)):  # fmt: skip
        series = sc_series if part else seg_series
        ds = mr_dataset(study_uid=B, series_uid=series, patient_id="P1")
        path = folder / f"{kind.value}_{part}.dcm"
        path.write_bytes(part10(ds))
        records.append(
            ResultRecord(
                kind=kind,
                part=part,
                path=str(path.relative_to(gateway.settings.results_dir)),
                media_type="application/dicom",
                study_uid=B,
                series_uid=series,
                sop_instance_uid=str(ds.SOPInstanceUID),
                sop_class_uid=str(ds.SOPClassUID),
                modality="SEG" if part == 0 else "OT",
                series_number=9101,
            )
        )
    (folder / "followup.json").write_text('{"activity": true}')
    records.append(
        ResultRecord(
            kind=ResultKind.FOLLOWUP_JSON,
            path=str((folder / "followup.json").relative_to(gateway.settings.results_dir)),
            media_type="application/json",
        )
    )
    return records


def _events(gateway: Gateway) -> list[tuple[str, str, int]]:
    with gateway.db.session() as session:
        return [(e.action, e.resource, e.outcome) for e in audit.events(session)]


def test_lesion_load_shows_activity_and_its_comparison(
    client: TestClient, gateway: Gateway
) -> None:
    made = _two_visits(gateway)

    response = client.get("/api/v1/patients/P1/lesion-load", headers=gateway.auth(Role.READER))

    assert response.status_code == 200
    first, second, third = response.json()["studies"]
    assert (first["activity"], first["new_count"], first["comparison"]) == (None, None, None)
    assert (second["activity"], second["new_count"], second["enlarging_count"]) == (True, 1, 1)
    assert second["comparison"] == {
        "id": made["comparison"],
        "prior_study_uid": A,
        "prior_study_date": "2020-01-01",
    }
    assert third["activity"] is None and third["comparison"] is None
    assert _events(gateway)[0] == ("read lesion-load", "/api/v1/patients/P1/lesion-load", 200)


def test_a_stable_visit_has_no_activity(client: TestClient, gateway: Gateway) -> None:
    _, job_a = analysed(gateway.db, "P5", "1.5.1", dt.date(2020, 1, 1))
    _, job_b = analysed(gateway.db, "P5", "1.5.2", dt.date(2021, 1, 1))
    ids, _ = lesions.identities_from_report([(1, "2.25.9")], 0, lambda: "")
    succeeded_comparison(
        gateway.db,
        job_a,
        job_b,
        report("1.5.1", "1.5.2", [change("2.25.9", "L1", C.STABLE, 1, [1])]),
        ids,
        {1: PriorLesion(0.5)},
    )
    body = client.get("/api/v1/patients/P5/lesion-load", headers=gateway.auth(Role.READER)).json()
    assert [s["activity"] for s in body["studies"]] == [None, False]
    assert body["studies"][1]["new_count"] == 0


def test_the_chart_marks_active_visits(client: TestClient, gateway: Gateway) -> None:
    _two_visits(gateway)
    response = client.get("/api/v1/patients/P1/lesion-load.png", headers=gateway.auth(Role.READER))
    assert response.status_code == 200
    pixels = np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"))
    orange = int(np.all(pixels == (0xFF, 0x8C, 0x00), axis=-1).sum())
    assert orange > 20  # the active visit's marker (services/reporting/history_chart.py)


def test_tracked_lesions_across_visits(client: TestClient, gateway: Gateway) -> None:
    made = _two_visits(gateway)

    response = client.get("/api/v1/patients/P1/lesions", headers=gateway.auth(Role.READER))

    assert response.status_code == 200
    body = response.json()
    assert body["patient_id"] == "P1"
    l1, l2, l3 = body["lesions"]
    assert (l1["tracking_id"], l1["tracking_uid"], l1["first_study_uid"]) == ("L1", "2.25.1", A)
    assert [(v["study_uid"], v["category"], v["volume_ml"]) for v in l1["visits"]] == [
        (A, None, 0.5),
        (B, "enlarging", 0.8),
    ]
    assert l1["visits"][1]["comparison_id"] == made["comparison"]
    assert l1["visits"][1]["location"] == "periventricular"
    assert [v["category"] for v in l2["visits"]] == [None, "stable"]
    assert (l3["tracking_id"], l3["first_study_uid"]) == ("L3", B)
    assert [(v["study_uid"], v["category"], v["rank"]) for v in l3["visits"]] == [(B, "new", 3)]
    assert _events(gateway)[0] == ("read lesions", "/api/v1/patients/P1/lesions", 200)


def test_lesions_of_an_unknown_patient_and_of_one_never_compared(
    client: TestClient, gateway: Gateway
) -> None:
    reader = gateway.auth(Role.READER)
    assert client.get("/api/v1/patients/NOBODY/lesions", headers=reader).status_code == 404
    analysed(gateway.db, "P9", "1.7.1", dt.date(2020, 1, 1))
    response = client.get("/api/v1/patients/P9/lesions", headers=reader)
    assert response.status_code == 200 and response.json()["lesions"] == []


def test_comparison_detail_and_files(client: TestClient, gateway: Gateway) -> None:
    made = _two_visits(gateway, files=True)
    cid, reader = made["comparison"], gateway.auth(Role.READER)

    response = client.get(f"/api/v1/comparisons/{cid}", headers=reader)

    assert response.status_code == 200
    body = response.json()
    assert (body["state"], body["trigger"], body["activity"]) == ("succeeded", "auto", True)
    assert (body["prior_study_uid"], body["current_study_uid"]) == (A, B)
    assert (body["prior_job_id"], body["current_job_id"]) == (made["a"], made["b"])
    assert body["counts"]["new"] == 1 and body["counts"]["enlarging"] == 1
    assert body["registration"]["status"] == "registered"
    assert body["error"] is None
    names = [link["name"] for link in body["results"]]
    assert sorted(names) == ["json", "sc_1", "sc_2", "seg"]
    sc_2 = next(link for link in body["results"] if link["name"] == "sc_2")
    assert sc_2["url"].endswith(f"/api/v1/comparisons/{cid}/results/sc_2")

    download = client.get(f"/api/v1/comparisons/{cid}/results/sc_2", headers=reader)
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/dicom"
    assert download.content[128:132] == b"DICM"
    report_json = client.get(f"/api/v1/comparisons/{cid}/results/json", headers=reader)
    assert report_json.json() == {"activity": True}
    missing = client.get(f"/api/v1/comparisons/{cid}/results/png", headers=reader)
    assert missing.status_code == 404 and "no png" in missing.json()["detail"]
    assert client.get(f"/api/v1/comparisons/{cid}/results/log", headers=reader).status_code == 422
    actions = [e[0] for e in _events(gateway)]
    assert actions[:5] == ["read comparison result"] * 4 + ["read comparison"]


def test_follow_up_series_are_served_by_qido_and_wado(client: TestClient, gateway: Gateway) -> None:
    _two_visits(gateway, files=True)
    reader = gateway.auth(Role.READER)
    series = client.get("/dicom-web/series", params={"StudyInstanceUID": B}, headers=reader)
    assert series.status_code == 200
    found = {s["00080060"]["Value"][0]: s for s in series.json()}
    assert set(found) == {"SEG", "OT"}
    instances = client.get("/dicom-web/instances", params={"Modality": "OT"}, headers=reader)
    assert sorted(i["00200013"]["Value"][0] for i in instances.json()) == [1, 2]
    uid = found["OT"]["0020000E"]["Value"][0]
    wado = client.get(f"/dicom-web/studies/{B}/series/{uid}", headers=reader)
    assert wado.status_code == 200 and wado.content.count(b"DICM") == 2


def test_a_comparison_not_finished_has_no_files(client: TestClient, gateway: Gateway) -> None:
    _, job_a = analysed(gateway.db, "P1", A, dt.date(2020, 1, 1))
    _, job_b = analysed(gateway.db, "P1", B, dt.date(2021, 1, 1))
    with gateway.db.session() as session:
        cid = comparisons.plan_after_job(session, job_b, gateway.settings.followup_mode)
    assert cid.comparison_id
    reader = gateway.auth(Role.READER)
    detail = client.get(f"/api/v1/comparisons/{cid.comparison_id}", headers=reader).json()
    assert (detail["state"], detail["activity"], detail["counts"]) == ("queued", None, None)
    response = client.get(f"/api/v1/comparisons/{cid.comparison_id}/results/seg", headers=reader)
    assert response.status_code == 404 and "not succeeded" in response.json()["detail"]
    unknown = client.get(f"/api/v1/comparisons/{uuid.uuid4()}", headers=reader)
    assert unknown.status_code == 404
    assert job_a


def test_request_a_comparison(client: TestClient, gateway: Gateway) -> None:
    _two_visits(gateway)
    admin = gateway.auth(Role.ADMIN)
    body = {"prior_study_uid": A, "current_study_uid": C3}

    response = client.post("/api/v1/comparisons", json=body, headers=admin)

    assert response.status_code == 202, response.text
    created = response.json()
    cid = created["comparison_id"]
    assert created["state"] == "queued" and created["url"].endswith(f"/api/v1/comparisons/{cid}")
    assert gateway.dispatcher.comparisons == [cid]
    with gateway.db.session() as session:
        row = comparisons.get_comparison(session, cid)
        assert row is not None
        assert row.state is ComparisonState.QUEUED and row.enqueued_at is not None
        assert (row.trigger.value, row.created_by) == ("manual", "admin-key")
    assert _events(gateway)[0] == ("request comparison", "/api/v1/comparisons", 202)
    again = client.post("/api/v1/comparisons", json=body, headers=admin)
    assert again.status_code == 409 and "queued or running" in again.json()["detail"]


@pytest.mark.parametrize(
    ("prior", "current", "status", "detail"),
    [
        ("1.9.99", B, 404, "no prior study"),
        (A, A, 422, "itself"),
        (B, A, 422, "swap"),
        (A, "1.8.1", 409, "one patient"),
        (A, "not-a-uid", 422, None),
    ],
)
def test_a_refused_comparison_request(
    client: TestClient, gateway: Gateway, prior: str, current: str, status: int, detail: str | None
) -> None:
    _two_visits(gateway)
    analysed(gateway.db, "P2", "1.8.1", dt.date(2022, 1, 1))
    response = client.post(
        "/api/v1/comparisons",
        json={"prior_study_uid": prior, "current_study_uid": current},
        headers=gateway.auth(Role.ADMIN),
    )
    assert response.status_code == status, response.text
    if detail:
        assert detail in response.json()["detail"]
    assert gateway.dispatcher.comparisons == []


def test_keys_and_roles_are_required(client: TestClient, gateway: Gateway) -> None:
    cid = _two_visits(gateway)["comparison"]
    reads = [
        "/api/v1/patients/P1/lesions",
        f"/api/v1/comparisons/{cid}",
        f"/api/v1/comparisons/{cid}/results/json",
    ]
    for url in reads:
        assert client.get(url).status_code == 401, url
        assert client.get(url, headers=gateway.auth(Role.UPLOADER)).status_code == 403, url
    body = {"prior_study_uid": A, "current_study_uid": C3}
    assert client.post("/api/v1/comparisons", json=body).status_code == 401
    refused = client.post("/api/v1/comparisons", json=body, headers=gateway.auth(Role.READER))
    assert refused.status_code == 403
    assert gateway.dispatcher.comparisons == []
    denied = [e for e in _events(gateway) if e[2] in (401, 403)]
    assert ("denied: read lesions", "/api/v1/patients/P1/lesions", 401) in denied
    assert ("denied: request comparison", "/api/v1/comparisons", 403) in denied
