"""Real result rows for gateway tests: a phantom study, segmented by the real pipeline, and
recorded as a succeeded job the way a worker records it.

``outcome_of`` turns a :class:`services.pipeline.SegmentResult` into the
:class:`JobOutcome` that ``repositories.jobs.succeed`` stores; a worker's runner does the
same after copying the files into the job's result folder.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pydicom

from mslesion.devtools.dicom_writer import StudyInfo, write_study
from mslesion.devtools.phantom import make_phantom, write_phantom
from mslesion.services.config import Provider, Settings, get_settings
from mslesion.services.ingest import read_header, store_instance
from mslesion.services.pipeline import SegmentResult, segment_study
from mslesion.services.segmentation.catalogue import ModelSet
from mslesion.services.store.database import Database
from mslesion.services.store.enums import RESULT_MEDIA_TYPES, ResultKind, Source
from mslesion.services.store.filestore import job_result_dir
from mslesion.services.store.repositories import jobs, studies
from mslesion.services.store.repositories.jobs import JobOutcome, ResultRecord

# A phantom near adult head size: registration to the MNI template needs plausible scaling.
PHANTOM_SHAPE = (160, 192, 160)
PATIENT_ID = "PHANTOM01"
MEDIA_TYPES = RESULT_MEDIA_TYPES


@dataclass(frozen=True)
class PhantomRun:
    """The phantom's DICOM study folder and what the pipeline made of it."""

    study_dir: Path
    result: SegmentResult
    model_name: str
    provider: str


def run_phantom(workdir: Path, study_date: str = "20230415") -> PhantomRun:
    """Write a phantom DICOM study and segment it on the CPU with the shipped model."""
    nifti = write_phantom(make_phantom(shape=PHANTOM_SHAPE, seed=3), workdir / "nifti")
    study_dir = workdir / "dicom"
    write_study(
        {"FLAIR": nifti["FLAIR"], "T1W": nifti["T1"], "T2W": nifti["T2"]},
        study_dir,
        StudyInfo(patient_id=PATIENT_ID, patient_name="PHANTOM^ONE", study_date=study_date),
    )
    settings = get_settings()
    models = ModelSet.from_settings(settings.model_copy(update={"provider": Provider.CPU}))
    result = segment_study(study_dir, workdir / "result", models, settings)
    report = result.report
    return PhantomRun(
        study_dir, result, f"{report.model_name} {report.model_version}", result.provider
    )


def outcome_of(
    result: SegmentResult, job_dir: Path, results_root: Path, provider: str, model: str
) -> JobOutcome:
    """The outcome to store for a pipeline result whose files now lie in ``job_dir``."""
    records = []
    for name, path in result.files.items():
        kind = ResultKind(name)
        rec = ResultRecord(
            kind=kind,
            path=str((job_dir / path.name).relative_to(results_root)),
            media_type=MEDIA_TYPES[kind],
        )
        if kind in (ResultKind.SEG, ResultKind.SR):
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            rec = rec.model_copy(
                update={
                    "study_uid": str(ds.StudyInstanceUID),
                    "series_uid": str(ds.SeriesInstanceUID),
                    "sop_instance_uid": str(ds.SOPInstanceUID),
                    "sop_class_uid": str(ds.SOPClassUID),
                    "modality": str(ds.Modality),
                    "series_number": int(ds.SeriesNumber),
                    "series_description": str(ds.get("SeriesDescription", "")) or None,
                }
            )
        records.append(rec)
    report = result.report
    return JobOutcome(
        timings_s=result.timings_s,
        series=[
            {"role": role, **used.model_dump(mode="json")} for role, used in report.series.items()
        ],
        provider=provider,
        model=model,
        lesion_count=report.lesion_count,
        lesion_volume_ml=report.total_lesion_volume_ml,
        brain_volume_ml=report.brain_volume_ml,
        results=records,
    )


def record_phantom_job(db: Database, settings: Settings, run: PhantomRun) -> str:
    """Make ``run`` a succeeded job of this node: one source instance stored, the job
    created, claimed and succeeded, its files copied under the results folder."""
    first = sorted(next(run.study_dir.iterdir()).iterdir())[0]
    data = first.read_bytes()
    store_instance(db, settings.spool_dir, read_header(data), data, Source.STOW, None)
    study_uid = run.result.report.study_instance_uid
    with db.session() as session:
        study = studies.get_study(session, study_uid)
        assert study is not None
        job_id = jobs.create_job(session, study.id, "test").id
        jobs.claim(session, job_id, "test-worker")
    job_dir = job_result_dir(settings.results_dir, job_id)
    job_dir.mkdir(parents=True)
    for path in run.result.files.values():
        shutil.copy2(path, job_dir / path.name)
    outcome = outcome_of(run.result, job_dir, settings.results_dir, run.provider, run.model_name)
    with db.session() as session:
        assert jobs.succeed(session, job_id, outcome)
    return job_id
