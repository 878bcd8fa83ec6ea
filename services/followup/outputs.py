"""Write one follow-up comparison's outputs: SEG, SR, secondary capture, JSON and PNG.

Everything is built in a staging folder beside ``out_dir`` and renamed into place at the
end, as the single-study pipeline does: a watcher or a forwarder either sees every output
of the comparison or none of them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from pydicom import Dataset

from mslesion.services.config import Settings
from mslesion.services.errors import InputError
from mslesion.services.followup.analysis import FollowUpAnalysis
from mslesion.services.followup.model import FollowUpReport
from mslesion.services.reporting.followup_montage import followup_pages
from mslesion.services.reporting.followup_sc import build_followup_sc
from mslesion.services.reporting.followup_seg import build_followup_seg
from mslesion.services.reporting.followup_sr import build_followup_sr
from mslesion.services.reporting.history_chart import ChartPoint

FOLLOWUP_OUTPUT_NAMES = {
    "seg": "followup_seg.dcm",
    "sr": "followup_sr.dcm",
    "json": "followup.json",
    "png": "followup.png",
}
"""Fixed outputs; the secondary capture adds ``sc_<n>`` -> ``followup_sc_<n>.dcm`` per page."""

_FOLDER_MODE = 0o755  # mkdtemp makes the staging folder owner-only; readers run as others


def sc_output_name(page: int) -> str:
    """File name of secondary capture page ``page`` (1-based)."""
    return f"followup_sc_{page}.dcm"


def write_followup_outputs(
    out_dir: Path,
    analysis: FollowUpAnalysis,
    current_sources: list[Dataset],
    settings: Settings,
    *,
    prior_sources: Sequence[Dataset] = (),
    history: Sequence[ChartPoint] = (),
) -> dict[str, Path]:
    """Write the follow-up SEG, SR, secondary capture pages, JSON and PNG into ``out_dir``.

    ``current_sources`` are the current FLAIR's datasets in the order of the maps' frame
    axis; ``prior_sources`` (optional) the prior FLAIR's, recorded as evidence by the SR;
    ``history`` the patient's lesion-load timeline for the secondary capture.

    The JSON is ``analysis.report`` with the UIDs of the SEG, the SR and the secondary
    capture series filled in; once everything is in place, ``analysis.report`` is replaced
    by that completed report, so the caller can store the UIDs too.

    Returns:
        Output key -> path: ``seg``, ``sr``, ``json``, ``png``, ``sc_1``, ``sc_2``, ...

    Raises:
        InputError: when ``out_dir`` exists and is not empty, or the inputs do not fit
            together (see the builders); nothing is left in ``out_dir`` then.
    """
    if out_dir.exists() and any(out_dir.iterdir()):
        raise InputError(f"{out_dir}: output folder exists and is not empty")
    report = analysis.report
    name, version = report.model_name, report.model_version
    history = with_current_activity(history, report)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        seg = build_followup_seg(current_sources, analysis.category_map, name, version, settings)
        sr = build_followup_sr(current_sources, seg, report, name, version, settings, prior_sources)
        pages = followup_pages(analysis, history)  # rendered once: the SC and the PNG
        captures = build_followup_sc(current_sources, analysis, history, settings, pages=pages)
        names = dict(FOLLOWUP_OUTPUT_NAMES)
        names.update({f"sc_{n}": sc_output_name(n) for n in range(1, len(captures) + 1)})
        seg.save_as(staging / names["seg"], enforce_file_format=True)
        sr.save_as(staging / names["sr"], enforce_file_format=True)
        for n, capture in enumerate(captures, start=1):
            capture.save_as(staging / names[f"sc_{n}"], enforce_file_format=True)
        pages[0].save(staging / names["png"], format="PNG")  # the montage, as on SC page 1
        completed = report.model_copy(
            update={
                "seg_sop_instance_uid": str(seg.SOPInstanceUID),
                "sr_sop_instance_uid": str(sr.SOPInstanceUID),
                "sc_series_instance_uid": str(captures[0].SeriesInstanceUID),
            }
        )
        (staging / names["json"]).write_text(
            completed.model_dump_json(indent=2) + "\n", encoding="utf-8"
        )
        staging.chmod(_FOLDER_MODE)
        if out_dir.exists():
            out_dir.rmdir()  # empty, checked at the start
        staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    analysis.report = completed
    return {key: out_dir / file_name for key, file_name in names.items()}


def with_current_activity(
    history: Sequence[ChartPoint], report: FollowUpReport
) -> list[ChartPoint]:
    """The timeline with the current visit marked active when this comparison found activity.

    The caller builds the timeline before the comparison, so it cannot know the current
    visit's activity yet; the last point of the current study's date carries it.
    """
    points = list(history)
    current = _study_date(report.current_study_date)
    for i in range(len(points) - 1, -1, -1):
        if points[i].study_date == current:
            points[i] = dataclasses.replace(points[i], active=points[i].active or report.activity)
            break
    return points


def _study_date(value: str | None) -> dt.date | None:
    try:
        return dt.datetime.strptime(value, "%Y%m%d").date() if value else None
    except ValueError:
        return None
