"""The README's table of environment variables, made from the settings classes.

``python -m perdure.settings_table`` prints it; ``tests/test_settings_table.py`` checks that the
README holds exactly this table.
"""

from __future__ import annotations

import sys

from perdure.ingress.config import AdminSettings, IngressSettings
from perdure.partitions.config import WorkerSettings
from perdure.process.settings import ProcessSettings, table


def readme_table() -> str:
    """The table of every variable a Perdure process reads, as the README holds it."""
    return table([ProcessSettings, WorkerSettings, IngressSettings, AdminSettings])


if __name__ == "__main__":
    sys.stdout.write(readme_table() + "\n")
