"""``mslesion demo``: the whole node on one machine, driven the way a PACS and a viewer would.

A synthetic brain-sized phantom study is written as DICOM, sent by C-STORE to the node's
listener, analysed by the in-process worker after the quiet period, and its SEG, SR, JSON
report, picture and lesion-load history are fetched through the authorised HTTP API.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pydicom
from pynetdicom import AE

from mslesion.node import Node, Parts
from mslesion.services.config import Settings
from mslesion.services.errors import MSLesionError
from mslesion.services.imaging.units import voxel_volume_ml_from_spacing
from mslesion.services.segmentation.lesions import label_lesions

DEMO_PATIENT = "DEMO0001"
PHANTOM_SHAPE = (160, 192, 160)  # brain-sized, so template registration behaves as on MRI
JOB_TIMEOUT_S = 900.0


def run_demo(base: Settings, out: Path, echo: Callable[[str], None]) -> None:
    """Run the demo into ``out`` (its node/ folder is recreated each time)."""
    study_dir, truth = _write_study(out)
    settings = base.model_copy(
        update={
            "data_dir": out / "node",
            "database_url": None,
            "broker_url": None,
            "http_host": "127.0.0.1",
            "http_port": 0,
            "dicom_host": "127.0.0.1",
            "dicom_port": 0,
            "study_quiet_s": 2.0,
            "allowed_calling_aets": [],
            "forward_destinations": [],
            "bootstrap_admin_key": None,
        }
    )
    shutil.rmtree(settings.data_dir, ignore_errors=True)
    node = Node(settings, Parts())
    node.start(migrate=True, create_admin_key=True)
    try:
        assert node.dicom_port is not None and node.http_port is not None
        echo(
            f"node up: DICOM AE {settings.ae_title}:{node.dicom_port}, "
            f"HTTP http://127.0.0.1:{node.http_port}"
        )
        sent = _c_store(study_dir, settings.ae_title, node.dicom_port)
        echo(f"C-STORE: {sent} instances acknowledged (status 0x0000, durably stored)")
        api = httpx.Client(
            base_url=f"http://127.0.0.1:{node.http_port}",
            headers={"Authorization": f"Bearer {node.admin_key}"},
            timeout=30,
        )
        job = _wait_for_job(api, echo)
        _report(api, job, out, truth, echo)
    finally:
        node.stop()


def _write_study(out: Path) -> tuple[Path, tuple[int, float]]:
    from mslesion.devtools.dicom_writer import StudyInfo, write_study
    from mslesion.devtools.phantom import write_phantom_dataset

    shutil.rmtree(out / "phantom", ignore_errors=True)
    shutil.rmtree(out / "study", ignore_errors=True)
    subject = write_phantom_dataset(out / "phantom", n_subjects=1, shape=PHANTOM_SHAPE, seed=7)[0]
    info = StudyInfo(patient_id=DEMO_PATIENT, patient_name="DEMO^PHANTOM")
    write_study({m: subject / f"{m}.nii.gz" for m in ("FLAIR", "T1", "T2")}, out / "study", info)
    import SimpleITK as sitk

    mask_img = sitk.ReadImage(str(subject / "lesion_mask.nii.gz"))
    mask = sitk.GetArrayFromImage(mask_img) > 0
    count = label_lesions(mask)[1]
    volume_ml = float(mask.sum()) * voxel_volume_ml_from_spacing(mask_img.GetSpacing())
    return out / "study", (count, volume_ml)


def _c_store(study_dir: Path, called_aet: str, port: int) -> int:
    files = sorted(p for p in study_dir.rglob("*") if p.is_file())
    datasets = [pydicom.dcmread(p) for p in files]
    ae = AE(ae_title="DEMO_SCU")
    for sop_class, syntax in {(d.SOPClassUID, d.file_meta.TransferSyntaxUID) for d in datasets}:
        ae.add_requested_context(sop_class, syntax)
    assoc = ae.associate("127.0.0.1", port, ae_title=called_aet)
    if not assoc.is_established:
        raise MSLesionError("the demo could not associate with the node's listener")
    try:
        for ds in datasets:
            status = assoc.send_c_store(ds)
            if getattr(status, "Status", None) != 0x0000:
                raise MSLesionError(f"C-STORE failed with status {status}")
    finally:
        assoc.release()
    return len(datasets)


def _wait_for_job(api: httpx.Client, echo: Callable[[str], None]) -> dict[str, object]:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    last_stage = None
    while time.monotonic() < deadline:
        jobs = api.get("/api/v1/jobs").raise_for_status().json()["items"]
        if jobs:
            job: dict[str, object] = (
                api.get(f"/api/v1/jobs/{jobs[0]['id']}").raise_for_status().json()
            )
            if job["stage"] != last_stage:
                echo(f"job {job['id']}: {job['state']} / {job['stage']}")
                last_stage = job["stage"]
            if job["state"] in ("succeeded", "failed"):
                return job
        time.sleep(1.0)
    raise MSLesionError(f"the demo job did not finish within {JOB_TIMEOUT_S:.0f} s")


def _report(
    api: httpx.Client,
    job: dict[str, object],
    out: Path,
    truth: tuple[int, float],
    echo: Callable[[str], None],
) -> None:
    if job["state"] != "succeeded":
        raise MSLesionError(f"the demo job failed: {job.get('error')}")
    lesions = job["lesions"]
    assert isinstance(lesions, dict)
    echo(
        f"result: {lesions['lesion_count']} lesions, {lesions['lesion_volume_ml']:.2f} ml "
        f"(phantom truth: {truth[0]} lesions, {truth[1]:.2f} ml; the model is trained on "
        f"MRI, the phantom is synthetic) on {job['provider']} with {job['model']}"
    )
    results = out / "results"
    results.mkdir(parents=True, exist_ok=True)
    names = {
        "seg": "lesions_seg.dcm",
        "sr": "lesions_sr.dcm",
        "json": "report.json",
        "png": "montage.png",
    }
    for kind, name in names.items():
        response = api.get(f"/api/v1/jobs/{job['id']}/results/{kind}").raise_for_status()
        (results / name).write_bytes(response.content)
    history = api.get(f"/api/v1/patients/{DEMO_PATIENT}/lesion-load").raise_for_status().json()
    echo(f"lesion-load history of {DEMO_PATIENT}: {len(history['studies'])} study(ies)")
    echo(f"results fetched over HTTP into {results}")
