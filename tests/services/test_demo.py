"""`mslesion demo` (the README's first command): the whole node on embedded defaults."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import pydicom

from mslesion.demo import run_demo
from mslesion.services.config import Provider, Settings


def test_demo_sends_a_study_and_fetches_every_result_over_http(tmp_path: Path) -> None:
    lines: list[str] = []
    run_demo(Settings(provider=Provider.CPU), tmp_path, echo=lines.append)
    text = "\n".join(lines)
    assert "instances acknowledged" in text
    assert "succeeded" in text and "CPUExecutionProvider" in text
    results = tmp_path / "results"
    seg = hd.seg.Segmentation.from_dataset(pydicom.dcmread(results / "lesions_seg.dcm"))
    assert seg.PatientID == "DEMO0001"
    assert pydicom.dcmread(results / "lesions_sr.dcm").Modality == "SR"
    assert (results / "montage.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert '"lesion_count"' in (results / "report.json").read_text()
    assert "1 study(ies)" in text
