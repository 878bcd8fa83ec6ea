"""follow-up reading: comparisons, tracked lesions, observations; issuer; result scopes

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 10:00:00.000000

- ``studies.issuer_of_patient_id``: IssuerOfPatientID (0010,0021), with PatientID the key of
  a patient's history;
- ``comparisons``: one follow-up comparison (a unit of work, states as for jobs);
- ``tracked_lesions`` and ``lesion_observations``: persistent lesion identities and what
  each study saw of them;
- ``result_files`` and ``forwards`` get ``comparison_id`` and a non-null ``scope`` ("" for a
  job's own results, else the comparison id), which joins their unique keys: a unique key
  with a NULL in it would never collide. ``result_files.kind`` gains the ``followup_*``
  values (a VARCHAR(16) without a CHECK constraint, as every enum here: nothing to alter).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STATES = ("queued", "running", "succeeded", "failed")
_CATEGORIES = ("new", "enlarging", "stable", "shrinking", "disappeared")
_LOCATIONS = ("periventricular", "juxtacortical", "infratentorial", "deep_white_matter")


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("issuer_of_patient_id", sa.String(length=64), nullable=True))

    op.create_table(
        "comparisons",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("issuer", sa.String(length=64), nullable=True),
        sa.Column("prior_study_id", sa.Integer(), nullable=False),
        sa.Column("current_study_id", sa.Integer(), nullable=False),
        sa.Column("prior_job_id", sa.String(length=36), nullable=False),
        sa.Column("current_job_id", sa.String(length=36), nullable=False),
        sa.Column(
            "state",
            sa.Enum(*_STATES, name="comparisonstate", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column(
            "trigger",
            sa.Enum("auto", "manual", name="comparisontrigger", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("registration", sa.JSON(), nullable=True),
        sa.Column("counts", sa.JSON(), nullable=True),
        sa.Column("activity", sa.Boolean(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("timings_s", sa.JSON(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["current_job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["current_study_id"], ["studies.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["prior_job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["prior_study_id"], ["studies.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("comparisons", schema=None) as batch_op:
        for column in ("current_job_id", "current_study_id", "patient_id", "prior_study_id"):
            batch_op.create_index(batch_op.f(f"ix_comparisons_{column}"), [column], unique=False)
        batch_op.create_index(batch_op.f("ix_comparisons_state"), ["state"], unique=False)

    op.create_table(
        "tracked_lesions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("issuer", sa.String(length=64), nullable=True),
        sa.Column("tracking_uid", sa.String(length=64), nullable=False),
        sa.Column("tracking_id", sa.String(length=16), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("first_study_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["first_study_id"], ["studies.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tracking_uid"),
    )
    with op.batch_alter_table("tracked_lesions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_tracked_lesions_patient_id"), ["patient_id"], unique=False
        )

    op.create_table(
        "lesion_observations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tracked_lesion_id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("comparison_id", sa.String(length=36), nullable=True),
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=True),
        sa.Column(
            "category",
            sa.Enum(*_CATEGORIES, name="changecategory", native_enum=False, length=16),
            nullable=True,
        ),
        sa.Column("volume_ml", sa.Float(), nullable=False),
        sa.Column(
            "location",
            sa.Enum(*_LOCATIONS, name="location", native_enum=False, length=32),
            nullable=True,
        ),
        sa.Column("centroid_mm_lps", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["comparison_id"], ["comparisons.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["study_id"], ["studies.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tracked_lesion_id"], ["tracked_lesions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("lesion_observations", schema=None) as batch_op:
        for column in ("comparison_id", "study_id", "tracked_lesion_id"):
            batch_op.create_index(
                batch_op.f(f"ix_lesion_observations_{column}"), [column], unique=False
            )

    with op.batch_alter_table("result_files", schema=None) as batch_op:
        batch_op.add_column(sa.Column("comparison_id", sa.String(length=36), nullable=True))
        batch_op.add_column(
            sa.Column("scope", sa.String(length=36), server_default="", nullable=False)
        )
        batch_op.add_column(sa.Column("part", sa.Integer(), server_default="0", nullable=False))
        batch_op.drop_constraint("uq_result_job_kind", type_="unique")
        batch_op.create_unique_constraint(
            "uq_result_job_scope_kind_part", ["job_id", "scope", "kind", "part"]
        )
        batch_op.create_index(
            batch_op.f("ix_result_files_comparison_id"), ["comparison_id"], unique=False
        )
        batch_op.create_foreign_key(
            "fk_result_files_comparison_id",
            "comparisons",
            ["comparison_id"],
            ["id"],
            ondelete="CASCADE",
        )

    with op.batch_alter_table("forwards", schema=None) as batch_op:
        batch_op.add_column(sa.Column("comparison_id", sa.String(length=36), nullable=True))
        batch_op.add_column(
            sa.Column("scope", sa.String(length=36), server_default="", nullable=False)
        )
        batch_op.drop_constraint("uq_forward_job_dest", type_="unique")
        batch_op.create_unique_constraint(
            "uq_forward_job_scope_dest", ["job_id", "scope", "destination"]
        )
        batch_op.create_index(
            batch_op.f("ix_forwards_comparison_id"), ["comparison_id"], unique=False
        )
        batch_op.create_foreign_key(
            "fk_forwards_comparison_id",
            "comparisons",
            ["comparison_id"],
            ["id"],
            ondelete="CASCADE",
        )


def downgrade() -> None:
    """Revert this revision (the follow-up results and forwards are dropped with it)."""
    op.execute("DELETE FROM forwards WHERE scope <> ''")
    op.execute("DELETE FROM result_files WHERE scope <> ''")
    with op.batch_alter_table("forwards", schema=None) as batch_op:
        batch_op.drop_constraint("fk_forwards_comparison_id", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_forwards_comparison_id"))
        batch_op.drop_constraint("uq_forward_job_scope_dest", type_="unique")
        batch_op.create_unique_constraint("uq_forward_job_dest", ["job_id", "destination"])
        batch_op.drop_column("scope")
        batch_op.drop_column("comparison_id")

    with op.batch_alter_table("result_files", schema=None) as batch_op:
        batch_op.drop_constraint("fk_result_files_comparison_id", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_result_files_comparison_id"))
        batch_op.drop_constraint("uq_result_job_scope_kind_part", type_="unique")
        batch_op.create_unique_constraint("uq_result_job_kind", ["job_id", "kind"])
        batch_op.drop_column("part")
        batch_op.drop_column("scope")
        batch_op.drop_column("comparison_id")

    with op.batch_alter_table("lesion_observations", schema=None) as batch_op:
        for column in ("tracked_lesion_id", "study_id", "comparison_id"):
            batch_op.drop_index(batch_op.f(f"ix_lesion_observations_{column}"))
    op.drop_table("lesion_observations")

    with op.batch_alter_table("tracked_lesions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tracked_lesions_patient_id"))
    op.drop_table("tracked_lesions")

    with op.batch_alter_table("comparisons", schema=None) as batch_op:
        for column in ("state", "prior_study_id", "patient_id", "current_study_id"):
            batch_op.drop_index(batch_op.f(f"ix_comparisons_{column}"))
        batch_op.drop_index(batch_op.f("ix_comparisons_current_job_id"))
    op.drop_table("comparisons")

    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.drop_column("issuer_of_patient_id")
