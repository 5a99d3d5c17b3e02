//! Reports: the JSON document of a run, its readable table, and the
//! comparison (markdown table + hand-written SVG chart) of several runs.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde_json::{json, Value};

/// The machine the run happened on.
pub fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|s| {
        s.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
    });
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| s.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse::<u64>().ok()));
    json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "cpu_model": cpu,
        "memory_gib": mem_kib.map(|k| (k as f64 / 1048576.0 * 10.0).round() / 10.0),
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").ok().map(|s| s.trim().to_string()),
        "loadavg_at_end": loadavg(),
    })
}

/// `/proc/loadavg` (1, 5, 15 minutes): the machine is shared, so runs say how busy it was.
pub fn loadavg() -> Option<String> {
    std::fs::read_to_string("/proc/loadavg").ok().map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

/// Prints a run's results as an indented key/value table (steps as rows).
pub fn print(report: &Value) {
    println!(
        "scenario {} against {} ({})",
        report["scenario"].as_str().unwrap_or("?"),
        report["target"],
        report["proto"]
    );
    let results = &report["results"];
    if let Some(steps) = results["steps"].as_array() {
        println!(
            "{:>10} {:>10} {:>12} {:>12} {:>9} {:>9} {:>9} {:>9} {:>8} {:>7}",
            "pubs/s", "published", "delivered", "deliv/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "cpu %", "kept"
        );
        let show = |v: &Value| v.to_string();
        for s in steps {
            println!(
                "{:>10} {:>10} {:>12} {:>12} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>8} {:>7}",
                show(&s["rate_publications_per_sec"]),
                show(&s["published"]),
                show(&s["delivered"]),
                show(&s["deliveries_per_sec"]),
                s["latency"]["p50_ms"].as_f64().unwrap_or(0.0),
                s["latency"]["p90_ms"].as_f64().unwrap_or(0.0),
                s["latency"]["p99_ms"].as_f64().unwrap_or(0.0),
                s["latency"]["max_ms"].as_f64().unwrap_or(0.0),
                show(&s["server_cpu_percent"]),
                if s["kept_up"].as_bool() == Some(true) { "yes" } else { "NO" },
            );
        }
    }
    flat("", results, &mut |key, value| {
        if !key.starts_with("steps") && !key.starts_with("best_sustained") {
            println!("  {key:<40} {value}");
        }
    });
}

fn flat(prefix: &str, value: &Value, out: &mut impl FnMut(&str, &Value)) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flat(&key, v, out);
            }
        }
        Value::Array(_) => {}
        other => out(prefix, other),
    }
}

/// One server's row of a comparison.
struct Row {
    name: String,
    subscribers: u64,
    /// Best sustained deliveries/s, and the latency at that step.
    sustained: f64,
    p50: f64,
    p99: f64,
    /// The first (lowest) step: the rate every server was asked for, and its p99.
    first_rate: f64,
    first_p99: f64,
    /// Deliveries/s asked at the first step that was not sustained (0: none failed).
    failed_rate: f64,
    lost: u64,
}

/// Whether a fan-out step was sustained: the publisher kept its rate (within
/// two publications or 5 %, and within 20 % of the planned time), every
/// payload arrived, the backlog drained within 2.5 s, and no subscriber was
/// dropped. Recomputed from the step's fields so that reports written by
/// older builds are judged by the same rule.
pub fn sustained(step: &Value, duration: f64, subscribers: u64) -> bool {
    let f = |k: &str| step[k].as_f64().unwrap_or(0.0);
    let rate = f("rate_publications_per_sec");
    f("published") + 2.0 >= 0.95 * rate * duration
        && f("publish_secs") <= 1.2 * duration
        && f("delivered") >= f("expected_deliveries")
        && f("publish_errors") == 0.0
        && f("drain_secs") < 2.5
        && step["connected"].as_u64() == Some(subscribers)
}

fn rows(files: &[PathBuf]) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).with_context(|| format!("read {}", file.display()))?;
        let report: Value = serde_json::from_str(&text).with_context(|| format!("parse {}", file.display()))?;
        let results = &report["results"];
        let duration = report["params"]["duration"].as_f64().unwrap_or(0.0);
        let subscribers = results["subscribers"].as_u64().unwrap_or(0);
        let steps = results["steps"].as_array().cloned().unwrap_or_default();
        let best = steps
            .iter()
            .filter(|s| sustained(s, duration, subscribers))
            .max_by(|a, b| {
                let rate = |s: &Value| s["deliveries_per_sec"].as_f64().unwrap_or(0.0);
                rate(a).total_cmp(&rate(b))
            })
            .cloned()
            .unwrap_or(Value::Null);
        let first_failed = steps.iter().find(|s| !sustained(s, duration, subscribers)).cloned().unwrap_or(Value::Null);
        let first = steps.first().cloned().unwrap_or(Value::Null);
        rows.push(Row {
            name: report["target"].as_str().unwrap_or("?").to_string(),
            subscribers,
            sustained: best["deliveries_per_sec"].as_f64().unwrap_or(0.0),
            p50: best["latency"]["p50_ms"].as_f64().unwrap_or(0.0),
            p99: best["latency"]["p99_ms"].as_f64().unwrap_or(0.0),
            first_rate: first["rate_publications_per_sec"].as_f64().unwrap_or(0.0) * subscribers as f64,
            first_p99: first["latency"]["p99_ms"].as_f64().unwrap_or(0.0),
            failed_rate: first_failed["rate_publications_per_sec"].as_f64().unwrap_or(0.0) * subscribers as f64,
            lost: results["totals"]["lost"].as_u64().unwrap_or(0),
        });
    }
    Ok(rows)
}

/// Markdown table and SVG chart comparing fan-out reports.
pub fn compare(files: &[PathBuf], markdown: Option<PathBuf>, svg: Option<PathBuf>) -> Result<()> {
    let rows = rows(files)?;
    let mut md = String::new();
    let _ = writeln!(
        md,
        "| server | subscribers | best sustained deliveries/s | p50 ms | p99 ms | p99 ms at the first step (deliveries/s) | first step not sustained (deliveries/s asked) | lost (all steps) |"
    );
    let _ = writeln!(md, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let show = |v: f64| {
        if v > 0.0 {
            format!("{v:.0}")
        } else {
            "none failed".to_string()
        }
    };
    for r in &rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {:.0} ({:.0}) | {} | {} |",
            r.name,
            r.subscribers,
            if r.sustained > 0.0 { format!("{:.0}", r.sustained) } else { "none".to_string() },
            if r.sustained > 0.0 { format!("{:.0}", r.p50) } else { "—".to_string() },
            if r.sustained > 0.0 { format!("{:.0}", r.p99) } else { "—".to_string() },
            r.first_p99,
            r.first_rate,
            show(r.failed_rate),
            r.lost
        );
    }
    print!("{md}");
    if let Some(path) = markdown {
        std::fs::write(&path, &md).with_context(|| format!("write {}", path.display()))?;
    }
    if let Some(path) = svg {
        std::fs::write(&path, chart(&rows)).with_context(|| format!("write {}", path.display()))?;
    }
    Ok(())
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A chart panel: its title, the value it shows per row, the bar colour.
type Panel = (&'static str, Box<dyn Fn(&Row) -> f64>, &'static str);

/// Two bar panels: sustained deliveries/s, and p99 latency at that rate.
fn chart(rows: &[Row]) -> String {
    let (width, panel_h, top, left) = (760.0, 220.0, 50.0, 110.0);
    let bar_w = (width - left - 20.0) / rows.len().max(1) as f64;
    let height = top + 2.0 * (panel_h + 60.0);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r##"<rect width="100%" height="100%" fill="#fff"/>"##);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="22" font-size="15" text-anchor="middle">Fan-out on one channel: sustained deliveries/s and p99 latency</text>"#,
        width / 2.0
    );
    let panels: [Panel; 2] = [
        ("deliveries/s (sustained, nothing lost)", Box::new(|r: &Row| r.sustained), "#3b6ea8"),
        ("p99 publish-to-deliver latency, ms", Box::new(|r: &Row| r.p99), "#c0504d"),
    ];
    for (i, (title, value, color)) in panels.iter().enumerate() {
        let y0 = top + i as f64 * (panel_h + 60.0) + 20.0;
        // Headroom above the tallest bar for its label.
        let max = rows.iter().map(value).fold(0.0, f64::max).max(1e-9) * 1.15;
        let _ = writeln!(svg, r#"<text x="{left}" y="{}" font-size="13">{}</text>"#, y0 - 6.0, escape(title));
        let _ = writeln!(
            svg,
            r##"<line x1="{left}" y1="{}" x2="{}" y2="{}" stroke="#333"/>"##,
            y0 + panel_h,
            width - 20.0,
            y0 + panel_h
        );
        for tick in 0..=4 {
            let v = max * tick as f64 / 4.0;
            let y = y0 + panel_h - panel_h * tick as f64 / 4.0;
            let _ = writeln!(svg, r##"<line x1="{left}" y1="{y}" x2="{}" y2="{y}" stroke="#ddd"/>"##, width - 20.0);
            let _ = writeln!(svg, r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#, left - 6.0, y + 4.0, human(v));
        }
        for (j, r) in rows.iter().enumerate() {
            let v = value(r);
            let h = panel_h * v / max;
            let x = left + j as f64 * bar_w + bar_w * 0.15;
            let _ = writeln!(
                svg,
                r#"<rect x="{x}" y="{}" width="{}" height="{h}" fill="{color}"/>"#,
                y0 + panel_h - h,
                bar_w * 0.7
            );
            let _ = writeln!(
                svg,
                r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
                x + bar_w * 0.35,
                y0 + panel_h - h - 4.0,
                if v > 0.0 { human(v) } else { "none sustained".to_string() }
            );
            let _ = writeln!(
                svg,
                r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
                x + bar_w * 0.35,
                y0 + panel_h + 16.0,
                escape(&r.name)
            );
        }
    }
    svg.push_str("</svg>\n");
    svg
}

fn human(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step() -> Value {
        json!({
            "rate_publications_per_sec": 10.0, "published": 50, "publish_secs": 5.0,
            "expected_deliveries": 500000, "delivered": 500000, "publish_errors": 0,
            "drain_secs": 0.4, "connected": 10000,
        })
    }

    #[test]
    fn a_step_is_sustained_only_when_everything_kept_up() {
        assert!(sustained(&step(), 5.0, 10000));
        for (key, value) in [
            ("published", json!(40)),
            ("publish_secs", json!(8.3)),
            ("delivered", json!(499999)),
            ("publish_errors", json!(1)),
            ("drain_secs", json!(2.5)),
            ("connected", json!(9999)),
        ] {
            let mut s = step();
            s[key] = value;
            assert!(!sustained(&s, 5.0, 10000), "{key}");
        }
    }

    #[test]
    fn chart_is_an_svg_with_one_bar_per_server_and_panel() {
        let row = |name: &str, sustained: f64| Row {
            name: name.into(),
            subscribers: 10,
            sustained,
            p50: 1.0,
            p99: 2.0,
            first_rate: 1.0,
            first_p99: 2.0,
            failed_rate: 0.0,
            lost: 0,
        };
        let svg = chart(&[row("a<b", 1000.0), row("c", 0.0)]);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<rect x=").count(), 4);
        assert!(svg.contains("a&lt;b") && svg.contains("none sustained"));
    }
}
