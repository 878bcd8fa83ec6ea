"""Job rows for tests that need jobs but no real results."""

from __future__ import annotations

from mslesion.services.store.enums import JobState, Source
from mslesion.services.store.repositories import jobs, studies
from mslesion.services.store.repositories.studies import InstanceRecord
from tests.api.conftest import Gateway


def make_job(gateway: Gateway, study_uid: str = "1.2.3", state: JobState | None = None) -> str:
    """A job row for a study of one (recorded) instance."""
    with gateway.db.session() as session:
        rec = InstanceRecord(
            study_uid=study_uid,
            series_uid=f"{study_uid}.1",
            sop_instance_uid=f"{study_uid}.1.1",
            sop_class_uid="1.2.840.10008.5.1.4.1.1.4",
            path="x.dcm",
            size_bytes=1,
        )
        studies.record_instance(session, rec, Source.STOW, None)
        study = studies.get_study(session, study_uid)
        assert study is not None
        job_id = jobs.create_job(session, study.id, "test").id
        if state is JobState.FAILED:
            jobs.claim(session, job_id, "w1")
            jobs.fail(session, job_id, "no FLAIR series: the study has only T1W")
    return job_id
