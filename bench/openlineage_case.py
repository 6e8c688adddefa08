"""Case (e): OpenLineage's dbt artifact processor over the same artifacts, sending nothing.

Drives ``openlineage.common.provider.dbt.local.DbtLocalArtifactProcessor`` (package
``openlineage-integration-common``) the way ``dbt-ol`` does after a dbt command: it reads
manifest.json and run_results.json from the target directory, builds the OpenLineage run events
(START plus COMPLETE/FAIL per executed model, with input/output datasets, schema, SQL, column
lineage parsed from the compiled SQL by openlineage-sql; START plus COMPLETE/FAIL per model's data
quality assertions for the tests), then serializes each event to JSON, one per line, into
OUT_FILE (what its file transport would write) instead of sending it anywhere.

The processor wants a dbt project around the artifacts: a ``dbt_project.yml`` (project name and
profile) and a ``profiles.yml`` whose target's adapter type and host give the dataset namespace.
Both are written to a temporary directory; the target directory is passed as ``target_path``.

Usage::

    python -m bench.openlineage_case TARGET_DIR OUT_FILE

Prints one JSON line to stdout: ``{"events": N, "bytes": N}``.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
from pathlib import Path

DBT_PROJECT_YML = """\
name: acme_analytics
version: "1.0.0"
config-version: 2
profile: bench
"""
PROFILES_YML = """\
bench:
  target: prod
  outputs:
    prod:
      type: postgres
      host: warehouse.internal
      port: 5432
      user: bench
      password: bench
      dbname: analytics
      schema: public
      threads: 16
"""


def main(argv: list[str]) -> int:
    """``python -m bench.openlineage_case TARGET_DIR OUT_FILE``."""
    from openlineage.client.serde import Serde
    from openlineage.common.provider.dbt.local import DbtLocalArtifactProcessor

    target, out = Path(argv[0]).resolve(), Path(argv[1])
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="bench-openlineage-") as project:
        (Path(project) / "dbt_project.yml").write_text(DBT_PROJECT_YML)
        (Path(project) / "profiles.yml").write_text(PROFILES_YML)
        processor = DbtLocalArtifactProcessor(
            producer="https://github.com/OpenLineage/OpenLineage/tree/main/integration/dbt",
            job_namespace="bench",
            project_dir=project,
            target_path=str(target),
            dbt_command_line=["dbt", "build", "--profiles-dir", project],
        )
        events = processor.parse().events()
    written = 0
    with out.open("w", encoding="utf-8") as handle:
        for event in events:
            line = Serde.to_json(event) + "\n"
            handle.write(line)
            written += len(line)
    print(json.dumps({"events": len(events), "bytes": written}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
