"""A patient's lesion load over time: every analysed study in date order, and a chart of it.

Also the patient's tracked lesions across visits (follow-up reading).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path
from fastapi.responses import Response
from sqlalchemy.orm import Session

from mslesion.api.deps import Authorize, Principal, SessionDep
from mslesion.api.schemas import (
    LO_PATTERN,
    Change,
    LesionLoadOut,
    PatientLesionsOut,
    StudyLoadOut,
    errors,
)
from mslesion.services.reporting.history_chart import ChartPoint, render_lesion_load_chart
from mslesion.services.store.enums import Role
from mslesion.services.store.repositories import history, lesions
from mslesion.services.store.repositories.history import StudyLoad

router = APIRouter(prefix="/api/v1/patients", tags=["patients"])

PatientId = Annotated[
    str,
    Path(
        min_length=1, max_length=64, pattern=LO_PATTERN, description="DICOM Patient ID (0010,0020)"
    ),
]
Reader = Annotated[Principal, Depends(Authorize(Role.READER, audit="read lesion-load"))]


@router.get("/{patient_id}/lesion-load", response_model=LesionLoadOut, responses=errors(404, 422))
def lesion_load(patient_id: PatientId, session: SessionDep, _: Reader) -> LesionLoadOut:
    """Total lesion volume, lesion count and brain volume of each analysed study.

    Studies come oldest first, with the change since the previous and since the first study.
    A study compared with a prior also carries its new and enlarging lesion counts, its MRI
    activity (any new or enlarging lesion; null when the study was not compared) and the
    comparison these came from.
    """
    loads = _loads(session, patient_id)
    return LesionLoadOut(patient_id=patient_id, studies=with_changes(loads))


@router.get(
    "/{patient_id}/lesion-load.png",
    response_class=Response,
    responses={**errors(404, 422), 200: {"content": {"image/png": {}}, "description": "Chart"}},
)
def lesion_load_chart(patient_id: PatientId, session: SessionDep, _: Reader) -> Response:
    """A chart of total lesion volume over study date (no patient identity on it).

    Visits with MRI activity (new or enlarging lesions since their prior) are marked.
    """
    loads = _loads(session, patient_id)
    png = render_lesion_load_chart(
        [ChartPoint(s.study_date, s.lesion_volume_ml, active=bool(s.activity)) for s in loads]
    )
    return Response(png, media_type="image/png")


@router.get("/{patient_id}/lesions", response_model=PatientLesionsOut, responses=errors(404, 422))
def patient_lesions(
    patient_id: PatientId,
    session: SessionDep,
    _: Annotated[Principal, Depends(Authorize(Role.READER, audit="read lesions"))],
) -> PatientLesionsOut:
    """The patient's tracked lesions (``L1``, ``L2``, ...) with each visit's observation.

    Each visit gives the lesion's volume, change category (null: the visit was a comparison's
    baseline), McDonald location and rank in that study's report. Empty until a comparison of
    the patient's studies succeeded.
    """
    _loads(session, patient_id)  # 404 for a patient with no analysed study
    return PatientLesionsOut(
        patient_id=patient_id, lesions=lesions.patient_lesions(session, patient_id)
    )


def _loads(session: Session, patient_id: str) -> list[StudyLoad]:
    loads = history.patient_studies(session, patient_id)
    if not loads:
        raise HTTPException(404, "no analysed study of this patient")
    return loads


def with_changes(loads: list[StudyLoad]) -> list[StudyLoadOut]:
    """Each study with its volume change since the previous and since the first study."""
    out: list[StudyLoadOut] = []
    for i, load in enumerate(loads):
        previous = _change(loads[i - 1], load) if i else None
        first = _change(loads[0], load) if i else None
        out.append(
            StudyLoadOut(
                **load.model_dump(), change_since_previous=previous, change_since_first=first
            )
        )
    return out


def _change(earlier: StudyLoad, later: StudyLoad) -> Change:
    delta = later.lesion_volume_ml - earlier.lesion_volume_ml
    base = earlier.lesion_volume_ml
    return Change(
        volume_ml=round(delta, 3), percent=round(100.0 * delta / base, 1) if base > 0 else None
    )
