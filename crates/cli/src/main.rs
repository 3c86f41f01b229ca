//! `observes`: the command line. It parses arguments, sets up logging and calls into the
//! crates; no loading logic lives here.

mod dashboards;
mod scheduling;

use std::io::Write;
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
state left off. Around that it runs jobs (billing from git history, a repository mirror, cancelling stuck CI jobs) from a \
catalogue, on schedules, through a local queue or AWS Batch, and serves dashboards.\n\nStart with `observes run demo`."
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
        /// Under merge, a stream whose SCHEMA has no key_properties: append (load it as
        /// append, with a warning) or fail (stop the load).
        #[arg(long, default_value = "append", value_parser = parse_on_missing_key)]
        on_missing_key: observes_load::OnMissingKey,
        /// Objects and arrays the SCHEMA leaves untyped (no properties, no items): json (one
        /// JSON column) or infer (columns and child tables typed from the records).
        #[arg(long, default_value = "json", value_parser = parse_untyped)]
        untyped: observes_load::Untyped,
        /// The name the state is kept under in _observes_state.
        #[arg(long, default_value = "target")]
        pipeline: String,
        /// A STATE commits once this many records arrived since the last commit (0: every
        /// STATE commits as it comes) ...
        #[arg(long, default_value_t = observes_load::CommitPolicy::default().records)]
        commit_records: u64,
        /// ... or once this many seconds passed since it. The last STATE always commits.
        #[arg(long, default_value_t = observes_load::CommitPolicy::default().interval.as_secs_f64())]
        commit_seconds: f64,
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
    /// Serve a fake of an external API on 127.0.0.1 with generated data (for trying
    /// observes without credentials). Runs until stopped.
    FakeApi {
        #[arg(value_parser = clap::builder::PossibleValuesParser::new(observes_fakes::FAKES.iter().map(|k| k.name)))]
        api: String,
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Seed of the generated data.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Build a deterministic sample git repository (authors, a .mailmap, merges) with
    /// git fast-import: for trying the code ETL and for benchmarks.
    SampleRepo {
        /// Where to create it (must not exist).
        path: PathBuf,
        #[arg(long, default_value_t = 1000)]
        commits: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// A side branch is merged every this many commits (0: never).
        #[arg(long, default_value_t = 10)]
        merge_every: usize,
    },
    /// The job catalogue, and jobs that are not pipelines.
    Job {
        #[command(subcommand)]
        job: Job,
    },
    /// Schedules of the catalogue's jobs.
    Schedule {
        #[command(subcommand)]
        action: ScheduleAction,
    },
    /// The scheduler: submit the runs that fell due, exactly once.
    Scheduler {
        #[command(subcommand)]
        action: SchedulerAction,
    },
    /// The local job queue: runs, their attempts and logs.
    Queue {
        #[command(subcommand)]
        action: QueueAction,
    },
    /// Dashboards: files of panels in a folder (default: dashboards/ beside the config).
    Dashboard {
        #[command(subcommand)]
        action: DashboardAction,
    },
}

#[derive(Subcommand)]
enum DashboardAction {
    /// Serve the dashboards as web pages (charts drawn as SVG, a CSV per panel).
    Serve {
        #[arg(long, default_value = "127.0.0.1:8787")]
        addr: std::net::SocketAddr,
        /// Seconds a panel's query may take before its panel says so.
        #[arg(long, default_value_t = 30.0)]
        timeout: f64,
        #[command(flatten)]
        place: DashboardPlace,
    },
    /// One line per dashboard: its name, then its title.
    List {
        #[command(flatten)]
        place: DashboardPlace,
    },
    /// Run every panel of every dashboard (or of NAME) and report the first problem.
    Check {
        name: Option<String>,
        #[command(flatten)]
        place: DashboardPlace,
    },
    /// Write a dashboard as one HTML file, one SVG per chart, or a PNG of the page (needs
    /// Chromium), for reports.
    Export {
        name: String,
        #[arg(long, default_value = "html", value_parser = parse_export_format)]
        format: observes_dashboards::export::Format,
        #[arg(long)]
        out: PathBuf,
        /// First day (default: the dashboard's range ending today).
        #[arg(long)]
        start: Option<chrono::NaiveDate>,
        /// Last day, included.
        #[arg(long)]
        end: Option<chrono::NaiveDate>,
        #[arg(long, default_value = "")]
        group: String,
        #[command(flatten)]
        place: DashboardPlace,
    },
}

fn parse_on_missing_key(s: &str) -> Result<observes_load::OnMissingKey, String> {
    s.parse()
}

fn parse_untyped(s: &str) -> Result<observes_load::Untyped, String> {
    s.parse()
}

fn parse_export_format(s: &str) -> Result<observes_dashboards::export::Format, String> {
    s.parse()
}

/// Where the dashboards and the warehouse are.
#[derive(clap::Args)]
struct DashboardPlace {
    /// The config file (its warehouse).
    #[arg(long, default_value = "observes.toml")]
    config: PathBuf,
    /// The folder of dashboard files (default: dashboards/ beside the config).
    #[arg(long)]
    dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum ScheduleAction {
    /// Print the next fire times of a job (of every scheduled job without NAME).
    Next {
        name: Option<String>,
        #[arg(short = 'n', long, default_value_t = 5)]
        count: usize,
        /// Start from this instant (RFC 3339) instead of now.
        #[arg(long)]
        after: Option<chrono::DateTime<chrono::Utc>>,
        #[arg(long, default_value = "observes.toml")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum SchedulerAction {
    /// Submit every run due since the last tick (overlapping or repeated ticks never
    /// submit twice; missed runs follow each job's catch_up).
    Tick {
        /// Show what would be submitted; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Tick as of this instant (RFC 3339) instead of now.
        #[arg(long)]
        now: Option<chrono::DateTime<chrono::Utc>>,
        #[arg(long, default_value = "observes.toml")]
        config: PathBuf,
    },
    /// Tick, work the local queue, sleep; forever (the daemon form).
    Run {
        /// Seconds between ticks.
        #[arg(long, default_value_t = 60)]
        interval: u64,
        #[arg(long, default_value = "observes.toml")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum QueueAction {
    /// Every run in the queue, oldest first.
    List {
        #[arg(long)]
        json: bool,
        #[arg(long, default_value = "observes.toml")]
        config: PathBuf,
    },
    /// One run, with its attempts.
    Show {
        id: String,
        #[arg(long, default_value = "observes.toml")]
        config: PathBuf,
    },
    /// The logs of a run's attempts.
    Logs {
        id: String,
        /// Only this attempt.
        #[arg(long)]
        attempt: Option<u32>,
        #[arg(long, default_value = "observes.toml")]
        config: PathBuf,
    },
    /// Cancel a queued run (a running one is stopped by its worker).
    Cancel {
        id: String,
        #[arg(long, default_value = "observes.toml")]
        config: PathBuf,
    },
    /// Run what is queued until nothing is left, [queue] concurrency at a time.
    Work {
        #[arg(long)]
        concurrency: Option<usize>,
        #[arg(long, default_value = "observes.toml")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum Job {
    /// The catalogue: one line per job (name, schedule, size, queue, command).
    List {
        #[arg(long)]
        json: bool,
        #[arg(long, default_value = "observes.toml")]
        config: PathBuf,
    },
    /// One job of the catalogue, in full.
    Show {
        name: String,
        #[arg(long, default_value = "observes.toml")]
        config: PathBuf,
    },
    /// Run a job of the catalogue here and now (attempts and timeout apply), and record
    /// the run in the warehouse's observes._observes_job_runs.
    Run {
        name: String,
        #[arg(long, default_value = "observes.toml")]
        config: PathBuf,
    },
    /// Report the failed runs of the last hours in the queue, classified (cancelled,
    /// unstarted, failed with its exit code, timed out) and grouped by job; exit non-zero
    /// when any failed.
    BatchStability {
        #[arg(long, default_value_t = 1.0)]
        hours: f64,
        #[arg(long)]
        json: bool,
        /// POST the JSON report here (from the environment: a webhook URL is a secret).
        #[arg(long, env = "OBSERVES_STABILITY_WEBHOOK", hide_env_values = true)]
        webhook: Option<String>,
        #[arg(long, default_value = "observes.toml")]
        config: PathBuf,
    },
    /// Cancel GitLab CI jobs stuck in created, pending or running for longer than a
    /// threshold. One failure does not stop the rest; the exit status is non-zero if any
    /// cancel failed.
    CancelCiJobs {
        /// GitLab settings (api_url and the token, as for `observes tap gitlab`).
        #[arg(long, default_value = "gitlab.toml")]
        config: PathBuf,
        /// A project id or path; repeat for several (default: the config's projects).
        #[arg(long = "project")]
        projects: Vec<String>,
        /// Age threshold: a number with s, m, h or d (e.g. 8h).
        #[arg(long, default_value = "8h", value_parser = parse_age)]
        older_than: chrono::Duration,
        /// List the jobs that would be cancelled; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Compute a month's bills from the code ETL's commits: one CSV per group of the
    /// authors active that month, to <storage>/bills/YYYY/MM/<group>.csv.
    ComputeBills {
        /// The month: YYYY-MM, current or previous (default: current, UTC).
        #[arg(long, value_parser = parse_month)]
        month: Option<observes_jobs::bills::Month>,
        /// The config file (warehouse, storage and [bills]).
        #[arg(long, default_value = "observes.toml")]
        config: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Mirror the repositories of [mirror] in observes.toml: clone or fetch each (skipped
    /// when its remote is unchanged) and publish a git bundle to <storage>/mirror/. The
    /// exit status is non-zero if any repository failed; the others still run.
    Mirror {
        /// Only this group.
        #[arg(long)]
        group: Option<String>,
        /// The config file (storage and [mirror]).
        #[arg(long, default_value = "observes.toml")]
        config: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn parse_month(s: &str) -> Result<observes_jobs::bills::Month, String> {
    s.parse()
}

fn parse_age(s: &str) -> Result<chrono::Duration, String> {
    let s = s.trim();
    let (number, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not an age like 30m, 8h or 2d"))?;
    match unit {
        "s" => Ok(chrono::Duration::seconds(n)),
        "m" => Ok(chrono::Duration::minutes(n)),
        "h" | "" => Ok(chrono::Duration::hours(n)),
        "d" => Ok(chrono::Duration::days(n)),
        _ => Err(format!("{s:?}: the unit must be s, m, h or d")),
    }
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
    /// A built-in source, `observes tap NAME [--config NAME.toml] [--state FILE]` (the
    /// list follows).
    #[command(external_subcommand)]
    Builtin(Vec<String>),
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

/// The command line, with `observes tap --help` listing the registered sources.
fn parse_cli() -> Cli {
    use clap::{CommandFactory, FromArgMatches};
    let mut list = String::from("Built-in sources (observes tap NAME --help):\n");
    for kind in observes_sources::SOURCES {
        list.push_str(&format!("  {:<12}{}\n", kind.name, kind.about));
    }
    let command = Cli::command().mut_subcommand("tap", |tap| tap.after_help(list));
    let matches = command.get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

fn main() -> ExitCode {
    disable_transparent_huge_pages();
    let cli = parse_cli();
    init_logging(cli.log_format, &cli.log);
    match dispatch(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// A load's batches are allocated, filled once and freed: with transparent huge pages each
/// first touch makes the kernel clear 2 MiB, mostly for nothing. Without them a load takes
/// about 7% less time and 50 MB less memory (bench/RESULTS.md). This process only.
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and changes no memory of ours; a
    // kernel without it returns an error, which changes nothing either.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
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
            on_missing_key,
            untyped,
            pipeline,
            commit_records,
            commit_seconds,
        } => target(
            &warehouse,
            LoadConfig {
                write_mode,
                on_invalid,
                on_schema_change,
                on_missing_key,
                untyped,
                commit: observes_pipeline::config::commit_policy(
                    Some(commit_records),
                    Some(commit_seconds),
                )
                .map_err(anyhow::Error::msg)?,
                ..LoadConfig::new(&pipeline, &schema)
            },
        ),
        Command::Tap {
            tap: Tap::Builtin(args),
        } => builtin_tap(&args),
        Command::FakeApi { api, port, seed } => fake_api(&api, port, seed),
        Command::SampleRepo {
            path,
            commits,
            seed,
            merge_every,
        } => {
            if path.exists() {
                bail!("{} exists already", path.display());
            }
            let spec = observes_sources::code::sample::SampleRepo {
                commits,
                seed,
                merge_every,
                ..Default::default()
            };
            observes_sources::code::sample::build(&path, &spec)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            println!("{}: {commits} commits", path.display());
            Ok(())
        }
        Command::Job {
            job:
                Job::CancelCiJobs {
                    config,
                    projects,
                    older_than,
                    dry_run,
                    json,
                },
        } => cancel_ci_jobs(&config, projects, older_than, dry_run, json),
        Command::Job {
            job:
                Job::ComputeBills {
                    month,
                    config,
                    json,
                },
        } => compute_bills(
            &config,
            month.unwrap_or_else(observes_jobs::bills::Month::now),
            json,
        ),
        Command::Job {
            job:
                Job::Mirror {
                    group,
                    config,
                    json,
                },
        } => mirror(&config, group.as_deref(), json),
        Command::Tap {
            tap:
                Tap::Synthetic {
                    records,
                    seed,
                    checkpoint_every,
                    state,
                },
        } => {
            let state = read_state(state)?;
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
        Command::Job {
            job: Job::List { json, config },
        } => scheduling::job_list(&config, json),
        Command::Job {
            job: Job::Show { name, config },
        } => scheduling::job_show(&config, &name),
        Command::Job {
            job: Job::Run { name, config },
        } => scheduling::job_run(&config, &name),
        Command::Job {
            job:
                Job::BatchStability {
                    hours,
                    json,
                    webhook,
                    config,
                },
        } => scheduling::batch_stability(&config, hours, json, webhook.as_deref()),
        Command::Schedule {
            action:
                ScheduleAction::Next {
                    name,
                    count,
                    after,
                    config,
                },
        } => scheduling::schedule_next(&config, name.as_deref(), count, after),
        Command::Scheduler {
            action:
                SchedulerAction::Tick {
                    dry_run,
                    now,
                    config,
                },
        } => scheduling::scheduler_tick(&config, dry_run, now),
        Command::Scheduler {
            action: SchedulerAction::Run { interval, config },
        } => scheduling::scheduler_run(&config, std::time::Duration::from_secs(interval.max(1))),
        Command::Dashboard { action } => dashboards::run(action),
        Command::Queue { action } => match action {
            QueueAction::List { json, config } => scheduling::queue_list(&config, json),
            QueueAction::Show { id, config } => scheduling::queue_show(&config, &id),
            QueueAction::Logs {
                id,
                attempt,
                config,
            } => scheduling::queue_logs(&config, &id, attempt),
            QueueAction::Cancel { id, config } => scheduling::queue_cancel(&config, &id),
            QueueAction::Work {
                concurrency,
                config,
            } => scheduling::queue_work(&config, concurrency),
        },
    }
}

/// The runtime the CLI's async calls run on.
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn read_state(path: Option<PathBuf>) -> Result<Option<Value>> {
    let Some(path) = path else { return Ok(None) };
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let state = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not JSON", path.display()))?;
    Ok(Some(state))
}

/// `observes tap NAME …` for a source of the registry: its own arguments, read here.
fn builtin_tap(args: &[String]) -> Result<()> {
    let name = args.first().map(String::as_str).unwrap_or_default();
    let Some(kind) = observes_sources::registry::find(name) else {
        bail!(
            "no tap named {name:?} (built in: synthetic, {})",
            observes_sources::registry::names()
        );
    };
    let matches = clap::Command::new(kind.name)
        .bin_name(format!("observes tap {}", kind.name))
        .about(kind.about)
        .arg(
            clap::Arg::new("config")
                .long("config")
                .value_parser(clap::value_parser!(PathBuf))
                .help(format!(
                    "{} [default: {}.toml]",
                    kind.settings_help, kind.name
                )),
        )
        .arg(
            clap::Arg::new("state")
                .long("state")
                .value_parser(clap::value_parser!(PathBuf))
                .help("A Singer state file to resume from."),
        )
        .try_get_matches_from(args)
        .unwrap_or_else(|e| e.exit());
    let config = matches
        .get_one::<PathBuf>("config")
        .cloned()
        .unwrap_or_else(|| PathBuf::from(format!("{}.toml", kind.name)));
    // Relative paths in the settings start at the file's folder.
    let dir = observes_pipeline::config::absolute_dir(&config)?;
    let source = (kind.build)(&observes_sources::Settings::File(config), &dir)?;
    run_builtin_tap(
        source.as_ref(),
        matches.get_one::<PathBuf>("state").cloned(),
    )
}

/// Runs a built-in source as a Singer tap: messages to stdout, flushed at every STATE so
/// a consumer can commit as it goes.
fn run_builtin_tap(source: &dyn observes_sources::Source, state: Option<PathBuf>) -> Result<()> {
    let state = read_state(state)?;
    let stdout = std::io::stdout().lock();
    let mut writer = MessageWriter::new(std::io::BufWriter::with_capacity(1 << 16, stdout));
    let mut write_error = None;
    let mut sink = |message: Message| {
        let is_state = matches!(message, Message::State(_));
        let written =
            writer
                .write(&message)
                .and_then(|()| if is_state { writer.flush() } else { Ok(()) });
        match written {
            Ok(()) => true,
            Err(e) => {
                write_error = Some(e);
                false
            }
        }
    };
    let rt = runtime()?;
    let result = rt.block_on(source.run(state.as_ref(), &mut sink));
    if let Some(e) = write_error {
        return Err(e).context("writing to stdout");
    }
    result?;
    writer.flush().context("writing to stdout")?;
    Ok(())
}

fn fake_api(api: &str, port: u16, seed: u64) -> Result<()> {
    let kind = observes_fakes::find(api).with_context(|| format!("no fake named {api:?}"))?;
    let fake = (kind.start)(seed, port).with_context(|| format!("serving on 127.0.0.1:{port}"))?;
    for line in fake.describe() {
        println!("{line}");
    }
    fake.wait();
    Ok(())
}

fn compute_bills(
    config: &std::path::Path,
    month: observes_jobs::bills::Month,
    as_json: bool,
) -> Result<()> {
    let config = Config::load(config)?;
    let storage = StateStore::open(&config.storage)?;
    let mut warehouse = observes_warehouse::connect(&config.warehouse)?;
    let report =
        observes_jobs::bills::compute_bills(warehouse.as_mut(), &storage, &config.bills, month)?;
    if as_json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        let mut out = std::io::stdout().lock();
        for g in &report.groups {
            writeln!(out, "{}: {} active authors -> {}", g.group, g.actors, g.key)?;
        }
        for group in &report.unmapped_groups {
            writeln!(
                out,
                "warning: group {group:?} has no organization in [bills.groups]; billed alone"
            )?;
        }
        for key in &report.removed {
            writeln!(out, "removed {key} (no activity now)")?;
        }
    }
    Ok(())
}

fn mirror(config: &std::path::Path, group: Option<&str>, as_json: bool) -> Result<()> {
    use observes_jobs::mirror::Outcome;
    let path = config;
    let config = Config::load(path)?;
    let Some(settings) = &config.mirror else {
        bail!("{} has no [mirror] table", path.display());
    };
    let storage = StateStore::open(&config.storage)?;
    let report = observes_jobs::mirror::mirror(settings, &storage, group)?;
    if as_json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        let mut out = std::io::stdout().lock();
        for r in &report.repositories {
            let what = match (&r.outcome, &r.error) {
                (Outcome::Published, _) => format!("published ({} bytes)", r.bytes),
                (Outcome::Unchanged, _) => "unchanged".to_string(),
                (Outcome::Failed, e) => format!("FAILED: {}", e.as_deref().unwrap_or("")),
            };
            writeln!(out, "{}/{}: {what}", r.group, r.repository)?;
        }
        writeln!(
            out,
            "{} published, {} unchanged, {} failed",
            report.count(Outcome::Published),
            report.count(Outcome::Unchanged),
            report.count(Outcome::Failed)
        )?;
    }
    if report.count(Outcome::Failed) > 0 {
        bail!("{} repositories failed", report.count(Outcome::Failed));
    }
    Ok(())
}

fn cancel_ci_jobs(
    config: &std::path::Path,
    projects: Vec<String>,
    older_than: chrono::Duration,
    dry_run: bool,
    as_json: bool,
) -> Result<()> {
    use observes_sources::gitlab::{self, CancelOptions, CancelOutcome};
    let settings: gitlab::GitlabConfig = observes_sources::read_config(config)?;
    let projects = if projects.is_empty() {
        settings.projects.clone()
    } else {
        projects
    };
    if projects.is_empty() {
        bail!(
            "no project given (--project) and none in {}",
            config.display()
        );
    }
    let options = CancelOptions {
        projects,
        older_than,
        dry_run,
        now: chrono::Utc::now(),
    };
    let rt = runtime()?;
    let report = rt.block_on(gitlab::cancel_ci_jobs(&settings, &options))?;
    if as_json {
        let out = json!({
            "dry_run": dry_run,
            "cancelled": report.cancelled(),
            "would_cancel": report.would_cancel(),
            "already_finished": report.already_finished(),
            "failed": report.failed(),
            "jobs": report.jobs,
        });
        println!("{out}");
    } else {
        let mut out = std::io::stdout().lock();
        for job in &report.jobs {
            let what = match &job.outcome {
                CancelOutcome::Cancelled { status } => format!("cancelled ({status})"),
                CancelOutcome::WouldCancel => "would cancel".to_string(),
                CancelOutcome::AlreadyFinished { status } => format!("already finished ({status})"),
                CancelOutcome::Failed { error } => format!("FAILED: {error}"),
            };
            writeln!(
                out,
                "{} job {} {:?} {} since {}: {what}",
                job.project, job.id, job.name, job.status, job.created_at
            )?;
        }
        if dry_run {
            writeln!(
                out,
                "dry run: {} jobs would be cancelled",
                report.would_cancel()
            )?;
        } else {
            writeln!(
                out,
                "{} cancelled, {} already finished, {} failed",
                report.cancelled(),
                report.already_finished(),
                report.failed()
            )?;
        }
    }
    if report.failed() > 0 {
        bail!(
            "{} of {} jobs could not be cancelled",
            report.failed(),
            report.jobs.len()
        );
    }
    Ok(())
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
        writeln!(
            out,
            "{}",
            json!({"tables": tables, "mirror": summary.mirror, "bills": summary.bills})
        )?;
        return Ok(());
    }
    if let Some(mirror) = &summary.mirror {
        use observes_jobs::mirror::Outcome;
        writeln!(
            out,
            "\nMirror: {} published, {} unchanged, {} failed (in {})",
            mirror.count(Outcome::Published),
            mirror.count(Outcome::Unchanged),
            mirror.count(Outcome::Failed),
            summary.dir.join("storage/mirror").display()
        )?;
    }
    if let Some(bills) = &summary.bills {
        writeln!(out, "Bills for {}:", bills.month)?;
        for g in &bills.groups {
            writeln!(out, "  {:<40} {:>3} active authors", g.key, g.actors)?;
        }
    }
    writeln!(
        out,
        "\nTables in {}:",
        summary.dir.join("warehouse.duckdb").display()
    )?;
    // Empty tables (quarantine, child tables of fields the demo data leaves empty) would
    // bury the ones to look at; --json lists every table.
    let (filled, empty): (Vec<_>, Vec<_>) = summary.tables.iter().partition(|t| t.rows > 0);
    let width = filled
        .iter()
        .map(|t| t.schema.len() + 1 + t.table.len())
        .max()
        .unwrap_or(0)
        .max(40);
    for t in &filled {
        writeln!(
            out,
            "  {:<width$} {:>8} rows",
            format!("{}.{}", t.schema, t.table),
            t.rows
        )?;
    }
    if !empty.is_empty() {
        writeln!(
            out,
            "  and {} empty tables (_observes_rejects, child tables of fields the demo data leaves empty; --json lists them)",
            empty.len()
        )?;
    }
    writeln!(
        out,
        "\nRun it again to see incremental loads; edit {} to change the pipelines.",
        summary.config.display()
    )?;
    Ok(())
}

fn target(warehouse: &str, config: LoadConfig) -> Result<()> {
    let mut wh = observes_warehouse::connect_pipelined(warehouse)?;
    let mut loader = Loader::begin(wh.as_mut(), config)?;
    let mut stream = MessageStream::from_reader(std::io::stdin());
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
    let rt = runtime()?;
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
