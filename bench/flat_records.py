#!/usr/bin/env python3
"""A Singer stream Observes's own generator does not shape: N flat records of about 2.1 KB.

Each record has an integer key, 30 strings of 2-14 words (with `\\n`, `\\"`, `\\\\` and
non-ASCII in them) and 10 doubles: 41 columns, one table, a single STATE at the end, as a
full-table tap sends it. Seeded, so every run writes the same bytes.

    bench/flat_records.py RECORDS > flat.singer
"""
import json
import random
import sys

WORDS = (
    "pipeline runner deploy cache merge review branch commit artifact stage job "
    "staging production rollback timeout retry Zürich café naïve résumé Åsa "
    "東京 データ 😀 über señal"
).split()
SPICE = ["\n", '"', "\\", "\t", "/"]


def text(rng):
    words = rng.choices(WORDS, k=rng.randint(2, 14))
    if rng.random() < 0.3:
        words.insert(rng.randrange(len(words) + 1), rng.choice(SPICE))
    return " ".join(words)


def main():
    records = int(sys.argv[1]) if len(sys.argv) > 1 else 600_000
    rng = random.Random(23)
    out = sys.stdout
    schema = {"id": {"type": "integer"}}
    schema.update({f"text_{i:02}": {"type": ["null", "string"]} for i in range(30)})
    schema.update({f"value_{i:02}": {"type": ["null", "number"]} for i in range(10)})
    out.write(json.dumps({
        "type": "SCHEMA", "stream": "flat", "key_properties": ["id"],
        "schema": {"type": "object", "properties": schema},
    }) + "\n")
    for n in range(records):
        record = {"id": n}
        for i in range(30):
            record[f"text_{i:02}"] = text(rng)
        for i in range(10):
            record[f"value_{i:02}"] = round(rng.uniform(-1e6, 1e6), rng.randint(0, 6))
        out.write(json.dumps({"type": "RECORD", "stream": "flat", "record": record},
                             ensure_ascii=False) + "\n")
    out.write(json.dumps({"type": "STATE", "value": {"flat": {"done": records}}}) + "\n")


if __name__ == "__main__":
    main()
