//! `observes dashboard export NAME --format html|svg|png --out DIR`: the page as one HTML
//! file, each chart panel as its own SVG file of 960 px (the same marks the served page
//! draws), or the whole page as a PNG at a window width, rendered by headless Chromium
//! (`OBSERVES_CHROMIUM`, else `chromium` on the PATH).

use std::path::{Path, PathBuf};

use crate::data::{run_panel, Params};
use crate::spec::{Dashboard, Kind};

/// What a dashboard is exported as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One self-contained HTML page.
    Html,
    /// One SVG image.
    Svg,
    /// One PNG image.
    Png,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "html" => Ok(Format::Html),
            "svg" => Ok(Format::Svg),
            "png" => Ok(Format::Png),
            other => Err(format!(
                "unknown format {other:?} (expected html, svg or png)"
            )),
        }
    }
}

/// Writes the export; returns the files written. A PNG shows the whole page as a window
/// `width` px wide shows it. A panel whose query fails stops it with the panel named.
pub fn export(
    wh: &mut dyn observes_warehouse::Warehouse,
    d: &Dashboard,
    params: &Params,
    format: Format,
    width: u32,
    out: &Path,
) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut results = Vec::new();
    for panel in &d.panels {
        let data = run_panel(wh, panel, params)
            .map_err(|m| format!("dashboard {}, panel {:?}: {m}", d.name, panel.title))?;
        results.push(data);
    }
    let write = |path: PathBuf, text: String| {
        std::fs::write(&path, text)
            .map(|()| path.clone())
            .map_err(|e| format!("{}: {e}", path.display()))
    };
    match format {
        Format::Html | Format::Png => {
            let groups = Vec::new();
            let panels: Vec<_> = results.into_iter().map(Ok).collect();
            let html = crate::page::dashboard(d, params, &groups, &panels, false);
            if format == Format::Html {
                return Ok(vec![write(out.join(format!("{}.html", d.name)), html)?]);
            }
            let png = out.join(format!("{}.png", d.name));
            page_png(&html, width, &png)?;
            Ok(vec![png])
        }
        Format::Svg => {
            let mut files = Vec::new();
            for (i, (panel, data)) in d.panels.iter().zip(&results).enumerate() {
                if matches!(panel.kind, Kind::Line | Kind::Bar | Kind::StackedBar) {
                    let svg = crate::chart::standalone_svg(panel, data, 960.0);
                    files.push(write(out.join(format!("{}-{i}.svg", d.name)), svg)?);
                }
            }
            Ok(files)
        }
    }
}

/// The browser that renders PNGs.
pub fn chromium() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("OBSERVES_CHROMIUM") {
        return Ok(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser", "google-chrome"] {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err("a PNG export needs Chromium: install it (Debian: apt-get install chromium) or set OBSERVES_CHROMIUM".into())
}

/// Renders a page (a file or a URL) to a PNG of `size` with headless Chromium.
pub fn screenshot(page: &Path, png: &Path, size: (u32, u32)) -> Result<(), String> {
    let target = if page.to_string_lossy().contains("://") {
        page.to_string_lossy().into_owned()
    } else {
        let absolute =
            std::fs::canonicalize(page).map_err(|e| format!("{}: {e}", page.display()))?;
        format!("file://{}", absolute.display())
    };
    load_page(&target, size, Some(png))?;
    if !png.is_file() {
        return Err(format!("Chromium wrote no screenshot of {target}"));
    }
    Ok(())
}

/// A PNG of a whole page (no scrolling cut) as a window `width` px wide shows it: the
/// page is measured first, then shown in a frame of its full height.
pub fn page_png(html: &str, width: u32, png: &Path) -> Result<(), String> {
    let work = tempfile_dir()?;
    let result = (|| {
        let measured = crate::inspect::measure(html, (width, 900), &work)?;
        let size = (width, (measured.height.ceil() as u32).clamp(200, 20_000));
        let page = work.join("page.html");
        std::fs::write(&page, crate::inspect::framed(html, size))
            .map_err(|e| format!("{}: {e}", page.display()))?;
        screenshot(&page, png, size)
    })();
    let _ = std::fs::remove_dir_all(&work);
    result
}

/// What headless Chromium made of a page.
#[derive(Debug, Clone)]
pub struct LoadedPage {
    /// The DOM after loading (empty when a screenshot was taken instead).
    pub dom: String,
    /// What its log says went wrong: console output, failed loads, network errors.
    pub complaints: Vec<String>,
}

/// Loads `target` (a URL) in headless Chromium with a throwaway profile, at `size`;
/// dumps its DOM, or writes a screenshot to `screenshot`.
pub fn load_page(
    target: &str,
    size: (u32, u32),
    screenshot: Option<&Path>,
) -> Result<LoadedPage, String> {
    let profile = tempfile_dir()?;
    let mut cmd = std::process::Command::new(chromium()?);
    cmd.args([
        "--headless",
        "--disable-gpu",
        "--no-sandbox",
        "--hide-scrollbars",
        "--enable-logging=stderr",
        "--v=0",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .arg(format!("--window-size={},{}", size.0, size.1));
    match screenshot {
        Some(png) => cmd.arg(format!("--screenshot={}", png.display())),
        None => cmd.arg("--dump-dom"),
    };
    let out = cmd
        .arg(target)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("starting Chromium: {e}"));
    let _ = std::fs::remove_dir_all(&profile);
    let out = out?;
    let log = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!(
            "Chromium could not render {target}: {}",
            log.lines().last().unwrap_or("")
        ));
    }
    Ok(LoadedPage {
        dom: String::from_utf8_lossy(&out.stdout).into_owned(),
        complaints: log
            .lines()
            .filter(|l| {
                // Chromium prints console messages as `INFO:CONSOLE:<line>] …`.
                l.contains(":CONSOLE")
                    || l.contains("Failed to load resource")
                    || l.contains("net::ERR_")
            })
            .map(str::to_string)
            .collect(),
    })
}

/// A fresh folder for a browser profile.
fn tempfile_dir() -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!(
        "observes-chromium-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}
