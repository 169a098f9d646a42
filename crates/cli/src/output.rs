//! How admin commands print: aligned tables for people, JSON for scripts.

use serde::Serialize;

/// A command's result, printable either way.
pub trait Report: Serialize {
    /// The text for a terminal, ending in a newline.
    fn human(&self) -> String;
}

pub fn print(report: &impl Report, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{}", report.human());
    }
    Ok(())
}

/// Columns padded to their widest cell, two spaces apart.
pub struct Table {
    /// Column titles, upper case by convention.
    headers: Vec<&'static str>,
    /// Cells, one `Vec` per row, as many as there are headers.
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&'static str]) -> Table {
        Table {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn push(&mut self, row: Vec<String>) {
        debug_assert_eq!(row.len(), self.headers.len(), "a cell for every column");
        self.rows.push(row);
    }

    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|header| header.len()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut text = String::new();
        let headers = self.headers.iter().map(|header| header.to_string());
        for row in std::iter::once(headers.collect::<Vec<_>>()).chain(self.rows.iter().cloned()) {
            let mut line = String::new();
            for (index, cell) in row.iter().enumerate() {
                if index > 0 {
                    line.push_str("  ");
                }
                line.push_str(cell);
                let padding = widths[index] - cell.chars().count();
                line.extend(std::iter::repeat_n(' ', padding));
            }
            text.push_str(line.trim_end());
            text.push('\n');
        }
        text
    }
}

/// `[1, 2, 3]` as `1,2,3`, the way Kafka's tools print replica lists.
pub fn id_list(ids: &[i32]) -> String {
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_aligned_and_lines_have_no_trailing_spaces() {
        let mut table = Table::new(&["NAME", "PARTITIONS"]);
        table.push(vec!["orders".into(), "3".into()]);
        table.push(vec!["a".into(), "12".into()]);
        assert_eq!(
            table.render(),
            "NAME    PARTITIONS\norders  3\na       12\n"
        );
    }
}
