//! What commands print: the Job JSON of `docs/cli.md`, the platform-like
//! grid, a job's history as a timeline.

use joblog::domain::Timestamp;
use serde_json::Value;

pub use joblog_server::json::{history_json, job_json};

pub fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).expect("JSON values serialize")
}

fn short_time(t: Option<Timestamp>) -> String {
    t.map_or_else(String::new, |t| t.to_datetime().format("%Y-%m-%d %H:%M:%S").to_string())
}

/// The widest a table column gets; longer cells are cut with `…`.
pub const MAX_COLUMN_CHARS: usize = 60;

/// `s` safe for a terminal: every control character (C0 such as ESC, CR,
/// BEL, newline and tab; DEL; C1) and every bidirectional override is
/// written as a visible escape (`\n`, `\r`, `\t`, else `\u001b`), so
/// no stored value can move the cursor, clear the screen or reorder text.
pub fn escape(s: &str) -> String {
    escape_except(s, |_| false)
}

/// Text about to reach a terminal (a command's whole output): control
/// characters but newlines escaped as in [`escape`]. With `json`, only DEL,
/// C1 controls and bidirectional overrides, which serde leaves raw inside
/// strings (they only occur inside strings, and `\u00XX` is valid JSON).
pub fn terminal_safe(text: &str, json: bool) -> String {
    escape_except(text, |c| c == '\n' || (json && (c as u32) < 0x20))
}

/// [`escape`], but for the characters `keep` leaves as they are.
fn escape_except(s: &str, keep: impl Fn(char) -> bool) -> String {
    let unsafe_here = |c: char| joblog::domain::limits::is_unsafe_char(c) && !keep(c);
    if !s.chars().any(unsafe_here) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            c if !unsafe_here(c) => out.push(c),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push_str(&format!("\\u{:04x}", c as u32)),
        }
    }
    out
}

/// Rows under headers, each column as wide as its widest cell, up to
/// [`MAX_COLUMN_CHARS`]; cells escaped ([`escape`]) and cut to fit, so any
/// stored value prints.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let fit = |c: &str| truncate(&escape(c), MAX_COLUMN_CHARS);
    let rows: Vec<Vec<String>> = rows.iter().map(|r| r.iter().map(|c| fit(c)).collect()).collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            s.push_str(c);
            if i + 1 < cells.len() {
                // Padded by hand: `format!`'s width is bounded (u16).
                s.push_str(&" ".repeat(w.saturating_sub(c.chars().count()) + 2));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(headers.to_vec());
    out.push_str(&line(widths.iter().map(|w| "─".repeat(*w)).collect::<Vec<_>>().iter().map(String::as_str).collect()));
    for r in &rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).collect::<String>() + "…"
    }
}

/// A string field of a JSON object ("" when absent or null).
fn text(v: &Value, key: &str) -> String {
    match &v[key] {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A time field of the Job JSON (RFC 3339) as the tables show it.
fn time_of(v: &Value, key: &str) -> String {
    let raw = text(v, key);
    match Timestamp::parse(&raw) {
        Ok(t) => short_time(Some(t)),
        Err(_) => raw,
    }
}

/// The System Jobs grid, from the Job JSON of each (docs/cli.md, "Job JSON").
pub fn jobs_table(jobs: &[Value]) -> String {
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|j| {
            vec![
                truncate(&text(j, "name"), 40),
                text(j, "operationtype_name"),
                text(j, "state"),
                text(j, "status"),
                text(j, "ownerid"),
                text(j, "regardingobjectid"),
                time_of(j, "createdon"),
                time_of(j, "completedon"),
                text(j, "asyncoperationid"),
            ]
        })
        .collect();
    table(
        &[
            "System Job Name",
            "System Job Type",
            "State",
            "Status Reason",
            "Owner",
            "Regarding",
            "Created On",
            "Completed On",
            "Id",
        ],
        &rows,
    )
}

/// The most characters of one field in a job's detail (a message holds
/// up to 100,000; `--json` prints it whole).
const DETAIL_CHARS: usize = 2000;

/// One job in detail, from its Job JSON, with its history (the JSON's
/// `history`, when it has one) as a timeline.
pub fn job_detail(j: &Value) -> String {
    let mut out = String::new();
    let mut field = |k: &str, v: String| {
        if !v.is_empty() {
            out.push_str(&format!("{k:<16} {}\n", truncate(&escape(&v), DETAIL_CHARS)));
        }
    };
    field("Id", text(j, "asyncoperationid"));
    field("Name", text(j, "name"));
    field("Type", text(j, "operationtype_name"));
    field("Status", format!("{}/{}", text(j, "state"), text(j, "status")));
    field("Owner", format!("{} ({})", text(j, "ownerid"), text(j, "owningbusinessunit")));
    field("Regarding", text(j, "regardingobjectid"));
    field("Workflow", text(j, "workflowactivationid"));
    field("Created On", time_of(j, "createdon"));
    field("Started On", time_of(j, "startedon"));
    field("Completed On", time_of(j, "completedon"));
    field("Postpone Until", time_of(j, "postponeuntil"));
    field("Retries", j["retrycount"].as_u64().filter(|&n| n > 0).map(|n| n.to_string()).unwrap_or_default());
    field("Error Code", text(j, "errorcode"));
    field("Message", text(j, "message"));
    field("Command", text(j, "command"));
    if let Some(h) = j["history"].as_array() {
        out.push_str("\nHistory\n");
        for e in h {
            let what = match text(e, "action").as_str() {
                "create" => "created".to_string(),
                "note" => "noted".to_string(),
                a => a.to_string(),
            };
            out.push_str(&format!(
                "  {}  #{:<8} {:<16} → {:<30} by {}",
                time_of(e, "at"),
                text(e, "seq"),
                what,
                format!("{}/{}", text(e, "state"), text(e, "status")),
                truncate(&escape(&text(e, "actor")), MAX_COLUMN_CHARS)
            ));
            if e["postponeuntil"].is_string() {
                out.push_str(&format!(" until {}", time_of(e, "postponeuntil")));
            }
            if let Some(m) = e["message"].as_str() {
                out.push_str(&format!("\n  {:>19}  {}", "", truncate(&escape(m), 100)));
            }
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_visible_and_json_stays_json() {
        assert_eq!(escape("a\u{1b}[2J\r\n\t\u{7f}\u{9b}\u{202e}é"), "a\\u001b[2J\\r\\n\\t\\u007f\\u009b\\u202eé");
        assert_eq!(terminal_safe("line\nnext\u{7}", false), "line\nnext\\u0007");
        let v = serde_json::json!({"m": "x\u{1b}\u{7f}\u{9b}\u{202e}y"});
        let safe = terminal_safe(&pretty(&v), true);
        assert!(!safe.chars().any(|c| joblog::domain::limits::is_unsafe_char(c) && c != '\n'), "{safe}");
        assert_eq!(serde_json::from_str::<Value>(&safe).unwrap(), v, "the same string once parsed");
        let wide = table(&["A", "B"], &[vec!["x".repeat(100_000), "\u{1b}".into()]]);
        assert!(wide.lines().all(|l| l.chars().count() < 200), "{wide}");
    }
}
