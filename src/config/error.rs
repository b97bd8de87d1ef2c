//! Configuration errors that name the file, line, column, key and offending value.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where in a config file something is, as a person counts (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl Position {
    /// Converts a byte offset in `text` into a line and column.
    pub fn at(text: &str, offset: usize) -> Self {
        let offset = offset.min(text.len());
        let before = &text[..floor_char_boundary(text, offset)];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Position { line, column }
    }
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while offset > 0 && !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// Absent when the file could not be read at all.
    pub position: Option<Position>,
    /// Dotted key path, e.g. `proxy.allow_clients[2]`; empty when unknown.
    pub key: String,
    /// The offending text from the file, when there is one.
    pub value: Option<String>,
    pub message: String,
}

impl ConfigError {
    pub fn unreadable(file: &Path, err: &std::io::Error) -> Self {
        ConfigError {
            file: file.to_path_buf(),
            position: None,
            key: String::new(),
            value: None,
            message: format!("cannot read the file: {err}"),
        }
    }

    /// An error about the value found at `span` in `text`.
    pub fn at_span(
        file: &Path,
        text: &str,
        span: Option<std::ops::Range<usize>>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        let (position, value) = match span {
            Some(span) => {
                let value = text
                    .get(span.clone())
                    .map(|v| shorten(v.trim(), 80))
                    .filter(|v| !v.is_empty());
                (Some(Position::at(text, span.start)), value)
            }
            None => (None, None),
        };
        ConfigError {
            file: file.to_path_buf(),
            position,
            key: key.into(),
            value,
            message: message.into(),
        }
    }
}

fn shorten(text: &str, max: usize) -> String {
    let first_line = text.lines().next().unwrap_or("");
    if first_line.chars().count() > max || first_line.len() < text.len() {
        let cut: String = first_line.chars().take(max).collect();
        format!("{cut}…")
    } else {
        first_line.to_string()
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(p) = self.position {
            write!(f, ":{}:{}", p.line, p.column)?;
        }
        write!(f, ": ")?;
        if !self.key.is_empty() {
            write!(f, "`{}`: ", self.key)?;
        }
        write!(f, "{}", self.message)?;
        if let Some(v) = &self.value {
            write!(f, " (found {v})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// All the problems found in one file; `check` prints every one.
#[derive(Debug, Clone)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_from_one() {
        let text = "a = 1\nbb = 2\n";
        assert_eq!(Position::at(text, 0), Position { line: 1, column: 1 });
        assert_eq!(Position::at(text, 6), Position { line: 2, column: 1 });
        assert_eq!(Position::at(text, 11), Position { line: 2, column: 6 });
        assert_eq!(Position::at(text, 999), Position { line: 3, column: 1 });
    }

    #[test]
    fn display_names_file_line_column_key_and_value() {
        let text = "[proxy]\nlisten = \"nope\"\n";
        let e = ConfigError::at_span(
            Path::new("x.toml"),
            text,
            Some(17..23),
            "proxy.listen",
            "not a socket address",
        );
        assert_eq!(
            e.to_string(),
            "x.toml:2:10: `proxy.listen`: not a socket address (found \"nope\")"
        );
    }
}
