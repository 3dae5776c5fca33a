//! A small CSV reader for the camera import (RFC 4180 as spreadsheets write it): fields
//! separated by commas, records by CRLF or LF, a field in double quotes may hold commas, line
//! breaks and `""` for a quote. No crate: the format is this small, and the workspace has
//! none.

/// Why a text is not CSV: the record (0 is the header) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CsvError {
    pub record: usize,
    pub message: &'static str,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a field.
    Start,
    /// In a field without quotes.
    Plain,
    /// In a quoted field.
    Quoted,
    /// Just after a quote in a quoted field: the field's end (then only a comma or a line
    /// break may follow), or the first of `""`.
    QuoteInQuoted,
}

/// The records of `text`. A line break at the very end ends the last record (it does not
/// make an empty one); a quote inside an unquoted field is kept as it is.
pub(crate) fn parse(text: &str) -> Result<Vec<Vec<String>>, CsvError> {
    let mut records = Vec::new();
    let mut record: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut state = State::Start;
    let mut chars = text.chars().peekable();
    let error = |records: &Vec<Vec<String>>, message| CsvError {
        record: records.len(),
        message,
    };
    while let Some(c) = chars.next() {
        match (state, c) {
            (State::Quoted, '"') => state = State::QuoteInQuoted,
            (State::Quoted, c) => field.push(c),
            (State::QuoteInQuoted, '"') => {
                field.push('"');
                state = State::Quoted;
            }
            (State::Start, '"') => state = State::Quoted,
            (State::Start | State::Plain | State::QuoteInQuoted, ',') => {
                record.push(std::mem::take(&mut field));
                state = State::Start;
            }
            (State::Start | State::Plain | State::QuoteInQuoted, '\r' | '\n') => {
                if c == '\r' && chars.peek() == Some(&'\n') {
                    chars.next();
                }
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
                state = State::Start;
            }
            (State::QuoteInQuoted, _) => {
                return Err(error(
                    &records,
                    "text after a closing quote; a quote inside a quoted field is written \"\"",
                ));
            }
            (State::Start | State::Plain, c) => {
                field.push(c);
                state = State::Plain;
            }
        }
    }
    match state {
        State::Quoted => Err(error(&records, "a quoted field is not closed")),
        // The text ended with a line break: nothing is pending.
        State::Start if record.is_empty() && field.is_empty() => Ok(records),
        _ => {
            record.push(field);
            records.push(record);
            Ok(records)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &str) -> Vec<Vec<String>> {
        parse(text).unwrap_or_else(|e| panic!("{text:?}: {e:?}"))
    }

    #[test]
    fn reads_what_spreadsheets_write() {
        let cases: &[(&str, &[&[&str]])] = &[
            ("a,b,c\n1,2,3\n", &[&["a", "b", "c"], &["1", "2", "3"]]),
            ("a,b\r\n1,2\r\n", &[&["a", "b"], &["1", "2"]]),
            ("a,b\r\n1,2", &[&["a", "b"], &["1", "2"]]),
            ("a,,c\n", &[&["a", "", "c"]]),
            ("a,b,\n", &[&["a", "b", ""]]),
            ("\"x,y\",z\n", &[&["x,y", "z"]]),
            ("\"say \"\"hi\"\"\",2\n", &[&["say \"hi\"", "2"]]),
            ("\"two\nlines\",2\n", &[&["two\nlines", "2"]]),
            ("\"\",b\n", &[&["", "b"]]),
            ("a\"b,c\n", &[&["a\"b", "c"]]),
            ("东门,幸福小区\n", &[&["东门", "幸福小区"]]),
            ("a\n\nb\n", &[&["a"], &[""], &["b"]]),
            ("\"end\"", &[&["end"]]),
            ("", &[]),
        ];
        for (text, want) in cases {
            let want: Vec<Vec<String>> = want
                .iter()
                .map(|r| r.iter().map(|s| s.to_string()).collect())
                .collect();
            assert_eq!(rows(text), want, "{text:?}");
        }
    }

    #[test]
    fn refuses_broken_quotes_naming_the_record() {
        assert_eq!(
            parse("a,b\n\"open,2\n").unwrap_err(),
            CsvError {
                record: 1,
                message: "a quoted field is not closed"
            }
        );
        let e = parse("a,b\n1,2\n\"x\"y,3\n").unwrap_err();
        assert_eq!(e.record, 2);
        assert!(e.message.contains("after a closing quote"), "{e:?}");
    }
}
