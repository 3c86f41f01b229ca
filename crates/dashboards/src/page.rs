//! The HTML of the index and of a dashboard: one self-contained page (inline CSS, SVG
//! charts, no script), readable on a phone. The server and the HTML export share it.

use std::fmt::Write;

use crate::chart::{escape, number_html, svg, table_html};
use crate::data::{PanelData, Params};
use crate::spec::{Dashboard, Kind};

const STYLE: &str = "body{font-family:sans-serif;margin:0;background:#f5f6f8;color:#222}\
header{background:#1f3a5f;color:#fff;padding:12px 16px}header a{color:#cfe0ff}\
main{padding:12px;max-width:1400px;margin:auto}\
form{display:flex;flex-wrap:wrap;gap:8px;align-items:end;margin-bottom:12px}\
label{display:flex;flex-direction:column;font-size:12px}\
.panels{display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:12px}\
.panel{background:#fff;border-radius:6px;padding:10px;box-shadow:0 1px 2px #0002;min-width:0}\
.panel h2{font-size:15px;margin:0 0 6px}.note{font-size:12px;color:#666;margin:0 0 6px}\
.error{color:#a11;background:#fee;padding:8px;border-radius:4px;font-size:13px;white-space:pre-wrap}\
.number .value{font-size:40px;font-weight:bold;display:block}.number .change{color:#555}\
.table{overflow-x:auto;max-height:360px}table{border-collapse:collapse;font-size:12px}\
td,th{padding:3px 8px;border-bottom:1px solid #eee;text-align:left}\
.csv{font-size:12px}ul.index li{margin:8px 0}";

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
        out.push_str("<button type=\"submit\">Show</button></form>");
    }
    out.push_str("<div class=\"panels\">");
    for (i, (panel, result)) in d.panels.iter().zip(panels).enumerate() {
        let _ = write!(
            out,
            "<section class=\"panel\" id=\"panel-{i}\"><h2>{}</h2>",
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
                    Kind::Line | Kind::Bar | Kind::StackedBar => svg(panel, data),
                    Kind::Table => table_html(data),
                    Kind::Number => number_html(data),
                });
                if live {
                    let _ = write!(
                        out,
                        "<div class=\"csv\"><a href=\"/d/{}/panel/{i}.csv?{}\">Download CSV</a></div>",
                        escape(&d.name),
                        escape(&query_string(params))
                    );
                }
            }
        }
        out.push_str("</section>");
    }
    out.push_str("</div></main></body></html>");
    out
}
