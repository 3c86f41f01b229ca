# Sourced by the scripts: where the build goes and where DuckDB's library lives.
# The target dir is outside the clone so the (expensive) native pieces are built once per machine.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/observes-target}"
export OBSERVES_DUCKDB_VERSION="2.0.1"
# Inside the target dir on purpose: cargo then puts it on the library path of `cargo run`/`cargo test`.
export DUCKDB_LIB_DIR="${DUCKDB_LIB_DIR:-$CARGO_TARGET_DIR/duckdb-lib/$OBSERVES_DUCKDB_VERSION}"
export DUCKDB_DOWNLOAD_LIB=0
# Doctests and binaries run outside cargo's own library-path handling.
export LD_LIBRARY_PATH="$DUCKDB_LIB_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
