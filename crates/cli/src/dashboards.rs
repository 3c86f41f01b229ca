//! `observes dashboard serve|list|check|export|alert|send|hash`, wired.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use observes_app::Config;
use observes_dashboards::access::AccessMode;
use observes_dashboards::data::Params;
use observes_dashboards::Dashboard;

use crate::args::{DashboardAction, DashboardPlace, DashboardRange};

fn place(p: &DashboardPlace) -> Result<(Config, PathBuf)> {
    let config = Config::load(&p.config)?;
    let dir = p
        .dir
        .clone()
        .unwrap_or_else(|| config.base().join("dashboards"));
    Ok((config, dir))
}

/// The dashboard `name` and the config it is read with.
fn one(p: &DashboardPlace, name: &str) -> Result<(Config, Dashboard)> {
    let (config, dir) = place(p)?;
    let mut all = observes_dashboards::load_dir(&dir)?;
    let known = all.keys().cloned().collect::<Vec<_>>().join(", ");
    let Some(d) = all.remove(name) else {
        bail!(
            "no dashboard named {name:?} in {} (known: {known})",
            dir.display()
        );
    };
    Ok((config, d))
}

/// The dashboard `name`, the parameters `range` asks for, and its warehouse, open.
fn one_on_its_warehouse(
    p: &DashboardPlace,
    name: &str,
    range: DashboardRange,
) -> Result<(
    Config,
    Dashboard,
    Params,
    Box<dyn observes_warehouse::Warehouse>,
)> {
    let (config, d) = one(p, name)?;
    let params = params(&d, range);
    let wh = observes_warehouse::connect(&config.warehouse)?;
    Ok((config, d, params, wh))
}

/// The parameters `range` asks for, the dashboard's defaults where it is silent.
fn params(d: &Dashboard, range: DashboardRange) -> Params {
    let mut params = Params::default_for(d, chrono::Utc::now().date_naive());
    if let Some(s) = range.start {
        params.start = s;
    }
    if let Some(e) = range.end {
        params.end = e;
    }
    params.group = range.group;
    params
}

pub(crate) fn run(action: DashboardAction) -> Result<()> {
    match action {
        DashboardAction::List { place: p } => {
            let (_, dir) = place(&p)?;
            for (name, d) in observes_dashboards::load_dir(&dir)? {
                println!("{name}\t{}", d.title);
            }
            Ok(())
        }
        DashboardAction::Check { name, place: p } => {
            let (config, dir) = place(&p)?;
            let all = observes_dashboards::load_dir(&dir)?;
            let mut wh = observes_warehouse::connect(&config.warehouse)?;
            let today = chrono::Utc::now().date_naive();
            for (n, d) in &all {
                if name.as_deref().is_some_and(|only| only != n) {
                    continue;
                }
                observes_dashboards::data::validate(
                    wh.as_mut(),
                    d,
                    &Params::default_for(d, today),
                )?;
                println!("{n}: {} panels ok", d.panels.len());
            }
            Ok(())
        }
        DashboardAction::Export {
            name,
            format,
            out,
            width,
            range,
            place: p,
        } => {
            let (_, d, params, mut wh) = one_on_its_warehouse(&p, &name, range)?;
            let files =
                observes_dashboards::export::export(wh.as_mut(), &d, &params, format, width, &out)
                    .map_err(anyhow::Error::msg)?;
            for f in files {
                println!("{}", f.display());
            }
            Ok(())
        }
        DashboardAction::Serve {
            addr,
            timeout,
            insecure,
            place: p,
        } => {
            let (config, dir) = place(&p)?;
            observes_dashboards::load_dir(&dir)?;
            let access = observes_dashboards::access::Access::new(&config.dashboard_access)
                .with_context(|| config.path.display().to_string())?;
            if access.mode() == AccessMode::Off && !addr.ip().is_loopback() && !insecure {
                bail!(
                    "refusing to serve dashboards on {addr} with access off: anyone who reaches it would read every dashboard and CSV. Set [dashboards.access] mode (token, basic or proxy) in {}, serve on 127.0.0.1, or pass --insecure",
                    config.path.display()
                );
            }
            let serve = observes_dashboards::server::ServeConfig {
                dashboards: dir,
                warehouse: config.warehouse.clone(),
                query_timeout: std::time::Duration::from_secs_f64(timeout.max(0.1)),
                access: std::sync::Arc::new(access),
            };
            crate::runtime()?.block_on(async move {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("listening on {addr}"))?;
                eprintln!(
                    "dashboards at http://{} (access: {})",
                    listener.local_addr()?,
                    serve.access.mode()
                );
                observes_dashboards::server::serve(listener, serve)
                    .await
                    .context("serving")
            })
        }
        DashboardAction::Alert {
            name,
            webhook,
            link,
            json,
            range,
            place: p,
        } => {
            use observes_dashboards::alert;
            let (config, d, params, mut wh) = one_on_its_warehouse(&p, &name, range)?;
            let checked = alert::evaluate(wh.as_mut(), &d, &params).map_err(anyhow::Error::msg)?;
            drop(wh);
            let period = alert::period(&params);
            let store = observes_state::StateStore::open(&config.state)?;
            let key = format!("_dashboards/alerts/{name}");
            let mut posted: alert::Posted = match store.wait(store.get(&key))? {
                Some(v) => serde_json::from_value(v).with_context(|| {
                    format!("the alerts posted for {name} ({key} in the state store)")
                })?,
                None => alert::Posted::default(),
            };
            let due = posted.due(&checked, &period);
            if !due.is_empty() {
                let Some(webhook) = webhook else {
                    bail!(
                        "{name}: {} to post and no webhook: set OBSERVES_ALERT_WEBHOOK",
                        if due.len() == 1 {
                            "1 breach".to_string()
                        } else {
                            format!("{} breaches", due.len())
                        }
                    );
                };
                crate::post_to_webhook(
                    &webhook,
                    alert::alert_message(&d, &params, &due, link.as_deref()).to_string(),
                )?;
                posted.record(&due, &period);
                store.wait(store.put(&key, &serde_json::to_value(&posted)?))?;
            }
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "dashboard": name,
                        "period": period,
                        "checked": checked,
                        "posted": due.iter().map(|c| &c.panel).collect::<Vec<_>>(),
                    })
                );
            } else {
                for c in &checked {
                    let state = match &c.breach {
                        None => "within bounds".to_string(),
                        Some(b) if due.iter().any(|d| d.panel == c.panel) => format!("{b}: posted"),
                        Some(b) => format!("{b}: already posted for {period}"),
                    };
                    println!("{name}: {} is {} ({state})", c.panel, c.shown);
                }
                if checked.is_empty() {
                    println!("{name}: no panel has an alert");
                }
            }
            Ok(())
        }
        DashboardAction::Send {
            name,
            webhook,
            link,
            range,
            place: p,
        } => {
            let Some(webhook) = webhook else {
                bail!("no webhook to send {name} to: set OBSERVES_SEND_WEBHOOK");
            };
            let (_, d, params, mut wh) = one_on_its_warehouse(&p, &name, range)?;
            let tiles = observes_dashboards::alert::tiles(wh.as_mut(), &d, &params)
                .map_err(anyhow::Error::msg)?;
            drop(wh);
            crate::post_to_webhook(
                &webhook,
                observes_dashboards::alert::summary_message(&d, &params, &tiles, link.as_deref())
                    .to_string(),
            )?;
            println!("{name}: sent ({} figures)", tiles.len());
            Ok(())
        }
        DashboardAction::Hash => {
            let mut secret = String::new();
            std::io::stdin()
                .read_line(&mut secret)
                .context("reading the secret from standard input")?;
            let secret = secret.trim_end_matches(['\r', '\n']);
            if secret.is_empty() {
                bail!(
                    "no secret on standard input (printf %s \"$TOKEN\" | observes dashboard hash)"
                );
            }
            println!(
                "{}",
                observes_dashboards::access::hash_secret(secret).map_err(anyhow::Error::msg)?
            );
            Ok(())
        }
    }
}
