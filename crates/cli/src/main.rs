//! `observes`: the command line. It parses arguments, sets up logging and calls into the
//! crates; no loading logic lives here.

#![warn(missing_docs, unreachable_pub)]

mod args;
mod aws;
mod dashboards;
mod jobs;
mod loads;
mod scheduling;
mod state;
mod taps;

use std::process::ExitCode;

use anyhow::Result;
use observes_load::LoadConfig;

use args::{
    AwsAction, BatchAction, Command, LogFormat, QueueAction, ScheduleAction, SchedulerAction,
    SourceAction,
};

// Records are allocated on the reader thread and freed on the loader thread; glibc's
// allocator serializes that on its arena locks, mimalloc does not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    disable_transparent_huge_pages();
    let cli = args::parse();
    init_logging(cli.log_format, &cli.log);
    match dispatch(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", observes_runtime::chain(e.as_ref()));
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

fn dispatch(command: Command) -> Result<()> {
    match command {
        Command::Run {
            name,
            config,
            dir,
            json,
        } => loads::run(&name, &config, &dir, json),
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
            commit_bytes,
            commit_seconds,
        } => loads::target(
            &warehouse,
            LoadConfig {
                write_mode,
                on_invalid,
                on_schema_change,
                on_missing_key,
                untyped,
                commit: observes_pipeline::config::commit_policy(
                    commit_records,
                    commit_bytes,
                    Some(commit_seconds),
                )
                .map_err(anyhow::Error::msg)?,
                ..LoadConfig::new(&pipeline, &schema)
            },
        ),
        Command::Tap { tap } => taps::tap(tap),
        Command::FakeApi {
            api,
            definition,
            port,
            seed,
            faults,
        } => match definition {
            Some(definition) if api == "rest" => taps::fake_rest(&definition, port, seed, &faults),
            _ => taps::fake_api(&api, port, seed, &faults),
        },
        Command::SampleRepo {
            path,
            commits,
            seed,
            merge_every,
        } => taps::sample_repo(&path, commits, seed, merge_every),
        Command::State { action } => state::state(action),
        Command::Job { job } => jobs::job(job),
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
        Command::Source {
            action: SourceAction::Check { definition },
        } => taps::source_check(&definition),
        Command::Batch {
            action:
                BatchAction::Definitions {
                    apply,
                    json,
                    config,
                },
        } => aws::batch_definitions(&config, apply, json),
        Command::Aws {
            action: AwsAction::Policy { account, config },
        } => aws::policy(&config, account.as_deref()),
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
pub(crate) fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    Ok(observes_state::runtime()?)
}

/// POSTs a JSON body to a webhook with the one HTTP client (retries on 429 and 5xx).
pub(crate) fn post_to_webhook(url: &str, json: String) -> Result<()> {
    let client = observes_http::HttpClient::new(observes_http::HttpConfig::default())?;
    runtime()?
        .block_on(client.send(|c| {
            c.post(url)
                .header("content-type", "application/json")
                .body(json.clone())
        }))
        // Not the error itself: a webhook URL often is its own secret.
        .map_err(|_| anyhow::anyhow!("posting to the webhook failed"))?;
    Ok(())
}
