"""Follow-up comparisons on the real PostgreSQL: planning rules, the comparison state machine,
persistent lesion identities across visits, scoped results and forwards, lesion-load history."""

from __future__ import annotations

import datetime as dt

import pytest

from mslesion.services.config import Settings
from mslesion.services.errors import ConflictError, InputError
from mslesion.services.followup.model import ChangeCategory as C
from mslesion.services.followup.model import FollowUpMode
from mslesion.services.store.database import Database
from mslesion.services.store.enums import (
    ComparisonState,
    ComparisonTrigger,
    ForwardState,
    ResultKind,
)
from mslesion.services.store.repositories import (
    comparisons,
    forwards,
    history,
    jobs,
    lesions,
    results,
    studies,
)
from mslesion.services.store.repositories.comparisons import ComparisonOutcome
from mslesion.services.store.repositories.jobs import ResultRecord
from mslesion.services.store.repositories.lesions import (
    Identity,
    PriorLesion,
    ReadIdentity,
    Reading,
)
from mslesion.services.store.tables import Comparison
from tests.services.store.followup_rows import analysed, change, report, succeeded_comparison

D2020, D2021, D2022 = dt.date(2020, 1, 10), dt.date(2021, 1, 10), dt.date(2022, 1, 10)


def plan(db: Database, job_id: str, mode: FollowUpMode) -> comparisons.Plan:
    with db.session() as session:
        return comparisons.plan_after_job(session, job_id, mode)


def row(db: Database, cid: str) -> Comparison:
    with db.session() as session:
        found = comparisons.get_comparison(session, cid)
    assert found is not None
    return found


def count_comparisons(db: Database) -> int:
    with db.session() as session:
        return len(comparisons.comparisons_of_patient(session, "P1"))


# --- planning ---------------------------------------------------------------------------------


def test_latest_prior_baseline_and_off(node_db: Database) -> None:
    first, first_job = analysed(node_db, "P1", "1.1", D2020)
    second, second_job = analysed(node_db, "P1", "1.2", D2021)
    current, current_job = analysed(node_db, "P1", "1.3", D2022)

    assert plan(node_db, current_job, FollowUpMode.OFF).comparison_id is None
    latest = plan(node_db, current_job, FollowUpMode.LATEST_PRIOR)
    baseline = plan(node_db, current_job, FollowUpMode.BASELINE)

    assert latest.created and baseline.created
    assert latest.comparison_id and baseline.comparison_id
    a, b = row(node_db, latest.comparison_id), row(node_db, baseline.comparison_id)
    assert (a.prior_study_id, a.prior_job_id, a.current_study_id) == (second, second_job, current)
    assert (b.prior_study_id, b.prior_job_id) == (first, first_job)
    assert a.state is ComparisonState.QUEUED and a.trigger is ComparisonTrigger.AUTO
    assert a.current_job_id == current_job and a.patient_id == "P1"
    # planning again is idempotent
    again = plan(node_db, current_job, FollowUpMode.LATEST_PRIOR)
    assert (again.comparison_id, again.created) == (latest.comparison_id, False)
    with node_db.session() as session:
        queued = comparisons.queued_for_job(session, current_job)
    assert set(queued) == {latest.comparison_id, baseline.comparison_id}


def test_the_newest_analysis_of_the_prior_is_used(node_db: Database) -> None:
    analysed(node_db, "P1", "1.1", D2020)
    with node_db.session() as session:
        study = studies.get_study(session, "1.1")
        assert study is not None
        newer = jobs.create_job(session, study.id, "admin").id
        jobs.claim(session, newer, "w")
        jobs.succeed(
            session,
            newer,
            jobs.JobOutcome(
                timings_s={},
                series=[],
                provider="cpu",
                model="m 1",
                lesion_count=1,
                lesion_volume_ml=1.0,
                brain_volume_ml=None,
                results=[],
            ),
        )
    _, current_job = analysed(node_db, "P1", "1.2", D2021)
    planned = plan(node_db, current_job, FollowUpMode.LATEST_PRIOR)
    assert planned.comparison_id
    assert row(node_db, planned.comparison_id).prior_job_id == newer


@pytest.mark.parametrize(
    ("prior_issuer", "current_issuer", "compared"),
    [
        ("HOSP_A", "HOSP_A", True),
        (None, None, True),
        ("HOSP_A", "HOSP_B", False),
        (None, "HOSP_A", False),
    ],
)
def test_the_issuer_must_match(
    node_db: Database, prior_issuer: str | None, current_issuer: str | None, compared: bool
) -> None:
    analysed(node_db, "P1", "1.1", D2020, issuer=prior_issuer)
    _, current_job = analysed(node_db, "P1", "1.2", D2021, issuer=current_issuer)
    planned = plan(node_db, current_job, FollowUpMode.LATEST_PRIOR)
    assert (planned.comparison_id is not None) is compared
    if not compared:
        assert planned.reason == "no earlier analysed study of this patient"


def test_another_patient_is_never_a_prior(node_db: Database) -> None:
    analysed(node_db, "P2", "1.1", D2020)
    _, current_job = analysed(node_db, "P1", "1.2", D2021)
    assert plan(node_db, current_job, FollowUpMode.LATEST_PRIOR).comparison_id is None


def test_no_prior_no_comparison(node_db: Database) -> None:
    _, job = analysed(node_db, "P1", "1.1", D2020)
    planned = plan(node_db, job, FollowUpMode.LATEST_PRIOR)
    assert planned.comparison_id is None
    assert planned.reason == "no earlier analysed study of this patient"
    assert count_comparisons(node_db) == 0


def test_an_older_study_arriving_later_does_not_rewrite_history(node_db: Database) -> None:
    """2020 and 2022 were compared; a 2021 study analysed afterwards gets its own comparison
    with 2020, and the 2022 study is not compared again (nor with the 2021 one)."""
    _, job_2020 = analysed(node_db, "P1", "1.1", D2020)
    _, job_2022 = analysed(node_db, "P1", "1.3", D2022)
    first = plan(node_db, job_2022, FollowUpMode.LATEST_PRIOR)
    assert first.comparison_id and row(node_db, first.comparison_id).prior_job_id == job_2020

    s_2021, job_2021 = analysed(node_db, "P1", "1.2", D2021)
    late = plan(node_db, job_2021, FollowUpMode.LATEST_PRIOR)

    assert late.comparison_id
    assert row(node_db, late.comparison_id).prior_job_id == job_2020
    assert row(node_db, late.comparison_id).current_study_id == s_2021
    with node_db.session() as session:
        assert comparisons.queued_for_job(session, job_2022) == [first.comparison_id]
    assert count_comparisons(node_db) == 2


def test_an_oldest_study_arriving_last_creates_no_comparison(node_db: Database) -> None:
    _, job_2022 = analysed(node_db, "P1", "1.3", D2022)
    assert plan(node_db, job_2022, FollowUpMode.LATEST_PRIOR).comparison_id is None
    _, job_2020 = analysed(node_db, "P1", "1.1", D2020)
    assert plan(node_db, job_2020, FollowUpMode.LATEST_PRIOR).comparison_id is None
    assert count_comparisons(node_db) == 0


def test_unknown_and_equal_dates_are_never_guessed(node_db: Database) -> None:
    analysed(node_db, "P1", "1.0", None)  # an undated study is never a prior
    analysed(node_db, "P1", "1.5", D2021)  # nor one of the same date
    _, undated_job = analysed(node_db, "P1", "1.9", None)
    _, current_job = analysed(node_db, "P1", "1.2", D2021)

    undated = plan(node_db, undated_job, FollowUpMode.LATEST_PRIOR)
    assert undated.comparison_id is None and "no StudyDate" in undated.reason
    assert plan(node_db, current_job, FollowUpMode.LATEST_PRIOR).comparison_id is None

    # two candidates on the prior's date: none is chosen (never by UID)
    analysed(node_db, "P1", "1.7", D2020)
    analysed(node_db, "P1", "1.8", D2020)
    _, later_job = analysed(node_db, "P1", "1.4", D2022)
    tie = plan(node_db, later_job, FollowUpMode.BASELINE)
    assert tie.comparison_id is None and "share the prior's date" in tie.reason
    assert count_comparisons(node_db) == 0


def test_a_manual_comparison_is_checked(node_db: Database) -> None:
    analysed(node_db, "P1", "1.1", D2020)
    analysed(node_db, "P1", "1.2", D2021)
    analysed(node_db, "P2", "1.9", D2021)
    with node_db.session() as session:

        def get(uid: str) -> studies.Study:
            found = studies.get_study(session, uid)
            assert found is not None
            return found

        made = comparisons.request_comparison(session, get("1.1"), get("1.2"), "admin-key")
        assert made.trigger is ComparisonTrigger.MANUAL and made.created_by == "admin-key"
        with pytest.raises(ConflictError, match="queued or running"):
            comparisons.request_comparison(session, get("1.1"), get("1.2"), "admin-key")
        with pytest.raises(ConflictError, match="one patient"):
            comparisons.request_comparison(session, get("1.1"), get("1.9"), "admin-key")
        with pytest.raises(InputError, match="itself"):
            comparisons.request_comparison(session, get("1.1"), get("1.1"), "admin-key")
        with pytest.raises(InputError, match="swap"):
            comparisons.request_comparison(session, get("1.2"), get("1.1"), "admin-key")


# --- the state machine, results and forwards ----------------------------------------------------


def test_claim_succeed_fail_and_scoped_results(node_db: Database) -> None:
    _, prior_job = analysed(node_db, "P1", "1.1", D2020)
    _, current_job = analysed(node_db, "P1", "1.2", D2021)
    cid = plan(node_db, current_job, FollowUpMode.LATEST_PRIOR).comparison_id
    assert cid
    seg = ResultRecord(
        kind=ResultKind.FOLLOWUP_SEG,
        path=f"{current_job}/followup/{cid}/seg.dcm",
        media_type="application/dicom",
        study_uid="1.2",
        series_uid="1.2.99",
        sop_instance_uid="1.2.99.1",
        modality="SEG",
    )
    sc = [
        ResultRecord(
            kind=ResultKind.FOLLOWUP_SC,
            part=n,
            path=f"{current_job}/followup/{cid}/sc_{n}.dcm",
            media_type="application/dicom",
            study_uid="1.2",
            series_uid="1.2.98",
            sop_instance_uid=f"1.2.98.{n}",
            modality="OT",
        )
        for n in (1, 2)
    ]
    followup = report("1.1", "1.2", [change("u1", "L1", C.NEW, 1)])
    outcome = ComparisonOutcome(
        registration=followup.registration.model_dump(mode="json"),
        counts={c.value: n for c, n in followup.counts.items()},
        activity=followup.activity,
        timings_s={},
        results=[seg, *sc],
    )
    with node_db.session() as session:
        assert comparisons.claim(session, cid, "w1") is not None
        assert comparisons.claim(session, cid, "w2") is None  # a duplicate message
        assert not comparisons.succeed(session, cid, outcome, worker="w2")  # not its holder
        # not yet succeeded: its series are not served
        assert results.dicom_results(session, study_uid="1.2") == []
        assert comparisons.succeed(session, cid, outcome, worker="w1")
    found = row(node_db, cid)
    assert found.state is ComparisonState.SUCCEEDED and found.activity is True
    assert found.counts == {c.value: (1 if c is C.NEW else 0) for c in C}
    with node_db.session() as session:
        served = results.dicom_results(session, study_uid="1.2")
        assert {r.sop_instance_uid for r in served} == {"1.2.99.1", "1.2.98.1", "1.2.98.2"}
        assert all(r.job_id == current_job and r.scope == cid for r in served)
        job = jobs.get_job(session, current_job)
        assert job is not None and job.results == []  # the job's own results are unchanged
        assert results.job_dicom_files(session, current_job) == []
        assert [r.part for r in results.comparison_dicom_files(session, cid) if r.part] == [1, 2]
        sc_2 = results.comparison_file(session, cid, ResultKind.FOLLOWUP_SC, 2)
        assert sc_2 is not None and sc_2.sop_instance_uid == "1.2.98.2"
        # a finished comparison is never claimed again
        assert comparisons.claim(session, cid, "w3", lease_s=0.0) is None
    assert found.prior_job_id == prior_job


def test_a_failed_registration_is_recorded(node_db: Database) -> None:
    analysed(node_db, "P1", "1.1", D2020)
    _, current_job = analysed(node_db, "P1", "1.2", D2021)
    cid = plan(node_db, current_job, FollowUpMode.LATEST_PRIOR).comparison_id
    assert cid
    with node_db.session() as session:
        comparisons.claim(session, cid, "w")
        comparisons.fail(
            session,
            cid,
            "the prior could not be registered: brain overlap 0.31",
            registration={"status": "failed", "reason": "brain overlap 0.31"},
            worker="w",
        )
    found = row(node_db, cid)
    assert found.state is ComparisonState.FAILED and found.finished_at is not None
    assert found.registration == {"status": "failed", "reason": "brain overlap 0.31"}
    assert found.error and "registered" in found.error
    with node_db.session() as session:
        assert history.patient_studies(session, "P1")[1].activity is None


def test_study_and_comparison_forwards_are_separate(node_db: Database) -> None:
    analysed(node_db, "P1", "1.1", D2020)
    _, current_job = analysed(node_db, "P1", "1.2", D2021)
    cid = plan(node_db, current_job, FollowUpMode.LATEST_PRIOR).comparison_id
    assert cid
    dest = ["dicom://PACS@127.0.0.1:104"]
    with node_db.session() as session:
        (own,) = forwards.ensure_forwards(session, current_job, dest)
        (theirs,) = forwards.ensure_forwards(session, current_job, dest, comparison_id=cid)
        forwards.record_attempt(session, own.id, error=None, final=False)
        forwards.record_attempt(session, theirs.id, error="refused", final=True)
        assert own.id != theirs.id
        assert [f.id for f in forwards.forwards_of(session, current_job)] == [own.id]
        assert [f.id for f in forwards.comparison_forwards(session, cid)] == [theirs.id]
        assert forwards.reset_failed(session, current_job) == 0  # only the job's own
        again = forwards.ensure_forwards(session, current_job, dest, comparison_id=cid)
        assert [f.id for f in again] == [theirs.id]
    with node_db.session() as session:
        (fwd,) = forwards.comparison_forwards(session, cid)
        assert fwd.state is ForwardState.FAILED and fwd.comparison_id == cid
        session.execute(
            fwd.__table__.update().where(fwd.__table__.c.id == fwd.id).values(state="pending")
        )
    with node_db.session() as session:
        assert forwards.stale_pending_comparisons(session, 0.0, 0.0) == [cid]
        assert forwards.stale_pending(session, 0.0, 0.0) == []


def test_stale_and_lost_comparisons(node_db: Database) -> None:
    analysed(node_db, "P1", "1.1", D2020)
    _, current_job = analysed(node_db, "P1", "1.2", D2021)
    cid = plan(node_db, current_job, FollowUpMode.LATEST_PRIOR).comparison_id
    with node_db.session() as session:
        assert comparisons.stale_queued(session, 0.0) == [cid]
        comparisons.mark_enqueued(session, cid or "")
        assert comparisons.stale_queued(session, 3600.0) == []
        comparisons.claim(session, cid or "", "w")
        assert comparisons.lost_running(session, 3600.0, 0.0) == []
        assert comparisons.lost_running(session, 0.0, 0.0) == [cid]


# --- persistent identities ----------------------------------------------------------------------


def test_identities_from_a_report() -> None:
    made = iter(["9.1", "9.2"])
    fresh, nxt = lesions.identities_from_report([(2, "u2"), (1, None)], 0, lambda: next(made))
    assert fresh == {1: Identity("9.1", "L1"), 2: Identity("u2", "L2")} and nxt == 3
    later, nxt = lesions.identities_from_report([(1, "u1"), (2, "u2")], 5, lambda: "x")
    assert later == {1: Identity("u1", "L6"), 2: Identity("u2", "L7")} and nxt == 8


def test_identities_are_carried_across_three_visits(node_db: Database) -> None:
    """Visit A (2 lesions), B (both kept, one new), C (one disappears, one new): each lesion
    keeps its UID and short name; C's prior identities come from B's comparison."""
    s_a, job_a = analysed(node_db, "P1", "1.1", D2020)
    s_b, job_b = analysed(node_db, "P1", "1.2", D2021)
    s_c, job_c = analysed(node_db, "P1", "1.3", D2022)
    with node_db.session() as session:
        assert lesions.prior_identities(session, s_a, job_a) == {}
        assert lesions.max_lesion_number(session, "P1", None) == 0
    ids_a, next_a = lesions.identities_from_report([(1, "ua1"), (2, "ua2")], 0, lambda: "")
    assert next_a == 3
    visit_b = report(
        "1.1",
        "1.2",
        [
            change("ua1", "L1", C.ENLARGING, 1, [1], volume=0.9),
            change("ua2", "L2", C.STABLE, 3, [2], volume=0.3),
            change("ub3", "L3", C.NEW, 2, volume=0.4),
        ],
    )
    prior_a = {1: PriorLesion(0.6, (1.0, 1.0, 1.0)), 2: PriorLesion(0.3)}
    cmp_b = succeeded_comparison(node_db, job_a, job_b, visit_b, ids_a, prior_a)

    with node_db.session() as session:
        ids_b = lesions.prior_identities(session, s_b, job_b)
        assert lesions.max_lesion_number(session, "P1", None) == 3
        # the baseline observations of A serve a later comparison against A too
        assert lesions.prior_identities(session, s_a, job_a) == ids_a
    assert ids_b == {1: Identity("ua1", "L1"), 3: Identity("ua2", "L2"), 2: Identity("ub3", "L3")}

    visit_c = report(
        "1.2",
        "1.3",
        [
            change("ua1", "L1", C.STABLE, 1, [1], volume=0.9),
            change("ua2", "L2", C.DISAPPEARED, None, [3]),
            change("ub3", "L3", C.SHRINKING, 2, [2], volume=0.2),
            change("uc4", "L4", C.NEW, 3, volume=0.1),
        ],
    )
    prior_b = {1: PriorLesion(0.9), 2: PriorLesion(0.4), 3: PriorLesion(0.3)}
    cmp_c = succeeded_comparison(node_db, job_b, job_c, visit_c, ids_b, prior_b)

    with node_db.session() as session:
        assert lesions.prior_identities(session, s_c, job_c) == {
            1: Identity("ua1", "L1"),
            2: Identity("ub3", "L3"),
            3: Identity("uc4", "L4"),
        }
        tracked = lesions.patient_lesions(session, "P1")
    assert [t.tracking_id for t in tracked] == ["L1", "L2", "L3", "L4"]
    l1, l2, l3, l4 = tracked
    assert l1.first_study_uid == "1.1" and l3.first_study_uid == "1.2"
    assert l4.first_study_uid == "1.3"
    assert [(v.study_uid, v.category, v.volume_ml) for v in l1.visits] == [
        ("1.1", None, 0.6),
        ("1.2", C.ENLARGING, 0.9),
        ("1.3", C.STABLE, 0.9),
    ]
    assert [v.comparison_id for v in l1.visits] == [cmp_b, cmp_b, cmp_c]
    assert [(v.study_uid, v.category, v.rank) for v in l2.visits] == [
        ("1.1", None, 2),
        ("1.2", C.STABLE, 3),
        ("1.3", C.DISAPPEARED, None),
    ]
    assert [v.study_uid for v in l3.visits] == ["1.2", "1.3"]
    assert l1.visits[0].centroid_mm_lps == (1.0, 1.0, 1.0)
    assert l1.visits[1].location is not None


def test_identities_of_another_analysis_are_not_reused(node_db: Database) -> None:
    """Ranks of a re-analysed prior name other lesions: only that analysis's count."""
    s_a, job_a = analysed(node_db, "P1", "1.1", D2020)
    _, job_b = analysed(node_db, "P1", "1.2", D2021)
    ids_a, _ = lesions.identities_from_report([(1, "ua1")], 0, lambda: "")
    succeeded_comparison(
        node_db,
        job_a,
        job_b,
        report("1.1", "1.2", [change("ua1", "L1", C.STABLE, 1, [1])]),
        ids_a,
        {1: PriorLesion(0.5)},
    )
    with node_db.session() as session:
        assert lesions.prior_identities(session, s_a, job_a) == ids_a
        assert lesions.prior_identities(session, s_a, "another-job") == {}


def test_a_reanalysed_reading_keeps_its_ranks_for_the_next_comparison(node_db: Database) -> None:
    """B's comparison read B through a re-analysis with model "m 1": the identities of that
    reading's ranks, including a lesion B's own result lacks, serve a later re-analysis of B
    with the same model, and only with it."""
    _, job_a = analysed(node_db, "P1", "1.1", D2020)
    s_b, job_b = analysed(node_db, "P1", "1.2", D2021)
    ids_a, _ = lesions.identities_from_report([(1, "ua1"), (2, "ua2")], 0, lambda: "")
    visit_b = report(
        "1.1",
        "1.2",
        [
            change("ua1", "L1", C.STABLE, 1, [1], volume=0.7),
            change("ua2", "L2", C.STABLE, None, [2], volume=0.2),  # only the re-analysis
        ],
    )
    cid = succeeded_comparison(
        node_db, job_a, job_b, visit_b, ids_a, {}, reading=Reading("m 1", [2, 1])
    )
    with pytest.raises(ValueError, match="reading ranks 1 lesions"), node_db.session() as session:
        lesions.record_comparison(session, row(node_db, cid), visit_b, ids_a, {}, Reading("m", [2]))
    with node_db.session() as session:
        read = lesions.reading_identities(session, s_b, job_b, "m 1")
        assert read == {
            2: ReadIdentity(Identity("ua1", "L1"), 0.7),
            1: ReadIdentity(Identity("ua2", "L2"), 0.2),
        }
        # the own-result identities hold only the lesion the own result has
        assert lesions.prior_identities(session, s_b, job_b) == {1: Identity("ua1", "L1")}
        assert lesions.reading_identities(session, s_b, job_b, "other 2") == {}
        assert lesions.reading_identities(session, s_b, "another-job", "m 1") == {}


# --- lesion-load history ------------------------------------------------------------------------


def test_history_carries_the_followup_of_each_analysis(node_db: Database) -> None:
    _, job_a = analysed(node_db, "P1", "1.1", D2020, volume=2.0)
    _, job_b = analysed(node_db, "P1", "1.2", D2021, volume=2.5)
    _, job_c = analysed(node_db, "P1", "1.3", D2022, volume=2.5)
    ids, _ = lesions.identities_from_report([(1, "u1")], 0, lambda: "")
    active = succeeded_comparison(
        node_db,
        job_a,
        job_b,
        report(
            "1.1", "1.2", [change("u1", "L1", C.ENLARGING, 1, [1]), change("u2", "L2", C.NEW, 2)]
        ),
        ids,
        {1: PriorLesion(0.2)},
    )
    with node_db.session() as session:
        ids_b = lesions.prior_identities(session, *_study_and_job(session, "1.2"))
    quiet = succeeded_comparison(
        node_db,
        job_b,
        job_c,
        report(
            "1.2",
            "1.3",
            [change("u1", "L1", C.STABLE, 1, [1]), change("u2", "L2", C.STABLE, 2, [2])],
        ),
        ids_b,
        {1: PriorLesion(0.5), 2: PriorLesion(0.5)},
    )
    with node_db.session() as session:
        loads = history.patient_studies(session, "P1")
        scoped = history.patient_history(session, "P1", "OTHER")
    assert scoped == []
    first, second, third = loads
    assert (first.activity, first.new_count, first.comparison) == (None, None, None)
    assert (second.activity, second.new_count, second.enlarging_count) == (True, 1, 1)
    assert second.comparison and second.comparison.id == active
    assert second.comparison.prior_study_uid == "1.1"
    assert (third.activity, third.new_count, third.enlarging_count) == (False, 0, 0)
    assert third.comparison and third.comparison.id == quiet


def _study_and_job(session: object, uid: str) -> tuple[int, str]:
    from sqlalchemy.orm import Session

    assert isinstance(session, Session)
    study = studies.get_study(session, uid)
    assert study is not None
    job = comparisons.newest_succeeded_job(session, study.id)
    assert job is not None
    return study.id, job.id


# --- ingest -------------------------------------------------------------------------------------


def test_ingest_records_the_issuer_of_patient_id(
    node_db: Database, node_settings: Settings
) -> None:
    from mslesion.services.ingest import read_header, store_instance
    from mslesion.services.store.enums import Source
    from tests.corpus.base import mr_dataset, part10

    first = mr_dataset(patient_id="P1")
    first.IssuerOfPatientID = "HOSP_A"
    later = mr_dataset(patient_id="P1", study_uid=str(first.StudyInstanceUID))
    later.IssuerOfPatientID = "HOSP_B"  # a later instance never replaces the study's issuer
    undated = mr_dataset(patient_id="P1")
    for ds in (first, later, undated):
        data = part10(ds)
        store_instance(node_db, node_settings.spool_dir, read_header(data), data, Source.STOW, None)
    with node_db.session() as session:
        study = studies.get_study(session, str(first.StudyInstanceUID))
        other = studies.get_study(session, str(undated.StudyInstanceUID))
    assert study is not None and study.issuer_of_patient_id == "HOSP_A"
    assert other is not None and other.issuer_of_patient_id is None
