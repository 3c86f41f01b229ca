"""DuckDB's own JSON reader on the records alone: the near-limit (one flat-ish table, no
child tables, no validation)."""
import sys

import duckdb

records, db = sys.argv[1], sys.argv[2]
con = duckdb.connect(db)
con.execute(f"CREATE TABLE jobs AS SELECT * FROM read_json_auto('{records}', format='newline_delimited')")
print(con.execute("SELECT COUNT(*) FROM jobs").fetchone()[0], file=sys.stderr)
