//! `observes`: the command line. It parses arguments, sets up logging and calls into the
//! crates; no loading logic lives here.

use std::io::{BufReader, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use observes_load::{LoadConfig, Loader, OnInvalid, WriteMode};
use observes_pipeline::sources::synthetic::{self, SyntheticConfig};
use observes_pipeline::{demo, drive, run_pipeline, Config, MessageStream};
use observes_singer::{Message, MessageWriter};
use observes_state::StateStore;
use serde_json::{json, Value};

// Records are allocated on the reader thread and freed on the loader thread; glibc's
// allocator serializes that on its arena locks, mimalloc does not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "observes",
    version,
    about = "Extract, load and watch a company's data: Singer in, relational tables out.",
    long_about = "Observes loads Singer streams into a warehouse (DuckDB by default; PostgreSQL and \
Amazon Redshift too) as relational tables, commits each checkpoint's state with its data, and resumes where the last committed \
state left off.\n\nStart with `observes run demo`."
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Log level filter (tracing syntax, e.g. `info`, `observes_load=debug`).
    #[arg(long, global = true, env = "OBSERVES_LOG", default_value = "info")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run a pipeline from observes.toml (or `run demo` for the self-contained demo).
    Run {
        /// The pipeline's name; `demo` runs the demo in --dir unless the config names a
        /// pipeline `demo`.
        name: String,
        /// The config file.
        #[arg(long, default_value = "observes.toml")]
        config: PathBuf,
        /// Where the demo lives (its config, warehouse, state and data).
        #[arg(long, default_value = "observes-demo")]
        dir: PathBuf,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// A Singer target: load Singer messages from stdin into a warehouse. Each committed
    /// state is echoed to stdout, as Singer targets do.
    Target {
        /// Warehouse URL: duckdb://observes.duckdb, postgres://user@host:5432/db or
        /// redshift://user@host:5439/db?staging=s3://bucket/prefix.
        warehouse: String,
        /// The warehouse schema to load into.
        #[arg(long)]
        schema: String,
        /// append, merge (upsert by key) or replace (full reload, swapped in atomically).
        #[arg(long = "write", default_value = "append", value_parser = parse_write_mode)]
        write_mode: WriteMode,
        /// fail (stop, commit nothing of the failed checkpoint) or quarantine (bad records
        /// go to _observes_rejects).
        #[arg(long, default_value = "fail", value_parser = parse_on_invalid)]
        on_invalid: OnInvalid,
        /// What an incompatible type change does: fail (stop the load) or variant (keep the
        /// column; values of the new type go to a new column NAME__v_TYPE).
        #[arg(long, default_value = "fail", value_parser = parse_schema_change)]
        on_schema_change: observes_model::SchemaChangePolicy,
        /// The name the state is kept under in _observes_state.
        #[arg(long, default_value = "target")]
        pipeline: String,
    },
    /// Run a built-in tap and print its Singer messages to stdout.
    Tap {
        #[command(subcommand)]
        tap: Tap,
    },
    /// Read or change a pipeline's committed state.
    State {
        #[command(subcommand)]
        action: StateAction,
    },
}

#[derive(Subcommand)]
enum Tap {
    /// Deterministic CI-job-like records (for benchmarks and tests).
    Synthetic {
        #[arg(long, default_value_t = 1000)]
        records: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 10_000)]
        checkpoint_every: u64,
        /// A Singer state file to resume from.
        #[arg(long)]
        state: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum StateAction {
    /// Print the pipeline's committed state (the warehouse's copy, else the state store's).
    Get {
        pipeline: String,
        #[arg(long, default_value = "observes.toml")]
        config: PathBuf,
    },
    /// Replace the pipeline's state with JSON given as an argument (or `-` for stdin).
    Set {
        pipeline: String,
        state: String,
        #[arg(long, default_value = "observes.toml")]
        config: PathBuf,
    },
    /// Forget the pipeline's state: the next run starts from the beginning.
    Clear {
        pipeline: String,
        #[arg(long, default_value = "observes.toml")]
        config: PathBuf,
    },
}

fn parse_write_mode(s: &str) -> Result<WriteMode, String> {
    s.parse()
}

fn parse_on_invalid(s: &str) -> Result<OnInvalid, String> {
    s.parse()
}

fn parse_schema_change(s: &str) -> Result<observes_model::SchemaChangePolicy, String> {
    s.parse()
}

fn init_logging(format: LogFormat, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person at a terminal, never into files or log collectors.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format, &cli.log);
    match dispatch(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line. Library errors already include their cause's
/// text in their own message, so a cause is only added when it says something new.
fn error_chain(e: &anyhow::Error) -> String {
    let mut message = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
    }
    message
}

fn dispatch(command: Command) -> Result<()> {
    match command {
        Command::Run {
            name,
            config,
            dir,
            json,
        } => {
            if name == "demo" && !config_has_pipeline(&config, "demo") {
                return run_demo(&dir, json);
            }
            let cfg = Config::load(&config)?;
            let summary =
                run_pipeline(&cfg, &name).with_context(|| format!("pipeline {name:?} failed"))?;
            print_run(&summary, json)
        }
        Command::Target {
            warehouse,
            schema,
            write_mode,
            on_invalid,
            on_schema_change,
            pipeline,
        } => target(
            &warehouse,
            &schema,
            write_mode,
            on_invalid,
            on_schema_change,
            &pipeline,
        ),
        Command::Tap {
            tap:
                Tap::Synthetic {
                    records,
                    seed,
                    checkpoint_every,
                    state,
                },
        } => {
            let state: Option<Value> = match state {
                Some(path) => Some(
                    serde_json::from_slice(
                        &std::fs::read(&path)
                            .with_context(|| format!("reading {}", path.display()))?,
                    )
                    .with_context(|| format!("{} is not JSON", path.display()))?,
                ),
                None => None,
            };
            let config = SyntheticConfig {
                records,
                seed,
                checkpoint_every,
            };
            let stdout = std::io::stdout().lock();
            let mut writer = MessageWriter::new(std::io::BufWriter::with_capacity(1 << 20, stdout));
            for message in synthetic::messages(&config, synthetic::position(state.as_ref())) {
                writer.write(&message).context("writing to stdout")?;
            }
            writer.flush().context("writing to stdout")?;
            Ok(())
        }
        Command::State { action } => state(action),
    }
}

fn config_has_pipeline(path: &std::path::Path, name: &str) -> bool {
    Config::load(path).is_ok_and(|c| c.pipelines.contains_key(name))
}

fn print_run(summary: &observes_pipeline::RunSummary, as_json: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if as_json {
        let streams: serde_json::Map<String, Value> = summary
            .load
            .streams
            .iter()
            .map(|(k, v)| (k.clone(), json!({"rows": v.rows, "rejected": v.rejected})))
            .collect();
        writeln!(
            out,
            "{}",
            json!({
                "pipeline": summary.pipeline,
                "load_id": summary.load.load_id,
                "streams": streams,
                "commits": summary.load.commits,
                "state": summary.load.state,
                "seconds": summary.elapsed.as_secs_f64(),
            })
        )?;
        return Ok(());
    }
    let rows: u64 = summary.load.streams.values().map(|s| s.rows).sum();
    let rejected: u64 = summary.load.streams.values().map(|s| s.rejected).sum();
    writeln!(
        out,
        "{}: load {} committed {rows} records in {} streams ({rejected} rejected, {} commits) in {:.2}s",
        summary.pipeline,
        summary.load.load_id,
        summary.load.streams.len(),
        summary.load.commits,
        summary.elapsed.as_secs_f64()
    )?;
    Ok(())
}

fn run_demo(dir: &std::path::Path, as_json: bool) -> Result<()> {
    let summary = demo::run_demo(dir).with_context(|| format!("demo in {}", dir.display()))?;
    for run in &summary.runs {
        print_run(run, as_json)?;
    }
    let mut out = std::io::stdout().lock();
    if as_json {
        let tables: Vec<Value> = summary
            .tables
            .iter()
            .map(|t| json!({"schema": t.schema, "table": t.table, "rows": t.rows}))
            .collect();
        writeln!(out, "{}", json!({"tables": tables}))?;
        return Ok(());
    }
    writeln!(
        out,
        "\nTables in {}:",
        summary.dir.join("warehouse.duckdb").display()
    )?;
    for t in &summary.tables {
        writeln!(
            out,
            "  {:<40} {:>8} rows",
            format!("{}.{}", t.schema, t.table),
            t.rows
        )?;
    }
    writeln!(
        out,
        "\nRun it again to see incremental loads; edit {} to change the pipelines.",
        summary.config.display()
    )?;
    Ok(())
}

fn target(
    warehouse: &str,
    schema: &str,
    write_mode: WriteMode,
    on_invalid: OnInvalid,
    on_schema_change: observes_model::SchemaChangePolicy,
    pipeline: &str,
) -> Result<()> {
    let mut wh = observes_warehouse::connect_pipelined(warehouse)?;
    let config = LoadConfig {
        write_mode,
        on_invalid,
        on_schema_change,
        ..LoadConfig::new(pipeline, schema)
    };
    let mut loader = Loader::begin(wh.as_mut(), config)?;
    let mut stream =
        MessageStream::from_reader(BufReader::with_capacity(1 << 20, std::io::stdin()));
    let mut out = MessageWriter::new(std::io::stdout());
    let echo = |out: &mut MessageWriter<std::io::Stdout>,
                state: &Value|
     -> Result<(), observes_pipeline::RunError> {
        let message = Message::State(observes_singer::StateMessage {
            value: state.clone(),
        });
        // A closed stdout must not undo a committed load; the state is in the warehouse.
        let _ = out.write(&message).and_then(|_| out.flush());
        Ok(())
    };
    if let Err(e) = drive(&mut loader, &mut stream, |s| echo(&mut out, s)) {
        if let Some(state) = loader.abort(&e.to_string()) {
            echo(&mut out, &state)?;
        }
        return Err(e.into());
    }
    let summary = loader.finish()?;
    if let Some(state) = &summary.unreported_state {
        echo(&mut out, state)?;
    }
    let rows: u64 = summary.streams.values().map(|s| s.rows).sum();
    tracing::info!(load_id = summary.load_id, rows, "target finished");
    Ok(())
}

fn state(action: StateAction) -> Result<()> {
    let (pipeline, config) = match &action {
        StateAction::Get { pipeline, config }
        | StateAction::Set {
            pipeline, config, ..
        }
        | StateAction::Clear { pipeline, config } => (pipeline.clone(), config.clone()),
    };
    let cfg = Config::load(&config)?;
    let schema = cfg.pipeline(&pipeline)?.schema.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let store = StateStore::open(&cfg.state)?;
    let mut wh = observes_warehouse::connect(&cfg.warehouse)?;
    match action {
        StateAction::Get { .. } => {
            let state = match observes_load::metadata::read_state(wh.as_mut(), &schema, &pipeline)?
            {
                Some(s) => Some(s),
                None => rt.block_on(store.get(&pipeline))?,
            };
            match state {
                Some(s) => println!("{}", serde_json::to_string_pretty(&s)?),
                None => println!("null"),
            }
        }
        StateAction::Set { state, .. } => {
            let text = if state == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                state
            };
            let value: Value = serde_json::from_str(&text).context("the state must be JSON")?;
            if !value.is_object() {
                bail!("the state must be a JSON object");
            }
            let lock = rt.block_on(store.lock(
                &pipeline,
                "observes state set",
                observes_pipeline::run::LOCK_TTL,
            ))?;
            let result = (|| -> Result<()> {
                wh.begin()?;
                let (load_id, _) =
                    observes_load::metadata::prepare(wh.as_mut(), &schema, &pipeline)?;
                observes_load::metadata::write_state(
                    wh.as_mut(),
                    &schema,
                    &pipeline,
                    &value,
                    load_id - 1,
                )?;
                wh.commit()?;
                rt.block_on(store.put(&pipeline, &value))?;
                Ok(())
            })();
            rt.block_on(store.unlock(lock))?;
            result?;
        }
        StateAction::Clear { .. } => {
            let lock = rt.block_on(store.lock(
                &pipeline,
                "observes state clear",
                observes_pipeline::run::LOCK_TTL,
            ))?;
            let result = (|| -> Result<()> {
                wh.begin()?;
                observes_load::metadata::clear_state(wh.as_mut(), &schema, &pipeline)?;
                wh.commit()?;
                rt.block_on(store.clear(&pipeline))?;
                Ok(())
            })();
            rt.block_on(store.unlock(lock))?;
            result?;
        }
    }
    Ok(())
}
