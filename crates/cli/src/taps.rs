//! `observes tap …`, `observes fake-api …` and `observes sample-repo …`: Singer taps on
//! stdout, fakes of the APIs, sample repositories.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use observes_pipeline::sources::synthetic::{self, SyntheticConfig};
use observes_singer::{Message, MessageWriter};
use serde_json::Value;

use crate::args::Tap;
use crate::runtime;

/// `observes tap …`.
pub(crate) fn tap(tap: Tap) -> Result<()> {
    match tap {
        Tap::Builtin(args) => builtin_tap(&args),
        Tap::Synthetic {
            records,
            seed,
            checkpoint_every,
            shape,
            state,
        } => {
            let state = read_state(state)?;
            let config = SyntheticConfig {
                records,
                seed,
                checkpoint_every,
                shape,
            };
            let stdout = std::io::stdout().lock();
            let mut writer = MessageWriter::new(std::io::BufWriter::with_capacity(1 << 20, stdout));
            for message in synthetic::messages(&config, synthetic::position(state.as_ref())) {
                writer.write(&message).context("writing to stdout")?;
            }
            writer.flush().context("writing to stdout")?;
            Ok(())
        }
    }
}

/// `observes sample-repo PATH`.
pub(crate) fn sample_repo(
    path: &std::path::Path,
    commits: usize,
    seed: u64,
    merge_every: usize,
) -> Result<()> {
    if path.exists() {
        bail!("{} exists already", path.display());
    }
    let spec = observes_sources::code::sample::SampleRepo {
        commits,
        seed,
        merge_every,
        ..Default::default()
    };
    observes_sources::code::sample::build(path, &spec)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    println!("{}: {commits} commits", path.display());
    Ok(())
}

pub(crate) fn read_state(path: Option<PathBuf>) -> Result<Option<Value>> {
    let Some(path) = path else { return Ok(None) };
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let state = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not JSON", path.display()))?;
    Ok(Some(state))
}

/// `observes tap NAME …` for a source of the registry: its own arguments, read here.
pub(crate) fn builtin_tap(args: &[String]) -> Result<()> {
    let name = args.first().map(String::as_str).unwrap_or_default();
    if name == "rest" {
        return rest_tap(args);
    }
    let Some(kind) = observes_sources::registry::find(name) else {
        bail!(
            "no tap named {name:?} (built in: synthetic, {}, rest)",
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
        .arg(state_arg())
        .try_get_matches_from(args)
        .unwrap_or_else(|e| e.exit());
    let config = matches
        .get_one::<PathBuf>("config")
        .cloned()
        .unwrap_or_else(|| PathBuf::from(format!("{}.toml", kind.name)));
    // Relative paths in the settings start at the file's folder.
    let dir = observes_app::absolute_dir(&config)?;
    let source = (kind.build)(&observes_sources::Settings::File(config), &dir)?;
    run_builtin_tap(
        source.as_ref(),
        matches.get_one::<PathBuf>("state").cloned(),
    )
}

/// A tap's `--state FILE`.
fn state_arg() -> clap::Arg {
    clap::Arg::new("state")
        .long("state")
        .value_parser(clap::value_parser!(PathBuf))
        .help("A Singer state file to resume from.")
}

/// Runs a built-in source as a Singer tap: messages to stdout, flushed at every STATE so
/// a consumer can commit as it goes.
pub(crate) fn run_builtin_tap(
    source: &dyn observes_sources::Source,
    state: Option<PathBuf>,
) -> Result<()> {
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

pub(crate) fn fake_api(
    api: &str,
    port: u16,
    seed: u64,
    faults: &[observes_fakes::FaultRule],
) -> Result<()> {
    let kind = observes_fakes::find(api).with_context(|| format!("no fake named {api:?}"))?;
    let fake = (kind.start)(seed, port).with_context(|| format!("serving on 127.0.0.1:{port}"))?;
    // Armed before its address is out, so no request can come first.
    inject(fake.server(), faults);
    for line in fake.describe() {
        println!("{line}");
    }
    fake.wait();
    Ok(())
}

/// Arms the `--fault`s, each said on stdout (before the settings that lead to the fake).
fn inject(server: &observes_fakes::Server, faults: &[observes_fakes::FaultRule]) {
    for rule in faults {
        println!(
            "fault: the next {} request(s) with {:?} get {}",
            rule.times, rule.path_contains, rule.fault
        );
        server.inject(&rule.path_contains, rule.fault.clone(), rule.times);
    }
}

/// `observes fake-api rest --definition DEF.toml`: generated records served as the
/// definition says, with the settings `observes tap rest` needs to reach them.
pub(crate) fn fake_rest(
    definition: &std::path::Path,
    port: u16,
    seed: u64,
    faults: &[observes_fakes::FaultRule],
) -> Result<()> {
    let parsed = observes_sources::rest::Definition::load(definition)?;
    let fake = observes_fakes::rest::FakeRest::start(parsed, seed, port, 5)
        .with_context(|| format!("serving on 127.0.0.1:{port}"))?;
    let absolute = std::path::absolute(definition)?;
    inject(&fake.server, faults);
    println!("fake of {} at {}", definition.display(), fake.base_url());
    println!("a config for `observes tap rest --config FILE` (or a pipeline's config):");
    print!("{}", fake.settings(&absolute.display().to_string()));
    use std::io::Write;
    std::io::stdout().flush()?;
    fake.server.wait();
    Ok(())
}

/// `observes source check DEF.toml`.
pub(crate) fn source_check(definition: &std::path::Path) -> Result<()> {
    use std::io::Write;
    let d = observes_sources::rest::Definition::load(definition)?;
    let streams: Vec<String> = d
        .streams
        .iter()
        .map(|s| match &s.parent {
            Some(parent) => format!("{} (per {})", s.name.get_ref(), parent.get_ref()),
            None => s.name.get_ref().clone(),
        })
        .collect();
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}: {}", definition.display(), d.about)?;
    writeln!(out, "streams: {}", streams.join(", "))?;
    let settings: Vec<String> = d
        .settings
        .iter()
        .map(|(name, what)| format!("{name} ({what})"))
        .collect();
    writeln!(
        out,
        "settings: {}",
        if settings.is_empty() {
            "none".to_string()
        } else {
            settings.join(", ")
        }
    )?;
    Ok(())
}

/// `observes tap rest --config CFG.toml [--definition DEF.toml] [--state FILE]`: a REST
/// definition run as a Singer tap (not in the registry yet: it has no fake or demo).
fn rest_tap(args: &[String]) -> Result<()> {
    let matches = clap::Command::new("rest")
        .bin_name("observes tap rest")
        .about("A declarative REST source: the service a definition file describes.")
        .arg(
            clap::Arg::new("config")
                .long("config")
                .required(true)
                .value_parser(clap::value_parser!(PathBuf))
                .help(
                    "The values of the definition's [settings] (and `definition = \"DEF.toml\"`).",
                ),
        )
        .arg(
            clap::Arg::new("definition")
                .long("definition")
                .value_parser(clap::value_parser!(PathBuf))
                .help("The definition, instead of the config's `definition`."),
        )
        .arg(state_arg())
        .try_get_matches_from(args)
        .unwrap_or_else(|e| e.exit());
    let config_path = matches
        .get_one::<PathBuf>("config")
        .cloned()
        .unwrap_or_default();
    let text = std::fs::read_to_string(&config_path)
        .with_context(|| format!("reading {}", config_path.display()))?;
    let mut table: toml::Table = text
        .parse()
        .with_context(|| format!("{} is not TOML", config_path.display()))?;
    if let Some(definition) = matches.get_one::<PathBuf>("definition") {
        let absolute = std::path::absolute(definition)?;
        table.insert("definition".into(), absolute.display().to_string().into());
    }
    let config: observes_sources::rest::RestConfig =
        toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| {
                anyhow::anyhow!("{}: {}", config_path.display(), e.message())
            })?;
    let dir = observes_app::absolute_dir(&config_path)?;
    let source = observes_sources::rest::RestSource::new(config, &dir)?;
    run_builtin_tap(&source, matches.get_one::<PathBuf>("state").cloned())
}
