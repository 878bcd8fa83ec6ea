"""lesion observations remember the re-analysis a comparison read a study through

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 16:00:00.000000

``lesion_observations.reading_model`` and ``reading_rank``: when a comparison read its current
study through a re-analysis with the model both visits support, the model ("name version")
and each lesion's rank in that reading. The next comparison that reads the same study with
the same model takes the identities from here, so a lesion only that reading sees keeps the
identity it was given. Both are NULL for observations of a study's own result.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("lesion_observations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reading_model", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("reading_rank", sa.Integer(), nullable=True))


def downgrade() -> None:
    """Revert this revision (re-analysed readings' ranks are dropped)."""
    with op.batch_alter_table("lesion_observations", schema=None) as batch_op:
        batch_op.drop_column("reading_rank")
        batch_op.drop_column("reading_model")
