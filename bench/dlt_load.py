"""dlt's fastest setting on the same Singer file: records of the `jobs` stream, normalized
by dlt (nested objects flattened, arrays to child tables) and loaded as parquet."""
import json
import sys

import dlt

path, db = sys.argv[1], sys.argv[2]


def jobs():
    with open(path, "rb") as f:
        for line in f:
            m = json.loads(line)
            if m.get("type") == "RECORD" and m.get("stream") == "jobs":
                yield m["record"]


pipeline = dlt.pipeline(
    pipeline_name="bench",
    destination=dlt.destinations.duckdb(db),
    dataset_name="ci",
    progress="log" if sys.stderr.isatty() else None,
)
info = pipeline.run(dlt.resource(jobs, name="jobs"), loader_file_format="parquet")
info.raise_on_failed_jobs()
