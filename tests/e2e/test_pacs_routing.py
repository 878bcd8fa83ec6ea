"""A real PACS auto-routes a study to the node and gets the SEG and SR back into that study.

Everything is a real process: Orthanc (Debian package) with the shipped Lua routing rule,
``mslesion listener``, ``mslesion worker`` (Celery on this machine's Redis) and ``mslesion
gateway``, on this machine's PostgreSQL. dcmtk ``storescu`` plays the scanner.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import highdicom as hd
import httpx
import pydicom
import pytest

from tests.conftest import free_port
from tests.dicom_tools import dciodvfy_errors
from tests.e2e.orthanc import NODE_MODALITY, Orthanc, route_to_node_lua, start_orthanc
from tests.e2e.processes import (
    Child,
    lines_containing,
    mslesion_command,
    node_env,
    port_open,
    run_command,
    start_child,
    storescu,
    wait_for,
)
from tests.e2e.studies import Phi, write_time_point
from tests.geometry_corpus import LazyCorpus

pytestmark = pytest.mark.slow

RESULT_TIMEOUT_S = 360.0  # the pipeline takes ~30 s; a loaded CI machine may be much slower
STABLE_AGE_S = 2


@dataclass
class Pacs:
    """The test's Orthanc, the node's processes and what they need to be talked to."""

    orthanc: Orthanc
    children: list[Child]
    gateway_url: str
    api_key: str
    log_dir: Path


@pytest.fixture
def pacs(tmp_path: Path, pg_url: str, redis_url: str) -> Iterator[Pacs]:
    """Orthanc routing to a node made of listener, worker and gateway processes."""
    log_dir = tmp_path / "logs"
    listener_port, http_port = free_port(), free_port()
    orthanc_http, orthanc_dicom = free_port(), free_port()
    env = node_env(
        {
            "MSLESION_DATA_DIR": str(tmp_path / "node"),
            "MSLESION_DATABASE_URL": pg_url,
            "MSLESION_BROKER_URL": redis_url,
            "MSLESION_PROVIDER": "cpu",
            "MSLESION_AE_TITLE": "MSLESION",
            "MSLESION_DICOM_HOST": "127.0.0.1",
            "MSLESION_DICOM_PORT": str(listener_port),
            "MSLESION_HTTP_HOST": "127.0.0.1",
            "MSLESION_HTTP_PORT": str(http_port),
            "MSLESION_ALLOWED_CALLING_AETS": json.dumps(["ORTHANC"]),
            "MSLESION_STUDY_QUIET_S": "2",
            "MSLESION_FORWARD_DESTINATIONS": json.dumps(
                [f"dicom://ORTHANC@127.0.0.1:{orthanc_dicom}"]
            ),
            "MSLESION_FORWARD_RETRY_BACKOFF_S": "1",
            "MSLESION_JOB_RETRY_BACKOFF_S": "1",
        }
    )
    mslesion = mslesion_command()
    run_command([*mslesion, "migrate"], env)
    api_key = run_command([*mslesion, "keys", "create", "e2e-reader", "--role", "reader"], env)
    children: list[Child] = []
    orthanc: Orthanc | None = None
    try:
        for name in ("worker", "listener", "gateway"):
            children.append(start_child(name, [*mslesion, name], env, log_dir))
        wait_for("the listener", lambda: port_open(listener_port), 90, children)
        wait_for("the gateway", lambda: port_open(http_port), 90, children)
        orthanc = start_orthanc(
            tmp_path / "orthanc",
            http_port=orthanc_http,
            dicom_port=orthanc_dicom,
            modalities={NODE_MODALITY: ("MSLESION", "127.0.0.1", listener_port)},
            stable_age_s=STABLE_AGE_S,
            lua=route_to_node_lua(),
        )
        yield Pacs(orthanc, children, f"http://127.0.0.1:{http_port}", api_key.strip(), log_dir)
    finally:
        if orthanc is not None:
            orthanc.stop()
        for child in reversed(children):
            child.stop()


def _series_back(orthanc: Orthanc, study_uid: str) -> list[str] | None:
    modalities = orthanc.modalities_in_study(study_uid)
    return modalities if {"SEG", "SR"} <= set(modalities) else None


def _ended_job(pacs: Pacs, study_uid: str, forwarded: bool = False) -> dict[str, Any] | None:
    """The detail of the study's job once it has ended (and, if asked, sent its results)."""
    for job in _api(pacs, "/api/v1/jobs")["items"]:
        if job["study_uid"] != study_uid or job["state"] not in ("succeeded", "failed"):
            continue
        detail = dict(_api(pacs, f"/api/v1/jobs/{job['id']}"))
        sent = [f["state"] for f in detail["forwards"]] == ["sent"]
        return detail if sent or not forwarded else None
    return None


def _api(pacs: Pacs, path: str) -> Any:
    response = httpx.get(
        pacs.gateway_url + path, headers={"Authorization": f"Bearer {pacs.api_key}"}, timeout=30
    )
    assert response.status_code == 200, response.text
    return response.json()


def _seg_from_orthanc(orthanc: Orthanc, study_uid: str, modality: str = "SEG") -> pydicom.Dataset:
    found = [s for s in orthanc.find_series(study_uid) if s.get("Modality") == modality]
    assert len(found) == 1, found
    (instance,) = orthanc.instances_of_series(found[0]["SeriesInstanceUID"])
    return pydicom.dcmread(pydicom.filebase.DicomBytesIO(orthanc.instance_file(instance)))


def test_pacs_routes_study_and_finds_seg_and_sr_in_it(
    pacs: Pacs, shared_data: Path, tmp_path: Path
) -> None:
    phi = Phi()
    study = write_time_point(shared_data, 1, tmp_path / "study", phi, study_date="20120301")

    started = time.monotonic()
    storescu(tmp_path / "study", pacs.orthanc.aet, pacs.orthanc.dicom_port)
    assert pacs.orthanc.modalities_in_study(study.study_uid) == ["MR", "MR", "MR"]

    modalities = wait_for(
        "the SEG and SR in Orthanc's study",
        lambda: _series_back(pacs.orthanc, study.study_uid),
        RESULT_TIMEOUT_S,
        pacs.children,
        interval_s=2.0,
    )
    elapsed = time.monotonic() - started
    print(f"storescu to SEG+SR in Orthanc: {elapsed:.1f} s")  # shown with -s; not asserted
    assert modalities == ["MR", "MR", "MR", "SEG", "SR"]

    # The SEG is in the patient's own study, readable, and describes the lesions.
    seg = hd.seg.Segmentation.from_dataset(_seg_from_orthanc(pacs.orthanc, study.study_uid))
    assert seg.StudyInstanceUID == study.study_uid
    assert seg.PatientID == phi.patient_id
    assert seg.get_segment_description(1).segment_label == "MS lesion"

    # The gateway reports the job: succeeded, on the CPU provider, results sent to Orthanc.
    page = _api(pacs, "/api/v1/jobs")
    assert [job["study_uid"] for job in page["items"]] == [study.study_uid]
    job = _api(pacs, f"/api/v1/jobs/{page['items'][0]['id']}")
    assert job["state"] == "succeeded", job
    assert job["provider"] and "cpu" in job["provider"].lower(), job["provider"]
    assert job["lesions"]["lesion_count"] > 0
    assert [(f["state"], f["attempts"] >= 1) for f in job["forwards"]] == [("sent", True)]
    assert f"@127.0.0.1:{pacs.orthanc.dicom_port}" in job["forwards"][0]["destination"]

    # The results made the study stable again; the routing rule must not send it back.
    wait_for(
        "Orthanc to see the study stable again",
        lambda: "already has a SEG" in pacs.orthanc.log_path.read_text(errors="replace") or None,
        60,
        pacs.children,
    )
    assert _api(pacs, "/api/v1/jobs")["total"] == 1

    # No patient name, ID, birth date or accession number in any line the node logged.
    leaks = lines_containing([child.log_path for child in pacs.children], phi.needles())
    assert not leaks, "PHI in the node's logs:\n" + "\n".join(leaks[:20])


def test_a_tilted_study_goes_through_the_node_and_a_bad_stack_is_refused_early(
    pacs: Pacs, geometry_corpus: LazyCorpus, tmp_path: Path
) -> None:
    """Issue 11's study: a 3 mm FLAIR tilted 16° along the AC-PC line (Siemens
    t2_tirm_tra_dark-fluid) once failed at the outputs stage and nothing reached the PACS.
    Beside it, a study whose FLAIR leans 45° fails at series selection, before any compute."""
    tilted = geometry_corpus.study("clinical_tilt_16")
    refused = geometry_corpus.study("sheared_45")
    storescu(refused.folder, pacs.orthanc.aet, pacs.orthanc.dicom_port)
    storescu(tilted.folder, pacs.orthanc.aet, pacs.orthanc.dicom_port)
    modalities = wait_for(
        "the SEG and SR of the tilted study in Orthanc",
        lambda: _series_back(pacs.orthanc, tilted.study_uid),
        RESULT_TIMEOUT_S,
        pacs.children,
        interval_s=2.0,
    )
    assert modalities == ["MR", "MR", "SEG", "SR"]
    for modality in ("SEG", "SR"):  # what PACS received is valid DICOM
        path = tmp_path / f"{modality}.dcm"
        _seg_from_orthanc(pacs.orthanc, tilted.study_uid, modality).save_as(path)
        assert dciodvfy_errors(path) == [], modality
    seg = hd.seg.segread(tmp_path / "SEG.dcm")
    hd.sr.srread(tmp_path / "SR.dcm")
    flair = {
        str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID)
        for p in tilted.folder.glob("*FLAIR/*")
    }
    referenced = {
        str(item.ReferencedSOPInstanceUID)
        for series in seg.ReferencedSeriesSequence
        for item in series.ReferencedInstanceSequence
    }
    assert referenced == flair  # the SEG lies on the tilted FLAIR's own frames
    # The node may take the two studies in either order, and records a forward after it.
    done = wait_for(
        "the tilted study's job to end with its results sent",
        lambda: _ended_job(pacs, tilted.study_uid, forwarded=True),
        RESULT_TIMEOUT_S,
        pacs.children,
    )
    failed = wait_for(
        "the refused study's job to end",
        lambda: _ended_job(pacs, refused.study_uid),
        RESULT_TIMEOUT_S,
        pacs.children,
    )
    assert done["state"] == "succeeded", done
    assert done["lesions"]["lesion_count"] > 0
    assert (failed["state"], failed["stage"], failed["attempts"]) == ("failed", "select", 1)
    assert "sheared stack" in failed["error"] and failed["forwards"] == []
    assert pacs.orthanc.modalities_in_study(refused.study_uid) == ["MR", "MR"]


def _sr_tracking_uids(ds: pydicom.Dataset) -> dict[str, str]:
    """Tracking identifier (text) -> tracking UID of every measurement group of an SR."""
    sr = hd.sr.Comprehensive3DSR.from_dataset(ds)
    groups = [
        *sr.content.get_volumetric_roi_measurement_groups(),
        *sr.content.get_planar_roi_measurement_groups(),
        *sr.content.get_image_measurement_groups(),
    ]
    return {str(g.tracking_identifier): str(g.tracking_uid) for g in groups if g.tracking_uid}


def _followup_back(orthanc: Orthanc, study_uid: str) -> list[str] | None:
    modalities = orthanc.modalities_in_study(study_uid)
    # The single-study SEG + SR, then the follow-up SEG + SR and secondary capture.
    return modalities if modalities.count("SEG") == 2 and "OT" in modalities else None


def _instances(orthanc: Orthanc, study_uid: str, modality: str) -> list[pydicom.Dataset]:
    out = []
    for series in orthanc.find_series(study_uid):
        if series.get("Modality") != modality:
            continue
        for instance in orthanc.instances_of_series(series["SeriesInstanceUID"]):
            out.append(
                pydicom.dcmread(pydicom.filebase.DicomBytesIO(orthanc.instance_file(instance)))
            )
    return out


def test_a_follow_up_study_comes_back_with_change_categories_and_the_same_lesion_uids(
    pacs: Pacs, shared_data: Path, tmp_path: Path
) -> None:
    """Issue 10 end to end: two visits of one patient sent by C-STORE in date order."""
    phi = Phi()
    first = write_time_point(shared_data, 1, tmp_path / "visit1", phi, study_date="20100301")
    storescu(tmp_path / "visit1", pacs.orthanc.aet, pacs.orthanc.dicom_port)
    wait_for(
        "the first visit's SEG and SR in Orthanc",
        lambda: _series_back(pacs.orthanc, first.study_uid),
        RESULT_TIMEOUT_S,
        pacs.children,
        interval_s=2.0,
    )
    (first_sr,) = _instances(pacs.orthanc, first.study_uid, "SR")
    first_uids = set(_sr_tracking_uids(first_sr).values())

    second = write_time_point(shared_data, 2, tmp_path / "visit2", phi, study_date="20110301")
    storescu(tmp_path / "visit2", pacs.orthanc.aet, pacs.orthanc.dicom_port)
    modalities = wait_for(
        "the follow-up SEG, SR and secondary capture in Orthanc",
        lambda: _followup_back(pacs.orthanc, second.study_uid),
        RESULT_TIMEOUT_S * 1.5,
        pacs.children,
        interval_s=2.0,
    )
    assert modalities.count("SR") == 2

    # The follow-up SEG: one segment per change category, on the second visit's FLAIR.
    segs = [
        hd.seg.Segmentation.from_dataset(ds)
        for ds in _instances(pacs.orthanc, second.study_uid, "SEG")
    ]
    (change,) = [s for s in segs if s.number_of_segments == 4]
    labels = [change.get_segment_description(n).segment_label for n in range(1, 5)]
    assert [label.split()[0] for label in labels] == ["New", "Enlarging", "Stable", "Shrinking"]
    assert change.StudyInstanceUID == second.study_uid

    # The follow-up SR reuses the first visit's tracking UIDs for the lesions seen then.
    followup_uids = [
        set(_sr_tracking_uids(ds).values())
        for ds in _instances(pacs.orthanc, second.study_uid, "SR")
    ]
    reused = max(len(uids & first_uids) for uids in followup_uids)
    assert reused >= 3, f"only {reused} lesion UIDs of the first visit reused"

    # The lesion-load history shows the activity and which comparison it came from.
    history = _api(pacs, f"/api/v1/patients/{phi.patient_id}/lesion-load")
    by_uid = {s["study_uid"]: s for s in history["studies"]}
    assert by_uid[first.study_uid]["activity"] is None  # nothing earlier to compare with
    later = by_uid[second.study_uid]
    assert later["activity"] is True  # visit 2 has new lesions (the reference marks 3.5 ml)
    assert later["new_count"] >= 1
    assert later["comparison"]["prior_study_uid"] == first.study_uid
    lesions = _api(pacs, f"/api/v1/patients/{phi.patient_id}/lesions")["lesions"]
    assert any(len(lesion["visits"]) == 2 for lesion in lesions)

    leaks = lines_containing([child.log_path for child in pacs.children], phi.needles())
    assert not leaks, "PHI in the node's logs:\n" + "\n".join(leaks[:20])
