//! The HTML of the index and of a dashboard: one self-contained page (inline CSS, SVG
//! charts, no script), readable on a phone. The server and the HTML export share it.

use std::fmt::Write;

use crate::chart::{chart_html, escape, number_html, span, table_html};
use crate::data::{PanelData, Params};
use crate::spec::{Dashboard, Kind};

/// The page's style. The grid and its tiers follow [`crate::chart::TIERS`]: 4 columns
/// from 1,000 px, 2 from 640 px, 1 below; each tier shows its own x labels.
const STYLE: &str = "body{font-family:sans-serif;margin:0;background:#f5f6f8;color:#222}\
header{background:#1f3a5f;color:#fff;padding:12px 16px;font-size:15px}header a{color:#cfe0ff}\
header small{font-size:13px}\
main{padding:12px;max-width:1400px;margin:auto}\
form{display:flex;flex-wrap:wrap;gap:8px;align-items:end;margin-bottom:12px}\
label{display:flex;flex-direction:column;font-size:12px}input,select,button{font-size:14px}\
.panels{display:grid;grid-template-columns:repeat(4,minmax(0,1fr));gap:12px}\
.w1{grid-column:span 1}.w2{grid-column:span 2}.w3{grid-column:span 3}.w4{grid-column:span 4}\
.panel{background:#fff;border-radius:6px;padding:12px;box-shadow:0 1px 2px #0002;min-width:0}\
.panel h2{font-size:15px;margin:0 0 6px}.note{font-size:12px;color:#555;margin:0 0 6px}\
.tiles{grid-column:1/-1;display:flex;flex-wrap:wrap;gap:12px}\
.tile{flex:1 1 200px;background:#fff;border-radius:6px;padding:10px 12px;box-shadow:0 1px 2px #0002}\
.tile h2{font-size:13px;font-weight:normal;color:#444;margin:0 0 2px}\
.number .value{font-size:28px;font-weight:bold;display:block}.number .change{color:#555;font-size:12px}\
.error{color:#a11;background:#fee;padding:8px;border-radius:4px;font-size:13px;white-space:pre-wrap}\
.empty{color:#666;font-size:13px;margin:24px 0;text-align:center}\
.legend{list-style:none;margin:0 0 4px;padding:0;display:flex;flex-wrap:wrap;gap:4px 14px;font-size:12px;color:#333}\
.legend i{display:inline-block;width:10px;height:10px;margin-right:5px;border-radius:2px}\
svg.chart{display:block;margin-bottom:4px}svg.chart .y,svg.chart .x{fill:#555}\
.table{overflow-x:auto}table{border-collapse:collapse;font-size:13px;width:100%}\
td,th{padding:4px 8px;border-bottom:1px solid #eee;text-align:left;white-space:nowrap}\
th{color:#444;font-weight:600}.n{text-align:right;font-variant-numeric:tabular-nums}\
.csv{font-size:12px;margin-top:4px}.share{font-size:13px;align-self:center}ul.index li{margin:8px 0}\
@media (min-width:1000px){svg.chart .x:not(.ta){display:none}\
.panels>.w2.auto:not(.w2+.w2):not(:has(+.w2)){grid-column:span 4}}\
@media (min-width:640px) and (max-width:999.98px){.panels{grid-template-columns:repeat(2,minmax(0,1fr))}\
.w3,.w4{grid-column:span 2}svg.chart .x:not(.tb){display:none}}\
@media (max-width:639.98px){.panels{grid-template-columns:minmax(0,1fr)}.w1,.w2,.w3,.w4{grid-column:span 1}\
svg.chart .x:not(.tc){display:none}}";

fn head(title: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title><style>{STYLE}</style></head><body>",
        escape(title)
    )
}

/// The list of dashboards.
pub fn index(dashboards: &[&Dashboard]) -> String {
    let mut out = head("Observes dashboards");
    out.push_str("<header><strong>Observes</strong> dashboards</header><main><ul class=\"index\">");
    for d in dashboards {
        let _ = write!(
            out,
            "<li><a href=\"/d/{}\">{}</a><br><small>{}</small></li>",
            escape(&d.name),
            escape(&d.title),
            escape(&d.description)
        );
    }
    out.push_str("</ul></main></body></html>");
    out
}

/// The query string of a set of parameters.
pub fn query_string(params: &Params) -> String {
    let group: String = url::form_urlencoded::byte_serialize(params.group.as_bytes()).collect();
    format!("start={}&end={}&group={group}", params.start, params.end)
}

/// A dashboard with its panels' results (`Err`: the message shown on the panel).
/// `live`: a served page (form, CSV links); otherwise an export.
pub fn dashboard(
    d: &Dashboard,
    params: &Params,
    groups: &[String],
    panels: &[Result<PanelData, String>],
    live: bool,
) -> String {
    let mut page = Page::new(d, params, live);
    let mut out = page.top(groups);
    for result in panels {
        out.push_str(&page.section(result));
    }
    out.push_str(&page.end());
    out
}

/// A dashboard page written in order, so a server can send its top before the panels'
/// queries finish and each panel as its result comes: [`Page::top`], one
/// [`Page::section`] per panel, then [`Page::end`].
pub struct Page<'a> {
    d: &'a Dashboard,
    params: &'a Params,
    live: bool,
    next: usize,
    in_tiles: bool,
}

impl<'a> Page<'a> {
    /// A page of `d` for `params`; `live`: served (form, CSV links), otherwise an export.
    pub fn new(d: &'a Dashboard, params: &'a Params, live: bool) -> Page<'a> {
        Page {
            d,
            params,
            live,
            next: 0,
            in_tiles: false,
        }
    }

    /// The head, the title bar, the description and the parameters' form.
    pub fn top(&self, groups: &[String]) -> String {
        let (d, params, live) = (self.d, self.params, self.live);
        let mut out = head(&d.title);
        let _ = write!(
            out,
            "<header>{}<strong>{}</strong> <small>{} to {}</small></header><main>",
            if live {
                "<a href=\"/\">Dashboards</a> / "
            } else {
                ""
            },
            escape(&d.title),
            params.start,
            params.end
        );
        if !d.description.is_empty() {
            let _ = write!(out, "<p class=\"note\">{}</p>", escape(&d.description));
        }
        if live {
            let _ = write!(
                out,
                "<form method=\"get\"><label>From<input type=\"date\" name=\"start\" value=\"{}\"></label><label>To<input type=\"date\" name=\"end\" value=\"{}\"></label>",
                params.start, params.end
            );
            if let Some(g) = &d.parameters.group {
                let _ = write!(
                    out,
                    "<label>{}<select name=\"group\"><option value=\"\">All</option>",
                    escape(&g.label)
                );
                for choice in groups {
                    let _ = write!(
                        out,
                        "<option{} value=\"{}\">{}</option>",
                        if *choice == params.group {
                            " selected"
                        } else {
                            ""
                        },
                        escape(choice),
                        escape(choice)
                    );
                }
                out.push_str("</select></label>");
            }
            let _ = write!(
                out,
                "<button type=\"submit\">Show</button><a class=\"share\" href=\"/d/{}/export.html?{}\">Download the page</a></form>",
                escape(&d.name),
                escape(&query_string(params))
            );
        }
        out.push_str("<div class=\"panels\">");
        out
    }

    /// The next panel's section, with its result.
    pub fn section(&mut self, result: &Result<PanelData, String>) -> String {
        let (d, params, live) = (self.d, self.params, self.live);
        let i = self.next;
        self.next += 1;
        let Some(panel) = d.panels.get(i) else {
            return String::new();
        };
        let mut out = String::new();
        // Consecutive numbers make one row of tiles.
        let tile = panel.kind == Kind::Number;
        if tile != self.in_tiles {
            out.push_str(if tile {
                "<div class=\"tiles\">"
            } else {
                "</div>"
            });
            self.in_tiles = tile;
        }
        // `auto`: a width by default, which the grid may widen to fill a row it would
        // leave half empty.
        let auto = if panel.width.is_none() { " auto" } else { "" };
        let class = match (tile, result) {
            (true, _) => "tile".to_string(),
            (false, Ok(data)) => format!("panel w{}{auto}", span(panel, data)),
            (false, Err(_)) => format!("panel w{}{auto}", panel.width.unwrap_or(2).clamp(1, 4)),
        };
        let _ = write!(
            out,
            "<section class=\"{class}\" id=\"panel-{i}\"><h2>{}</h2>",
            escape(&panel.title)
        );
        if let Some(note) = &panel.note {
            let _ = write!(out, "<p class=\"note\">{}</p>", escape(note));
        }
        match result {
            Err(message) => {
                let _ = write!(out, "<div class=\"error\">{}</div>", escape(message));
            }
            Ok(data) => {
                out.push_str(&match panel.kind {
                    Kind::Line | Kind::Bar | Kind::StackedBar => chart_html(panel, data, params),
                    Kind::Table => table_html(panel, data),
                    Kind::Number => number_html(panel, data),
                });
                if live {
                    let (name, query) = (escape(&d.name), escape(&query_string(params)));
                    let _ = write!(
                        out,
                        "<div class=\"csv\"><a href=\"/d/{name}/panel/{i}.csv?{query}\">Download CSV</a>"
                    );
                    if matches!(panel.kind, Kind::Line | Kind::Bar | Kind::StackedBar) {
                        let _ = write!(
                            out,
                            " · <a href=\"/d/{name}/panel/{i}.svg?{query}\">SVG</a>"
                        );
                    }
                    out.push_str("</div>");
                }
            }
        }
        out.push_str("</section>");
        out
    }

    /// What closes the page.
    pub fn end(&self) -> String {
        let tiles = if self.in_tiles { "</div>" } else { "" };
        format!("{tiles}</div></main></body></html>")
    }
}
