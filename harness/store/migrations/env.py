"""Alembic environment for lowbit's store.

lowbit always hands Alembic an open connection (``config.attributes["connection"]``) inside a
transaction that already holds the migration lock, so a migration and the check that it is needed are
atomic even with several processes starting at once (see harness/store/migrate.py).
"""

from alembic import context

from harness.store.engine import create_engine
from harness.store.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        # SQLite does roll back DDL; one transaction for the whole upgrade keeps it all-or-nothing.
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()
