//! The command line's arguments (clap), apart from what runs them.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use observes_load::{OnInvalid, WriteMode};

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
pub(crate) struct Cli {
    /// Log format on stderr (the image sets json, for CloudWatch).
    #[arg(long, global = true, value_enum, env = "OBSERVES_LOG_FORMAT", default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
    /// Log level filter (tracing syntax, e.g. `info`, `observes_load=debug`).
    #[arg(long, global = true, env = "OBSERVES_LOG", default_value = "info")]
    pub(crate) log: String,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Run a pipeline from observes.toml (or `run demo` for the self-contained demo).
    Run {
        /// The pipeline's name; `demo` runs the demo in --dir unless the config names a
        /// pipeline `demo`.
        name: String,
        /// The config file.
        #[arg(long, env = "OBSERVES_CONFIG", default_value = "observes.toml")]
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
        /// STATE commits as it comes; default: the warehouse's, 491520 for DuckDB,
        /// PostgreSQL and Redshift) ...
        #[arg(long)]
        commit_records: Option<u64>,
        /// ... or once this many bytes of normalized rows did, such as 256MB or 1GiB
        /// (default: the warehouse's, 256MiB for DuckDB, PostgreSQL and Redshift) ...
        #[arg(long, value_parser = observes_pipeline::config::parse_size)]
        commit_bytes: Option<u64>,
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
        /// The API: a built-in source's, or `rest` with --definition.
        #[arg(value_parser = clap::builder::PossibleValuesParser::new(observes_fakes::FAKES.iter().map(|k| k.name).chain(["rest"])))]
        api: String,
        /// rest: the definition whose API to fake (its paths, auth and paginator).
        #[arg(long, required_if_eq("api", "rest"))]
        definition: Option<PathBuf>,
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Seed of the generated data.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// A fault to serve, PATH=FAULT[*TIMES]: the next TIMES (default 1) requests whose
        /// path and query contain PATH get FAULT, a status (429 comes with Retry-After: 1),
        /// `reset` (the connection drops mid-body) or `truncated` (a JSON body cut short).
        /// Repeatable: --fault /errors=503*3 --fault /events=reset
        #[arg(long = "fault", value_name = "PATH=FAULT[*TIMES]", value_parser = str::parse::<observes_fakes::FaultRule>)]
        faults: Vec<observes_fakes::FaultRule>,
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
    /// Declarative REST sources: definitions of a service's client and streams in TOML.
    Source {
        #[command(subcommand)]
        action: SourceAction,
    },
    /// AWS Batch: a job definition per job of the catalogue.
    Batch {
        #[command(subcommand)]
        action: BatchAction,
    },
    /// AWS: what the configured jobs need of it.
    Aws {
        #[command(subcommand)]
        action: AwsAction,
    },
}

#[derive(Subcommand)]
pub(crate) enum SourceAction {
    /// Check a REST source's definition whole: its TOML, paginator, JSON pointers,
    /// placeholders and parents. An error names the file, the line and what to write.
    Check {
        /// The definition file.
        definition: PathBuf,
    },
}

#[derive(Subcommand)]
pub(crate) enum BatchAction {
    /// Print the job definitions of the catalogue (one per job: the image, its size,
    /// retries, timeout, log configuration, tags and secrets as references), or with
    /// --apply register those whose latest active revision differs. Needs [queue] image.
    Definitions {
        /// Register the changed definitions with RegisterJobDefinition.
        #[arg(long)]
        apply: bool,
        /// With --apply: one JSON line per definition.
        #[arg(long)]
        json: bool,
        #[arg(long, env = "OBSERVES_CONFIG", default_value = "observes.toml")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
pub(crate) enum AwsAction {
    /// Print the IAM policy documents the configured jobs need (the job role, the
    /// execution role, Redshift's COPY role), derived from the config.
    Policy {
        /// The AWS account's id, for ARNs (default: *).
        #[arg(long)]
        account: Option<String>,
        #[arg(long, env = "OBSERVES_CONFIG", default_value = "observes.toml")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
pub(crate) enum DashboardAction {
    /// Serve the dashboards as web pages (charts drawn as SVG, a CSV per panel), to whom
    /// [dashboards.access] in observes.toml lets in.
    Serve {
        #[arg(long, default_value = "127.0.0.1:8787")]
        addr: std::net::SocketAddr,
        /// Seconds a panel's query may take before its panel says so.
        #[arg(long, default_value_t = 30.0)]
        timeout: f64,
        /// Serve a non-loopback address with [dashboards.access] off (anyone who reaches
        /// the port reads every dashboard).
        #[arg(long)]
        insecure: bool,
        #[command(flatten)]
        place: DashboardPlace,
    },
    /// Print the argon2 hash of a token or password read from standard input, for a
    /// user's `hash` in [dashboards.access] (the secret never goes on the command line).
    Hash,
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
    /// Write a dashboard as one HTML file, one SVG per chart, or a PNG of the whole page as
    /// a window --width px wide shows it (needs Chromium), for reports.
    Export {
        name: String,
        #[arg(long, default_value = "html", value_parser = parse_export_format)]
        format: observes_dashboards::export::Format,
        #[arg(long)]
        out: PathBuf,
        /// A PNG's window width in px: the whole page, as that window lays it out (390 for
        /// a phone).
        #[arg(long, default_value_t = 1280, value_parser = clap::value_parser!(u32).range(320..=3840))]
        width: u32,
        #[command(flatten)]
        range: DashboardRange,
        #[command(flatten)]
        place: DashboardPlace,
    },
    /// Check the thresholds of a dashboard's number panels (`alert = { above = N }`) and
    /// post the breaches to a webhook (Slack-compatible), once per range: a breach
    /// already posted for the same range is not posted again.
    Alert {
        name: String,
        /// Where breaches go (from the environment: a webhook URL is a secret).
        #[arg(long, env = "OBSERVES_ALERT_WEBHOOK", hide_env_values = true)]
        webhook: Option<String>,
        /// The served dashboards' base URL, for a link in the message.
        #[arg(long)]
        link: Option<String>,
        /// One JSON object on stdout: the panels checked, what was posted.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        range: DashboardRange,
        #[command(flatten)]
        place: DashboardPlace,
    },
    /// Post a dashboard's summary (each number panel's value and change, a link) to a
    /// webhook (Slack-compatible).
    Send {
        name: String,
        /// Where it goes (from the environment: a webhook URL is a secret).
        #[arg(long, env = "OBSERVES_SEND_WEBHOOK", hide_env_values = true)]
        webhook: Option<String>,
        /// The served dashboards' base URL, for a link in the message.
        #[arg(long)]
        link: Option<String>,
        #[command(flatten)]
        range: DashboardRange,
        #[command(flatten)]
        place: DashboardPlace,
    },
}

/// The range and group a dashboard is read for.
#[derive(clap::Args)]
pub(crate) struct DashboardRange {
    /// First day (default: the dashboard's range ending today).
    #[arg(long)]
    pub(crate) start: Option<chrono::NaiveDate>,
    /// Last day, included.
    #[arg(long)]
    pub(crate) end: Option<chrono::NaiveDate>,
    /// The group filter's value (default: everything).
    #[arg(long, default_value = "")]
    pub(crate) group: String,
}

pub(crate) fn parse_on_missing_key(s: &str) -> Result<observes_load::OnMissingKey, String> {
    s.parse()
}

pub(crate) fn parse_untyped(s: &str) -> Result<observes_load::Untyped, String> {
    s.parse()
}

pub(crate) fn parse_export_format(s: &str) -> Result<observes_dashboards::export::Format, String> {
    s.parse()
}

/// Where the dashboards and the warehouse are.
#[derive(clap::Args)]
pub(crate) struct DashboardPlace {
    /// The config file (its warehouse).
    #[arg(long, env = "OBSERVES_CONFIG", default_value = "observes.toml")]
    pub(crate) config: PathBuf,
    /// The folder of dashboard files (default: dashboards/ beside the config).
    #[arg(long)]
    pub(crate) dir: Option<PathBuf>,
}

#[derive(Subcommand)]
pub(crate) enum ScheduleAction {
    /// Print the next fire times of a job (of every scheduled job without NAME).
    Next {
        name: Option<String>,
        #[arg(short = 'n', long, default_value_t = 5)]
        count: usize,
        /// Start from this instant (RFC 3339) instead of now.
        #[arg(long)]
        after: Option<chrono::DateTime<chrono::Utc>>,
        #[arg(long, env = "OBSERVES_CONFIG", default_value = "observes.toml")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
pub(crate) enum SchedulerAction {
    /// Submit every run due since the last tick (overlapping or repeated ticks never
    /// submit twice; missed runs follow each job's catch_up).
    Tick {
        /// Show what would be submitted; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Tick as of this instant (RFC 3339) instead of now.
        #[arg(long)]
        now: Option<chrono::DateTime<chrono::Utc>>,
        #[arg(long, env = "OBSERVES_CONFIG", default_value = "observes.toml")]
        config: PathBuf,
    },
    /// Tick, work the local queue, sleep; forever (the daemon form).
    Run {
        /// Seconds between ticks.
        #[arg(long, default_value_t = 60)]
        interval: u64,
        #[arg(long, env = "OBSERVES_CONFIG", default_value = "observes.toml")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
pub(crate) enum QueueAction {
    /// Every run in the queue, oldest first.
    List {
        #[arg(long)]
        json: bool,
        #[arg(long, env = "OBSERVES_CONFIG", default_value = "observes.toml")]
        config: PathBuf,
    },
    /// One run, with its attempts.
    Show {
        id: String,
        #[arg(long, env = "OBSERVES_CONFIG", default_value = "observes.toml")]
        config: PathBuf,
    },
    /// The logs of a run's attempts.
    Logs {
        id: String,
        /// Only this attempt.
        #[arg(long)]
        attempt: Option<u32>,
        #[arg(long, env = "OBSERVES_CONFIG", default_value = "observes.toml")]
        config: PathBuf,
    },
    /// Cancel a queued run (a running one is stopped by its worker).
    Cancel {
        id: String,
        #[arg(long, env = "OBSERVES_CONFIG", default_value = "observes.toml")]
        config: PathBuf,
    },
    /// Run what is queued until nothing is left, [queue] concurrency at a time.
    Work {
        #[arg(long)]
        concurrency: Option<usize>,
        #[arg(long, env = "OBSERVES_CONFIG", default_value = "observes.toml")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
pub(crate) enum Job {
    /// The catalogue: one line per job (name, schedule, size, queue, command).
    List {
        #[arg(long)]
        json: bool,
        #[arg(long, env = "OBSERVES_CONFIG", default_value = "observes.toml")]
        config: PathBuf,
    },
    /// One job of the catalogue, in full.
    Show {
        name: String,
        #[arg(long, env = "OBSERVES_CONFIG", default_value = "observes.toml")]
        config: PathBuf,
    },
    /// Run a job of the catalogue here and now (attempts and timeout apply), and record
    /// the run in the warehouse's observes._observes_job_runs.
    Run {
        name: String,
        #[arg(long, env = "OBSERVES_CONFIG", default_value = "observes.toml")]
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
        #[arg(long, env = "OBSERVES_CONFIG", default_value = "observes.toml")]
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
        #[arg(long, env = "OBSERVES_CONFIG", default_value = "observes.toml")]
        config: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Back up whole months of Time Doctor's worklogs (which its API forgets after about a
    /// year) to the `backup` location of the pipeline's Time Doctor settings: per month,
    /// worklogs/<YYYY-MM>.<sha>.singer.gz and its manifest worklogs/<YYYY-MM>.json, written
    /// last. The pipeline then reads the backed-up months before the API.
    TimedoctorBackup {
        /// One month: YYYY-MM or previous (default: the last full month, UTC).
        #[arg(long, value_parser = parse_month, conflicts_with_all = ["from", "to"])]
        month: Option<observes_jobs::bills::Month>,
        /// The first month of a range (a first fill of many months); with --to.
        #[arg(long, value_parser = parse_month, requires = "to")]
        from: Option<observes_jobs::bills::Month>,
        /// The last month of the range, included.
        #[arg(long, value_parser = parse_month, requires = "from")]
        to: Option<observes_jobs::bills::Month>,
        /// The pipeline whose Time Doctor settings (credentials, backup) are used.
        #[arg(long, default_value = "timedoctor")]
        pipeline: String,
        /// The config file.
        #[arg(long, env = "OBSERVES_CONFIG", default_value = "observes.toml")]
        config: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Start Zoho CRM bulk read exports (POST /crm/bulk/v2/read) for the modules the
    /// pipeline's Zoho settings read in bulk, ahead of the ETL: a module whose export is
    /// pending, or complete, fresh and not loaded yet, keeps it. Exports are recorded in
    /// the settings' bulk.jobs location. Bulk calls are spaced by bulk.calls_per_minute
    /// (default 10). The exit status is non-zero if any module failed.
    ZohoPrepare {
        /// Only this module; repeat for several (default: every module read in bulk).
        #[arg(long = "module")]
        modules: Vec<String>,
        /// The pipeline whose Zoho settings (credentials, modules, bulk) are used.
        #[arg(long, default_value = "zoho")]
        pipeline: String,
        /// The config file.
        #[arg(long, env = "OBSERVES_CONFIG", default_value = "observes.toml")]
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
        #[arg(long, env = "OBSERVES_CONFIG", default_value = "observes.toml")]
        config: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn parse_month(s: &str) -> Result<observes_jobs::bills::Month, String> {
    s.parse()
}

pub(crate) fn parse_age(s: &str) -> Result<chrono::Duration, String> {
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
pub(crate) enum Tap {
    /// Deterministic CI-job-like records (for benchmarks and tests).
    Synthetic {
        #[arg(long, default_value_t = 1000)]
        records: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 10_000)]
        checkpoint_every: u64,
        /// `narrow`: about 800 bytes of short strings a record; `wide`: GitLab's job
        /// records, about 1.3 KB, 37 columns, multi-line escaped text and non-ASCII.
        #[arg(long, default_value = "narrow")]
        shape: observes_pipeline::sources::synthetic::Shape,
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
pub(crate) enum StateAction {
    /// Print the pipeline's committed state (the warehouse's copy, else the state store's).
    Get {
        pipeline: String,
        #[arg(long, env = "OBSERVES_CONFIG", default_value = "observes.toml")]
        config: PathBuf,
    },
    /// Replace the pipeline's state with JSON given as an argument (or `-` for stdin).
    Set {
        pipeline: String,
        state: String,
        #[arg(long, env = "OBSERVES_CONFIG", default_value = "observes.toml")]
        config: PathBuf,
    },
    /// Forget the pipeline's state: the next run starts from the beginning.
    Clear {
        pipeline: String,
        #[arg(long, env = "OBSERVES_CONFIG", default_value = "observes.toml")]
        config: PathBuf,
    },
}

pub(crate) fn parse_write_mode(s: &str) -> Result<WriteMode, String> {
    s.parse()
}

pub(crate) fn parse_on_invalid(s: &str) -> Result<OnInvalid, String> {
    s.parse()
}

pub(crate) fn parse_schema_change(s: &str) -> Result<observes_model::SchemaChangePolicy, String> {
    s.parse()
}

/// The command line, with `observes tap --help` listing the registered sources.
pub(crate) fn parse() -> Cli {
    use clap::{CommandFactory, FromArgMatches};
    let mut list = String::from("Built-in sources (observes tap NAME --help):\n");
    for kind in observes_sources::SOURCES {
        list.push_str(&format!("  {:<12}{}\n", kind.name, kind.about));
    }
    list.push_str(&format!(
        "  {:<12}{}\n",
        "rest", "Any service a REST definition describes (--config CFG.toml; sources/rest/)."
    ));
    let command = Cli::command().mut_subcommand("tap", |tap| tap.after_help(list));
    let matches = command.get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}
