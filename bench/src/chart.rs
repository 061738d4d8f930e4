//! A horizontal bar chart as SVG: how many times faster joblog is than
//! the other contenders at each scenario, on a log scale, for the README. Written by hand
//! (60 lines, no dependency): the chart is one kind of bar with long
//! labels, which plotters' category axes lay out poorly.

/// `bars`: (label, the other's time / joblog's time); `against` names the
/// others in the axis title. Returns the SVG document.
pub fn speedup_svg(title: &str, against: &str, bars: &[(String, f64)]) -> String {
    // About 7 px per character of 13 px sans-serif.
    let longest = bars.iter().map(|b| b.0.chars().count()).max().unwrap_or(0) as f64;
    let (label_w, bar_w, row_h, top) = (f64::max(360.0, 7.0 * longest + 16.0), 420.0, 26.0, 56.0);
    let width = label_w + bar_w + 90.0;
    let height = top + row_h * bars.len() as f64 + 40.0;
    let max = bars.iter().map(|b| b.1).fold(10.0f64, f64::max).log10().ceil();
    let min = bars.iter().map(|b| b.1).fold(1.0f64, f64::min).log10().floor().min(0.0);
    let x = |v: f64| label_w + (v.max(1e-9).log10() - min) / (max - min) * bar_w;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"13\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"24\" font-size=\"16\" text-anchor=\"middle\">{}</text>\n",
        width / 2.0,
        escape(title)
    );
    // Decades: 0.1×, 1×, 10×, 100×…
    for d in (min as i32)..=(max as i32) {
        let v = 10f64.powi(d);
        let px = x(v);
        let bottom = height - 30.0;
        s += &format!("<line x1=\"{px}\" y1=\"{}\" x2=\"{px}\" y2=\"{bottom}\" stroke=\"#ccc\"/>\n", top - 8.0);
        s += &format!(
            "<text x=\"{px}\" y=\"{}\" text-anchor=\"middle\" fill=\"#555\">{}×</text>\n",
            bottom + 16.0,
            fmt(v)
        );
    }
    for (i, (label, v)) in bars.iter().enumerate() {
        let y = top + row_h * i as f64;
        let (x0, x1) = (x(1.0), x(*v));
        let (left, w) = if x1 >= x0 { (x0, x1 - x0) } else { (x1, x0 - x1) };
        let color = if *v >= 1.0 { "#2b7bb9" } else { "#d9822b" };
        s +=
            &format!("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n", label_w - 8.0, y + 15.0, escape(label));
        s += &format!(
            "<rect x=\"{left}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{color}\"/>\n",
            y + 3.0,
            w.max(1.0),
            row_h - 8.0
        );
        s += &format!("<text x=\"{}\" y=\"{}\">{}×</text>\n", left + w + 6.0, y + 15.0, fmt(*v));
    }
    s += &format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#555\">times faster than {} (log scale; orange: slower)</text>\n</svg>\n",
        label_w + bar_w / 2.0,
        height - 2.0,
        escape(against)
    );
    s
}

fn fmt(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
