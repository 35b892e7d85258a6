//! Replay inputs: NAB-style CSV and JSONL sample files, read as streams.
//!
//! - CSV: a header naming `timestamp` and `value` columns (others ignored), then one row per
//!   sample. The series name is the file name without extension; it has no labels.
//! - JSONL: one JSON sample per line (see [`crate::codec::parse_json_sample`]); blank lines are
//!   skipped.
//!
//! The format is chosen by extension: `.csv` is CSV, anything else JSONL.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::codec::{parse_json_sample, JsonSampleError};
use crate::time::{parse_timestamp, TimeError};

/// A bad line: which file, which line, what was expected.
#[derive(Debug, Clone, PartialEq)]
pub struct InputError {
    pub file: PathBuf,
    /// 1-based line number (0 when the file could not be opened).
    pub line: u64,
    pub message: String,
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
        }
    }
}

impl std::error::Error for InputError {}

/// Why a line is not a sample (the message of its [`InputError`]).
#[derive(Debug, thiserror::Error)]
enum RecordError {
    #[error("expected {expected} comma-separated fields, found `{line}`")]
    Fields { expected: usize, line: String },
    #[error(transparent)]
    Timestamp(#[from] TimeError),
    #[error("expected a number in column `value`, found `{0}`")]
    Value(String),
    #[error(transparent)]
    Json(#[from] JsonSampleError),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
}

/// One sample read from an input.
#[derive(Debug, Clone)]
pub struct Record {
    pub ts: i64,
    pub name: Arc<str>,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
    /// The timestamp and value fields exactly as written (CSV), echoed into score files.
    pub raw: Option<(String, String)>,
    pub line: u64,
}

/// A streaming reader over one input file.
pub struct Input {
    pub path: PathBuf,
    pub format: Format,
    reader: BufReader<File>,
    line: u64,
    buf: String,
    csv_cols: (usize, usize),
    name: Arc<str>,
}

impl Input {
    /// Opens `path` and, for CSV, reads and checks its header.
    pub fn open(path: &Path) -> Result<Input, InputError> {
        let err = |line, message: String| InputError {
            file: path.to_path_buf(),
            line,
            message,
        };
        let file = File::open(path).map_err(|e| err(0, format!("cannot open: {e}")))?;
        let format = match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("csv") => Format::Csv,
            _ => Format::Jsonl,
        };
        let name: Arc<str> = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("series")
            .into();
        let mut input = Input {
            path: path.to_path_buf(),
            format,
            reader: BufReader::with_capacity(1 << 16, file),
            line: 0,
            buf: String::new(),
            csv_cols: (0, 1),
            name,
        };
        if format == Format::Csv {
            if !input.read_line()? {
                return Err(err(
                    1,
                    "expected a header `timestamp,value`, found an empty file".into(),
                ));
            }
            let cols: Vec<String> = input
                .buf
                .trim()
                .split(',')
                .map(|c| c.trim().trim_matches('"').to_ascii_lowercase())
                .collect();
            let find = |n: &str| cols.iter().position(|c| c == n);
            match (find("timestamp"), find("value")) {
                (Some(t), Some(v)) => input.csv_cols = (t, v),
                _ => {
                    return Err(err(
                        1,
                        format!(
                            "expected a header with `timestamp` and `value` columns, found `{}`",
                            input.buf.trim()
                        ),
                    ))
                }
            }
        }
        Ok(input)
    }

    fn read_line(&mut self) -> Result<bool, InputError> {
        self.buf.clear();
        let n = self
            .reader
            .read_line(&mut self.buf)
            .map_err(|e| InputError {
                file: self.path.clone(),
                line: self.line + 1,
                message: format!("read error: {e}"),
            })?;
        if n > 0 {
            self.line += 1;
        }
        Ok(n > 0)
    }

    /// The next sample, `Ok(None)` at end of file, or an error for a bad line (after which
    /// reading may continue with the next line).
    pub fn next_record(&mut self) -> Result<Option<Record>, InputError> {
        loop {
            if !self.read_line()? {
                return Ok(None);
            }
            if self.buf.trim().is_empty() {
                continue;
            }
            let parsed = match self.format {
                Format::Csv => self.parse_csv(),
                Format::Jsonl => self.parse_jsonl(),
            };
            return parsed.map(Some).map_err(|e| InputError {
                file: self.path.clone(),
                line: self.line,
                message: e.to_string(),
            });
        }
    }

    fn parse_csv(&self) -> Result<Record, RecordError> {
        let line = self.buf.trim_end_matches(['\n', '\r']);
        let (tc, vc) = self.csv_cols;
        let mut ts_field = None;
        let mut value_field = None;
        for (i, f) in line.split(',').enumerate() {
            if i == tc {
                ts_field = Some(f.trim().trim_matches('"'));
            }
            if i == vc {
                value_field = Some(f.trim().trim_matches('"'));
            }
        }
        let (Some(ts_text), Some(value_text)) = (ts_field, value_field) else {
            return Err(RecordError::Fields {
                expected: tc.max(vc) + 1,
                line: line.to_string(),
            });
        };
        let ts = parse_timestamp(ts_text)?;
        let value: f64 = value_text
            .parse()
            .map_err(|_| RecordError::Value(value_text.to_string()))?;
        Ok(Record {
            ts,
            name: self.name.clone(),
            labels: BTreeMap::new(),
            value,
            raw: Some((ts_text.to_string(), value_text.to_string())),
            line: self.line,
        })
    }

    fn parse_jsonl(&self) -> Result<Record, RecordError> {
        let s = parse_json_sample(self.buf.trim())?;
        Ok(Record {
            ts: s.timestamp,
            name: s.name.into(),
            labels: s.labels,
            value: s.value,
            raw: None,
            line: self.line,
        })
    }
}
