//! CLI output: aligned tables for people, JSON for scripts.

use serde_json::Value;

/// The output format chosen with `--output`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns.
    Table,
    /// The API's JSON.
    Json,
}

/// Prints rows under headers, columns padded to their widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(width) = widths.get_mut(i) {
                *width = (*width).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> =
            cells.iter().enumerate().map(|(i, c)| format!("{c:<width$}", width = widths.get(i).copied().unwrap_or(0))).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row.clone());
    }
}

/// Pretty JSON.
pub fn json(value: &Value) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

/// A string field of a JSON object, or "-".
pub fn field(value: &Value, pointer: &str) -> String {
    match value.pointer(pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".to_string(),
        Some(other) => other.to_string(),
    }
}

/// Prints `label: value` lines.
pub fn pairs(items: &[(&str, String)]) {
    let width = items.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
    for (label, value) in items {
        println!("{label:<width$}  {value}");
    }
}

/// The table rows of a JSON array (an absent or non-array value gives none).
pub fn rows(list: &Value, row: impl Fn(&Value) -> Vec<String>) -> Vec<Vec<String>> {
    list.as_array().map(|items| items.iter().map(row).collect()).unwrap_or_default()
}

/// The strings of a JSON array joined by `separator` (empty when absent).
pub fn joined(list: &Value, separator: &str) -> String {
    list.as_array().map(|items| items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(separator)).unwrap_or_default()
}
