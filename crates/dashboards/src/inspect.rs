//! What a reader sees of a page, measured in headless Chromium: the smallest text as
//! rendered, tick labels that overlap, series that leave no visible mark, text or charts
//! past their panel, a page wider than the screen. The browser tests check every shipped dashboard with it, at a laptop's
//! and a phone's width.

use std::path::Path;

use serde::Deserialize;

/// Runs in the page after layout and appends its findings as JSON in a `<pre>` of the
/// page that frames it.
const SCRIPT: &str = r#"<script>(() => {
  const shown = el => {
    const cs = getComputedStyle(el);
    if (cs.display === 'none' || cs.visibility === 'hidden') return null;
    const r = el.getBoundingClientRect();
    return r.width > 0 || r.height > 0 ? r : null;
  };
  const out = { min_font: null, min_font_text: '', texts: 0, overlaps: [], unmarked: [],
    outside: [], charts: 0, width: document.documentElement.scrollWidth,
    viewport: window.innerWidth, height: document.documentElement.scrollHeight };
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const text = n.textContent.trim();
    const el = n.parentElement;
    if (!text || el.closest('script,style,title,option')) continue;
    const r = shown(el);
    if (!r || r.width === 0 || r.height === 0) continue;
    let size = parseFloat(getComputedStyle(el).fontSize);
    if (el instanceof SVGElement) {
      const m = el.getScreenCTM();
      if (m) size *= Math.sqrt(Math.abs(m.a * m.d - m.b * m.c));
    }
    out.texts++;
    const panel = el.closest('section.panel');
    // A table scrolls inside its own box; anything else must stay inside its panel.
    if (panel && !el.closest('.table')) {
      // The text's own box: an element's box stays inside its parent while its text
      // overflows.
      const range = document.createRange();
      range.selectNodeContents(n);
      const t = range.getBoundingClientRect(), b = panel.getBoundingClientRect();
      if (t.left < b.left - 1 || t.right > b.right + 1)
        out.outside.push((panel.querySelector('h2') || panel).textContent.slice(0, 60) + ': ' + text.slice(0, 40));
    }
    if (out.min_font === null || size < out.min_font) {
      out.min_font = size;
      out.min_font_text = text.slice(0, 60);
    }
  }
  for (const svg of document.querySelectorAll('svg.chart')) {
    out.charts++;
    const title = svg.getAttribute('aria-label');
    const panel = svg.closest('section.panel'), r = shown(svg);
    if (panel && r) {
      const b = panel.getBoundingClientRect();
      if (r.left < b.left - 1 || r.right > b.right + 1) out.outside.push(title + ': the chart');
    }
    for (const axis of ['x', 'y']) {
      const boxes = [...svg.querySelectorAll('text.' + axis)]
        .map(t => [t.textContent, shown(t)]).filter(b => b[1]);
      for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
        const [a, p] = boxes[i], [b, q] = boxes[j];
        if (p.left < q.right && q.left < p.right && p.top < q.bottom && q.top < p.bottom)
          out.overlaps.push(title + ': ' + a + ' / ' + b);
      }
    }
    const marks = [...svg.querySelectorAll('[data-series]')].filter(m => m !== svg && shown(m));
    for (const name of JSON.parse(svg.dataset.series || '[]'))
      if (!marks.some(m => m.dataset.series === name)) out.unmarked.push(title + ': ' + name);
  }
  const pre = document.createElement('pre');
  pre.id = 'observes-measure';
  pre.textContent = JSON.stringify(out);
  parent.document.body.appendChild(pre);
})();</script>"#;

/// What a page looks like in a browser window.
#[derive(Debug, Clone, Deserialize)]
pub struct Measured {
    /// The smallest text as rendered, in CSS pixels (`None`: no text).
    pub min_font: Option<f64>,
    /// That text.
    pub min_font_text: String,
    /// Text nodes shown.
    pub texts: usize,
    /// Tick labels of one axis whose boxes intersect: `chart: label / label`.
    pub overlaps: Vec<String>,
    /// Series with data that leave no visible mark: `chart: series`.
    pub unmarked: Vec<String>,
    /// Text or charts reaching past their panel's sides: `panel: text`.
    pub outside: Vec<String>,
    /// Charts on the page.
    pub charts: usize,
    /// The page's width, to compare with the window's.
    pub width: f64,
    /// The window's width.
    pub viewport: f64,
    /// The page's full height.
    pub height: f64,
    /// What the browser's log says went wrong (console output, failed requests).
    #[serde(skip)]
    pub complaints: Vec<String>,
}

/// Measures a page's HTML (self-contained, as the server and the export write it) in a
/// viewport of `size`. `dir` holds the copy the browser loads.
///
/// The page is shown in a frame of that size: headless Chromium's windows are at least
/// 500 px wide, narrower than a phone's.
pub fn measure(html: &str, size: (u32, u32), dir: &Path) -> Result<Measured, String> {
    let at = html.rfind("</body>").ok_or("the page has no </body>")?;
    let page = dir.join(format!("measure-{}x{}.html", size.0, size.1));
    std::fs::write(
        &page,
        framed(&format!("{}{SCRIPT}{}", &html[..at], &html[at..]), size),
    )
    .map_err(|e| format!("{}: {e}", page.display()))?;
    let window = (size.0.max(500) + 40, size.1 + 40);
    let loaded = crate::export::load_page(&format!("file://{}", page.display()), window, None)?;
    let start = loaded
        .dom
        .find("<pre id=\"observes-measure\">")
        .ok_or("the measuring script did not run")?
        + "<pre id=\"observes-measure\">".len();
    let end = loaded.dom[start..]
        .find("</pre>")
        .ok_or("the measurement is cut short")?;
    let json = loaded.dom[start..start + end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&");
    let mut measured: Measured =
        serde_json::from_str(&json).map_err(|e| format!("the measurement: {e}: {json}"))?;
    measured.complaints = loaded.complaints;
    Ok(measured)
}

/// A page that shows `html` in a frame of exactly `size`, at its top left corner: a
/// viewport narrower than headless Chromium's windows allow.
pub(crate) fn framed(html: &str, size: (u32, u32)) -> String {
    let srcdoc = html.replace('&', "&amp;").replace('"', "&quot;");
    format!(
        "<!doctype html><html><body style=\"margin:0\"><iframe style=\"border:0;display:block;width:{}px;height:{}px\" srcdoc=\"{srcdoc}\"></iframe></body></html>",
        size.0, size.1
    )
}

impl Measured {
    /// What is wrong for a reader: text under `min_font` px, overlapping labels, series
    /// with no mark, a page wider than the window, complaints in the log.
    pub fn problems(&self, min_font: f64) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(size) = self.min_font.filter(|s| *s < min_font) {
            out.push(format!(
                "text at {size:.1} px (under {min_font} px): {:?}",
                self.min_font_text
            ));
        }
        out.extend(self.overlaps.iter().map(|o| format!("labels overlap: {o}")));
        out.extend(
            self.unmarked
                .iter()
                .map(|u| format!("no visible mark: {u}")),
        );
        out.extend(self.outside.iter().map(|o| format!("past its panel: {o}")));
        if self.width > self.viewport + 0.5 {
            out.push(format!(
                "the page is {} px wide in a {} px window",
                self.width, self.viewport
            ));
        }
        out.extend(self.complaints.iter().map(|c| format!("browser log: {c}")));
        out
    }
}
