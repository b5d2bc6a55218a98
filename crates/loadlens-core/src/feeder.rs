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
        line: usize,
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
        /// The row's line.
        line: usize,
        /// Fields in the header.
        expected: usize,
        /// Fields in the row.
        found: usize,
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
        let mut records = parse_csv(text).map_err(|line| FeederError::Unterminated {
            file: file_name(),
            line,
        })?;
        if records.is_empty() {
            return Err(FeederError::Empty { file: file_name() });
        }
        let columns: Vec<String> = records
            .remove(0)
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
        for (i, r) in records.iter().enumerate() {
            if r.len() != columns.len() {
                return Err(FeederError::Fields {
                    file: file_name(),
                    line: i + 2,
                    expected: columns.len(),
                    found: r.len(),
                });
            }
        }
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

/// RFC 4180 CSV: quoted fields with `""` escapes and embedded newlines. Blank lines are skipped.
/// The records of `text`, or the line of a quoted field that never closes.
fn parse_csv(text: &str) -> Result<Vec<Vec<String>>, usize> {
    let mut out = Vec::new();
    let mut record: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut in_quotes = false;
    let mut line = 1;
    let mut chars = text.chars().peekable();
    let mut field_started = false;
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => {
                in_quotes = true;
                field_started = true;
            }
            ',' => {
                record.push(std::mem::take(&mut field));
                field_started = true;
            }
            '\r' => {}
            '\n' => {
                if field_started || !field.is_empty() || !record.is_empty() {
                    record.push(std::mem::take(&mut field));
                    out.push(std::mem::take(&mut record));
                }
                field_started = false;
                line += 1;
            }
            _ => {
                field.push(c);
                field_started = true;
            }
        }
    }
    if in_quotes {
        return Err(line);
    }
    if field_started || !field.is_empty() || !record.is_empty() {
        record.push(field);
        out.push(record);
    }
    Ok(out)
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
    }
}
