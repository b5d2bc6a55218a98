//! Data feeders: rows from CSV files given to virtual users as variables
//! (`{{ users.email }}` for column `email` of feeder `users`).
//!
//! Modes: `sequential` (each iteration takes the next row, shared by all users), `random` (a
//! random row each iteration), `unique` (each user takes its own row for its whole life). When
//! the rows run out: `recycle` (start over), `stop_vu` (that user stops) or `stop_run`.

use std::sync::atomic::{AtomicUsize, Ordering};

/// How rows are handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Next row per iteration, shared across users.
    Sequential,
    /// Random row per iteration.
    Random,
    /// One row per user, for its whole life.
    Unique,
}

/// What happens when every row was used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Exhausted {
    /// Start over from the first row.
    Recycle,
    /// The user that needs a row stops.
    StopVu,
    /// The whole run stops.
    StopRun,
}

/// A loaded feeder.
#[derive(Debug)]
pub struct Feeder {
    /// Name used in templates.
    pub name: String,
    /// Column names.
    pub columns: Vec<String>,
    rows: Vec<Vec<String>>,
    /// Hand-out mode.
    pub mode: Mode,
    /// Exhaustion policy.
    pub on_exhausted: Exhausted,
    next: AtomicUsize,
}

/// The result of asking for a row.
#[derive(Debug, PartialEq)]
pub enum Row<'a> {
    /// The row's fields, in column order.
    Fields(&'a [String]),
    /// Out of rows: stop this user.
    StopVu,
    /// Out of rows: stop the run.
    StopRun,
}

/// A CSV data file that cannot feed VUs; the message starts with `file:line:`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeederError {
    /// A quoted field without its closing quote.
    #[error("{file}:{line}: unterminated quoted field")]
    Unterminated {
        /// The file.
        file: String,
        /// The line the field starts on.
        line: u64,
    },
    /// No header line.
    #[error("{file}: empty CSV file: expected a header line with column names")]
    Empty {
        /// The file.
        file: String,
    },
    /// A header with an empty column name.
    #[error("{file}:1: empty column name in the header line")]
    EmptyColumn {
        /// The file.
        file: String,
    },
    /// A column name twice in the header.
    #[error("{file}:1: column `{column}` appears twice in the header line")]
    DuplicateColumn {
        /// The file.
        file: String,
        /// The column.
        column: String,
    },
    /// A row with another number of fields than the header.
    #[error("{file}:{line}: expected {expected} fields like the header, found {found}")]
    Fields {
        /// The file.
        file: String,
        /// The line the row starts on.
        line: u64,
        /// Fields in the header.
        expected: usize,
        /// Fields in the row.
        found: usize,
    },
    /// A line that is not CSV (e.g. not UTF-8).
    #[error("{file}:{line}: {message}")]
    Invalid {
        /// The file.
        file: String,
        /// The line.
        line: u64,
        /// What the CSV reader said.
        message: String,
    },
    /// A header and nothing else.
    #[error("{file}: no data rows after the header line")]
    NoRows {
        /// The file.
        file: String,
    },
}

impl Feeder {
    /// Parse CSV `text` (first line: column names). `file` names it in errors.
    pub fn parse(
        name: &str,
        file: &str,
        text: &str,
        mode: Mode,
        on_exhausted: Exhausted,
    ) -> Result<Feeder, FeederError> {
        // Spreadsheets save "CSV UTF-8" with a byte-order mark: it is not part of the first
        // column's name (which would then never match `{{ users.email }}`).
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let file_name = || file.to_owned();
        let mut records = read_csv(file, text)?;
        if records.is_empty() {
            return Err(FeederError::Empty { file: file_name() });
        }
        let columns: Vec<String> = records
            .remove(0)
            .1
            .into_iter()
            .map(|c| c.trim().to_owned())
            .collect();
        if columns.iter().any(String::is_empty) {
            return Err(FeederError::EmptyColumn { file: file_name() });
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = columns.iter().find(|c| !seen.insert(c.as_str())) {
            return Err(FeederError::DuplicateColumn {
                file: file_name(),
                column: dup.clone(),
            });
        }
        if let Some((line, r)) = records.iter().find(|(_, r)| r.len() != columns.len()) {
            return Err(FeederError::Fields {
                file: file_name(),
                line: *line,
                expected: columns.len(),
                found: r.len(),
            });
        }
        let records: Vec<Vec<String>> = records.into_iter().map(|(_, r)| r).collect();
        if records.is_empty() {
            return Err(FeederError::NoRows { file: file_name() });
        }
        Ok(Feeder {
            name: name.to_owned(),
            columns,
            rows: records,
            mode,
            on_exhausted,
            next: AtomicUsize::new(0),
        })
    }

    /// Number of data rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when there are no rows (never: parsing rejects empty files).
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The next row for this mode.
    pub fn next_row(&self, rng: &mut fastrand::Rng) -> Row<'_> {
        self.next_row_of(rng, 0, 1)
    }

    /// The next row for this mode in segment `index` (from 0) of `count`: `sequential` and
    /// `unique` take rows `index, index+count, …` of the file, so segments never share a row
    /// before the file is used up (then `recycle` starts over over the whole file).
    pub fn next_row_of(&self, rng: &mut fastrand::Rng, index: u64, count: u64) -> Row<'_> {
        if self.mode == Mode::Random {
            return Row::Fields(&self.rows[rng.usize(..self.rows.len())]);
        }
        let local = self.next.fetch_add(1, Ordering::Relaxed);
        let (index, count) = (
            usize::try_from(index).unwrap_or(usize::MAX),
            usize::try_from(count.max(1)).unwrap_or(usize::MAX),
        );
        let i = local.saturating_mul(count).saturating_add(index);
        if i < self.rows.len() {
            return Row::Fields(&self.rows[i]);
        }
        match self.on_exhausted {
            Exhausted::Recycle => Row::Fields(&self.rows[i % self.rows.len()]),
            Exhausted::StopVu => Row::StopVu,
            Exhausted::StopRun => Row::StopRun,
        }
    }
}

/// The records of `text` with the line each starts on, read by the `csv` crate (RFC 4180:
/// quoted fields with `""` escapes, commas and line breaks inside quotes, `\n` or `\r\n`
/// line ends; blank lines skipped). Rows may differ in length here: the caller names the
/// first that differs from the header, at its line.
fn read_csv(file: &str, text: &str) -> Result<Vec<(u64, Vec<String>)>, FeederError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut out = Vec::new();
    let mut last_start = 0;
    for record in reader.records() {
        let record = record.map_err(|e| FeederError::Invalid {
            file: file.to_owned(),
            line: e.position().map_or(1, csv::Position::line),
            message: e.to_string(),
        })?;
        let (byte, line) = record.position().map_or((0, 1), |p| (p.byte(), p.line()));
        last_start = usize::try_from(byte).unwrap_or(text.len());
        out.push((line, record.iter().map(str::to_owned).collect()));
    }
    // The csv crate ends a quoted field at the end of the input without complaint; a quote
    // left open there swallowed every line after it, so it is refused, at its line.
    if let Some(at) = open_quote(text.get(last_start..).unwrap_or_default()) {
        return Err(FeederError::Unterminated {
            file: file.to_owned(),
            line: out.last().map_or(1, |(line, _)| *line)
                + text[last_start..last_start + at].matches('\n').count() as u64,
        });
    }
    Ok(out)
}

/// Where a quoted field opens and never closes in the last record `tail`, if one does.
fn open_quote(tail: &str) -> Option<usize> {
    let (mut field_start, mut open) = (true, None);
    let mut chars = tail.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match (open, c) {
            (Some(_), '"') if chars.peek().map(|(_, c)| *c) == Some('"') => {
                chars.next();
            }
            (Some(_), '"') => open = None,
            (Some(_), _) => {}
            (None, '"') if field_start => open = Some(i),
            (None, ',' | '\n' | '\r') => {
                field_start = true;
                continue;
            }
            (None, _) => {}
        }
        field_start = false;
    }
    open
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_rows_never_overlap_between_segments_and_cover_the_file() {
        let text: String = std::iter::once("id\n".to_owned())
            .chain((0..23).map(|i| format!("{i}\n")))
            .collect();
        let mut rng = fastrand::Rng::with_seed(1);
        for mode in [Mode::Unique, Mode::Sequential] {
            for segments in 1..=6u64 {
                let mut taken = Vec::new();
                for index in 0..segments {
                    // Each segment is its own process: its own copy of the file.
                    let f = Feeder::parse("u", "u.csv", &text, mode, Exhausted::StopVu).unwrap();
                    let mut mine = 0;
                    while let Row::Fields(row) = f.next_row_of(&mut rng, index, segments) {
                        taken.push(row[0].parse::<u32>().unwrap());
                        mine += 1;
                    }
                    // Its exact share of the 23 rows, and then it is out of rows.
                    let share = if 23 > index {
                        (23 - index - 1) / segments + 1
                    } else {
                        0
                    };
                    assert_eq!(mine, share, "{mode:?} {index}/{segments}");
                }
                taken.sort_unstable();
                assert_eq!(taken, (0..23).collect::<Vec<_>>(), "{mode:?} {segments}");
            }
        }
        // Recycling starts over on the whole file.
        let f = Feeder::parse(
            "u",
            "u.csv",
            "id\n0\n1\n2\n",
            Mode::Unique,
            Exhausted::Recycle,
        )
        .unwrap();
        let ids: Vec<String> = (0..4)
            .map(|_| match f.next_row_of(&mut rng, 1, 2) {
                Row::Fields(r) => r[0].clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(ids, ["1", "0", "2", "1"]);
    }

    #[test]
    fn csv_with_quotes_and_modes() {
        let f = Feeder::parse(
            "users",
            "u.csv",
            "email,name\na@x.io,\"Doe, J\"\nb@x.io,\"say \"\"hi\"\"\"\n",
            Mode::Sequential,
            Exhausted::StopVu,
        )
        .unwrap();
        assert_eq!(f.columns, vec!["email", "name"]);
        let mut rng = fastrand::Rng::with_seed(1);
        assert_eq!(
            f.next_row(&mut rng),
            Row::Fields(&["a@x.io".to_owned(), "Doe, J".to_owned()])
        );
        assert_eq!(
            f.next_row(&mut rng),
            Row::Fields(&["b@x.io".to_owned(), "say \"hi\"".to_owned()])
        );
        assert_eq!(f.next_row(&mut rng), Row::StopVu);
        let r = Feeder::parse(
            "u",
            "u.csv",
            "a\n1\n2\n",
            Mode::Sequential,
            Exhausted::Recycle,
        )
        .unwrap();
        let got: Vec<String> = (0..5)
            .map(|_| match r.next_row(&mut rng) {
                Row::Fields(f) => f[0].clone(),
                _ => panic!(),
            })
            .collect();
        assert_eq!(got, vec!["1", "2", "1", "2", "1"]);
    }

    #[test]
    fn a_byte_order_mark_is_not_part_of_the_first_column() {
        let f = Feeder::parse(
            "u",
            "u.csv",
            "\u{feff}email,pw\nx@y,1\n",
            Mode::Sequential,
            Exhausted::Recycle,
        )
        .unwrap();
        assert_eq!(f.columns, vec!["email", "pw"]);
        let e = Feeder::parse(
            "u",
            "u.csv",
            "a,b,a\n1,2,3\n",
            Mode::Random,
            Exhausted::Recycle,
        );
        assert_eq!(
            e.unwrap_err().to_string(),
            "u.csv:1: column `a` appears twice in the header line"
        );
    }

    /// What Excel writes as "CSV UTF-8": a byte-order mark, CRLF line ends, quotes around
    /// fields with commas, quotes and line breaks.
    #[test]
    fn an_excel_csv_utf8_file_reads_with_its_first_column_named_as_written() {
        let bytes = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/excel-utf8.csv"
        ))
        .unwrap();
        assert!(
            bytes.starts_with(b"\xef\xbb\xbfemail,"),
            "the file keeps its BOM"
        );
        let text = String::from_utf8(bytes).unwrap();
        let f = Feeder::parse(
            "users",
            "excel-utf8.csv",
            &text,
            Mode::Sequential,
            Exhausted::StopVu,
        )
        .unwrap();
        assert_eq!(f.columns, ["email", "name", "note"]);
        let mut rng = fastrand::Rng::with_seed(1);
        let Row::Fields(first) = f.next_row(&mut rng) else {
            panic!()
        };
        assert_eq!(first, ["ann@example.com", "Doe, Ann", "says \"hi\""]);
        let Row::Fields(second) = f.next_row(&mut rng) else {
            panic!()
        };
        assert_eq!(second, ["bob@example.com", "Bob", "line one\r\nline two"]);
        let Row::Fields(third) = f.next_row(&mut rng) else {
            panic!()
        };
        assert_eq!(third, ["eve@example.com", "Ève", ""]);
        assert_eq!(f.next_row(&mut rng), Row::StopVu);
        // A ragged row after a field spanning two lines is named at its own line (6), not
        // at its record number (5).
        let ragged = format!("{text}zed@example.com,Zed\r\n");
        let e = Feeder::parse(
            "users",
            "excel-utf8.csv",
            &ragged,
            Mode::Random,
            Exhausted::Recycle,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "excel-utf8.csv:6: expected 3 fields like the header, found 2"
        );
    }

    #[test]
    fn malformed_files_name_the_line() {
        let e = Feeder::parse(
            "u",
            "u.csv",
            "a,b\n1,2\n3\n",
            Mode::Random,
            Exhausted::Recycle,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(e, "u.csv:3: expected 2 fields like the header, found 1");
        assert!(
            Feeder::parse("u", "u.csv", "", Mode::Random, Exhausted::Recycle)
                .unwrap_err()
                .to_string()
                .contains("empty CSV")
        );
        assert!(
            Feeder::parse("u", "u.csv", "a\n", Mode::Random, Exhausted::Recycle)
                .unwrap_err()
                .to_string()
                .contains("no data rows")
        );
        assert!(
            Feeder::parse("u", "u.csv", "a\n\"x\n", Mode::Random, Exhausted::Recycle)
                .unwrap_err()
                .to_string()
                .contains("unterminated")
        );
        let e = Feeder::parse(
            "u",
            "u.csv",
            "a,b\n1,2\n3,\"x\n\n4,5\n",
            Mode::Random,
            Exhausted::Recycle,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(e, "u.csv:3: unterminated quoted field");
        let e = Feeder::parse(
            "u",
            "u.csv",
            "a\n\u{ff}\n",
            Mode::Random,
            Exhausted::Recycle,
        )
        .map(|f| f.len());
        assert_eq!(e, Ok(1), "text is UTF-8 already");
    }
}
