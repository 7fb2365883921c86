//! `timeline.svg`: successful requests, failed requests and p99 latency per second, one panel
//! each, with every fault's window shaded — the picture a risk manager looks at first.

use std::fmt::Write as _;

use super::report::{FaultReport, Second};

const WIDTH: f64 = 900.0;
const PANEL: f64 = 150.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const GAP: f64 = 40.0;

/// A panel: label, colour and the value it plots.
type Panel = (&'static str, &'static str, fn(&Second) -> f64);

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Renders the timeline of a run of `duration_s` seconds.
#[must_use]
pub fn render(title: &str, seconds: &[Second], faults: &[FaultReport], duration_s: f64) -> String {
    let panels: [Panel; 3] = [
        ("ok requests / s", "#2b7a2b", |s| s.ok as f64),
        ("failed requests / s", "#c0392b", |s| s.failed as f64),
        ("p99 latency (ms)", "#1f5fa8", |s| s.p99_ms),
    ];
    let height = TOP + 3.0 * (PANEL + GAP) + 10.0;
    let plot_w = WIDTH - LEFT - RIGHT;
    let span = duration_s.max(1.0);
    let x = |t: f64| LEFT + plot_w * (t / span).clamp(0.0, 1.0);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{LEFT}" y="22" font-size="14" font-weight="bold">{}</text>"#,
        esc(title)
    );
    for (i, (label, colour, value)) in panels.iter().enumerate() {
        let top = TOP + i as f64 * (PANEL + GAP);
        let bottom = top + PANEL;
        for f in faults {
            let end = f.heal_at_s.unwrap_or(f.window_end_s);
            let (x0, x1) = (x(f.at_s), x(end).max(x(f.at_s) + 2.0));
            let _ = writeln!(
                svg,
                r##"<rect x="{x0:.1}" y="{top:.1}" width="{:.1}" height="{PANEL}" fill="#f39c12" fill-opacity="0.18"><title>fault {}: {} {}</title></rect>"##,
                x1 - x0,
                f.fault,
                esc(&f.kind),
                esc(&f.target)
            );
            if i == 0 {
                let _ = writeln!(
                    svg,
                    r##"<text x="{:.1}" y="{:.1}" fill="#a0620a">{} {}</text>"##,
                    x0 + 2.0,
                    top + 12.0,
                    f.fault,
                    esc(&f.kind)
                );
            }
        }
        let max = seconds.iter().map(value).fold(0.0f64, f64::max);
        let max = if max > 0.0 { max * 1.1 } else { 1.0 };
        let y = |v: f64| bottom - PANEL * (v / max).clamp(0.0, 1.0);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{bottom}" x2="{:.1}" y2="{bottom}" stroke="#444"/><line x1="{LEFT}" y1="{top}" x2="{LEFT}" y2="{bottom}" stroke="#444"/>"##,
            WIDTH - RIGHT
        );
        let _ = writeln!(
            svg,
            r#"<text x="{LEFT}" y="{:.1}">{}</text>"#,
            top - 6.0,
            esc(label)
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{:.0}</text><text x="{:.1}" y="{bottom:.1}" text-anchor="end">0</text>"#,
            LEFT - 4.0,
            top + 10.0,
            max,
            LEFT - 4.0
        );
        let points: Vec<String> = seconds
            .iter()
            .map(|s| format!("{:.1},{:.1}", x(s.t as f64 + 0.5), y(value(s))))
            .collect();
        if !points.is_empty() {
            let _ = writeln!(
                svg,
                r#"<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{}"/>"#,
                points.join(" ")
            );
        }
    }
    let axis_y = TOP + 3.0 * (PANEL + GAP) - GAP + 14.0;
    let step = (span / 10.0).ceil().max(1.0);
    let mut t = 0.0;
    while t <= span {
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{axis_y:.1}" text-anchor="middle">{t:.0}s</text>"#,
            x(t)
        );
        t += step;
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_panels_and_fault_windows() {
        let seconds: Vec<Second> = (0..10)
            .map(|t| Second {
                t,
                sent: 100,
                ok: if t == 5 { 90 } else { 100 },
                failed: if t == 5 { 10 } else { 0 },
                p99_ms: 1.5,
            })
            .collect();
        let faults = [FaultReport {
            fault: 1,
            kind: "node-kill".into(),
            target: "tokyo-a-1 <x>".into(),
            at_s: 5.0,
            heal_at_s: None,
            window_end_s: 7.0,
            throughput_ratio: 0.9,
            recovery_s: 0.4,
            injected: true,
            lost_nodes: vec!["tokyo-a-1".into()],
            detected_s: Some(0.5),
            detected_all_s: Some(0.6),
            lost_to_clients: true,
            sessions_on_lost_nodes: 3,
            sessions_moved_s: Some(0.7),
        }];
        let svg = render("node-kill & more", &seconds, &faults, 10.0);
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 3);
        assert_eq!(
            svg.matches("fill-opacity=\"0.18\"").count(),
            3,
            "window shaded in each panel"
        );
        assert!(svg.contains("&amp; more") && svg.contains("&lt;x&gt;"));
    }
}
