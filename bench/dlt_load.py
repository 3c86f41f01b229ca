"""dlt's fastest setting on the same Singer file: records of one stream (`jobs` unless
named), normalized by dlt (nested objects flattened, arrays to child tables) and loaded
as parquet.

    dlt_load.py SINGER DB [STREAM]"""
import json
import sys

import dlt

path, db = sys.argv[1], sys.argv[2]
stream = sys.argv[3] if len(sys.argv) > 3 else "jobs"


def jobs():
    with open(path, "rb") as f:
        for line in f:
            m = json.loads(line)
            if m.get("type") == "RECORD" and m.get("stream") == stream:
                yield m["record"]


pipeline = dlt.pipeline(
    pipeline_name="bench",
    destination=dlt.destinations.duckdb(db),
    dataset_name="ci",
    progress="log" if sys.stderr.isatty() else None,
)
info = pipeline.run(dlt.resource(jobs, name=stream), loader_file_format="parquet")
info.raise_on_failed_jobs()
