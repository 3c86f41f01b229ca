//! `observes dashboard export NAME --format html|svg --out DIR`: the page as one HTML file,
//! or each chart panel as its own SVG file, the same charts the served page draws.

use std::path::{Path, PathBuf};

use crate::data::{run_panel, Params};
use crate::spec::{Dashboard, Kind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Html,
    Svg,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "html" => Ok(Format::Html),
            "svg" => Ok(Format::Svg),
            other => Err(format!("unknown format {other:?} (expected html or svg)")),
        }
    }
}

/// Writes the export; returns the files written. A panel whose query fails stops it with
/// the panel named.
pub fn export(
    wh: &mut dyn observes_warehouse::Warehouse,
    d: &Dashboard,
    params: &Params,
    format: Format,
    out: &Path,
) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut results = Vec::new();
    for panel in &d.panels {
        let data = run_panel(wh, d, panel, params)
            .map_err(|m| format!("dashboard {}, panel {:?}: {m}", d.name, panel.title))?;
        results.push(data);
    }
    let write = |path: PathBuf, text: String| {
        std::fs::write(&path, text)
            .map(|()| path.clone())
            .map_err(|e| format!("{}: {e}", path.display()))
    };
    match format {
        Format::Html => {
            let groups = Vec::new();
            let panels: Vec<_> = results.into_iter().map(Ok).collect();
            let html = crate::page::dashboard(d, params, &groups, &panels, false);
            Ok(vec![write(out.join(format!("{}.html", d.name)), html)?])
        }
        Format::Svg => {
            let mut files = Vec::new();
            for (i, (panel, data)) in d.panels.iter().zip(&results).enumerate() {
                if matches!(panel.kind, Kind::Line | Kind::Bar | Kind::StackedBar) {
                    let svg = crate::chart::svg(panel, data);
                    files.push(write(out.join(format!("{}-{i}.svg", d.name)), svg)?);
                }
            }
            Ok(files)
        }
    }
}
