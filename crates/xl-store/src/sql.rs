//! Small helpers shared by the repositories: reading typed values out of `AnyRow`s, building
//! filtered queries with `$n` placeholders, and time conversion.

use std::fmt::Display;
use std::str::FromStr;

use jiff::Timestamp;
use sqlx::any::AnyRow;
use sqlx::{Any, AssertSqlSafe, Row};

use crate::StoreError;

pub(crate) type Query = sqlx::query::Query<'static, Any, sqlx::any::AnyArguments>;

/// Maps a sqlx error to [`StoreError::Database`] for the operation `op`.
pub(crate) fn db(op: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Database { op, source }
}

pub(crate) fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

pub(crate) fn opt_ms(t: Option<Timestamp>) -> Option<i64> {
    t.map(ms)
}

pub(crate) fn json_text(v: &impl serde::Serialize) -> String {
    // Values built from serde_json::Value and plain structs always serialise.
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_owned())
}

/// Free text from outside (an error quoting a payload, a person's note) as stored: NUL becomes
/// U+FFFD. PostgreSQL's TEXT cannot hold NUL and would fail the whole transaction (a batch of
/// gate events, for one bad payload); SQLite stores the same text, so both backends agree.
pub(crate) fn text(s: &str) -> String {
    s.replace('\0', "\u{fffd}")
}

/// Typed reads with the operation's name in the error.
pub(crate) struct Reader<'r> {
    pub row: &'r AnyRow,
    pub op: &'static str,
}

impl Reader<'_> {
    fn corrupt(&self, column: &str, detail: impl Display) -> StoreError {
        StoreError::Corrupt {
            op: self.op,
            column: column.to_owned(),
            detail: detail.to_string(),
        }
    }

    pub fn text(&self, c: &str) -> Result<String, StoreError> {
        self.row.try_get::<String, _>(c).map_err(db(self.op))
    }

    pub fn opt_text(&self, c: &str) -> Result<Option<String>, StoreError> {
        self.row
            .try_get::<Option<String>, _>(c)
            .map_err(db(self.op))
    }

    pub fn int(&self, c: &str) -> Result<i64, StoreError> {
        self.row.try_get::<i64, _>(c).map_err(db(self.op))
    }

    pub fn opt_int(&self, c: &str) -> Result<Option<i64>, StoreError> {
        self.row.try_get::<Option<i64>, _>(c).map_err(db(self.op))
    }

    pub fn bool(&self, c: &str) -> Result<bool, StoreError> {
        Ok(self.int(c)? != 0)
    }

    pub fn u32(&self, c: &str) -> Result<u32, StoreError> {
        let v = self.int(c)?;
        u32::try_from(v).map_err(|e| self.corrupt(c, e))
    }

    pub fn u64(&self, c: &str) -> Result<u64, StoreError> {
        let v = self.int(c)?;
        u64::try_from(v).map_err(|e| self.corrupt(c, e))
    }

    pub fn ts(&self, c: &str) -> Result<Timestamp, StoreError> {
        let v = self.int(c)?;
        Timestamp::from_millisecond(v).map_err(|e| self.corrupt(c, e))
    }

    pub fn opt_ts(&self, c: &str) -> Result<Option<Timestamp>, StoreError> {
        match self.opt_int(c)? {
            None => Ok(None),
            Some(v) => Timestamp::from_millisecond(v)
                .map(Some)
                .map_err(|e| self.corrupt(c, e)),
        }
    }

    pub fn json<T: serde::de::DeserializeOwned>(&self, c: &str) -> Result<T, StoreError> {
        let s = self.text(c)?;
        serde_json::from_str(&s).map_err(|e| self.corrupt(c, e))
    }

    /// Text parsed with `FromStr` (ids, enums).
    pub fn parse<T>(&self, c: &str) -> Result<T, StoreError>
    where
        T: FromStr,
        T::Err: Display,
    {
        let s = self.text(c)?;
        s.parse().map_err(|e| self.corrupt(c, e))
    }

    pub fn opt_parse<T>(&self, c: &str) -> Result<Option<T>, StoreError>
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.opt_text(c)? {
            None => Ok(None),
            Some(s) => s.parse().map(Some).map_err(|e| self.corrupt(c, e)),
        }
    }
}

/// A bound value of a dynamically built query.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    I64(i64),
    Text(String),
}

/// `SELECT ... WHERE a AND b ... ORDER BY ... LIMIT n`, with `$n` placeholders numbered as
/// conditions are added.
#[derive(Debug, Default)]
pub(crate) struct Filter {
    conds: Vec<String>,
    args: Vec<Arg>,
    /// Set when a condition can match nothing (an empty `IN` list).
    pub empty: bool,
}

impl Filter {
    fn placeholder(&mut self, a: Arg) -> String {
        self.args.push(a);
        format!("${}", self.args.len())
    }

    /// `col op value`; `col` and `op` are code, never user input.
    pub fn cmp(&mut self, col: &str, op: &str, a: Arg) {
        let p = self.placeholder(a);
        self.conds.push(format!("{col} {op} {p}"));
    }

    /// `from <= col < to`, each bound only when given.
    pub fn time_range(&mut self, col: &str, from: Option<Timestamp>, to: Option<Timestamp>) {
        if let Some(from) = from {
            self.cmp(col, ">=", Arg::I64(ms(from)));
        }
        if let Some(to) = to {
            self.cmp(col, "<", Arg::I64(ms(to)));
        }
    }

    /// `col IN (...)` for `Some(values)`; nothing for `None`.
    pub fn any_of<I, S>(&mut self, col: &str, values: Option<I>)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let Some(values) = values else { return };
        let ps: Vec<String> = values
            .into_iter()
            .map(|v| self.placeholder(Arg::Text(v.into())))
            .collect();
        if ps.is_empty() {
            self.empty = true;
        } else {
            self.conds.push(format!("{col} IN ({})", ps.join(", ")));
        }
    }

    /// The query `head WHERE ... tail LIMIT $n` with its arguments bound.
    pub fn query(mut self, head: &str, tail: &str, limit: Option<u32>) -> Query {
        let mut sql = head.to_owned();
        if !self.conds.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&self.conds.join(" AND "));
        }
        sql.push(' ');
        sql.push_str(tail);
        if let Some(limit) = limit {
            let p = self.placeholder(Arg::I64(i64::from(limit)));
            sql.push_str(" LIMIT ");
            sql.push_str(&p);
        }
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for a in self.args {
            q = match a {
                Arg::I64(v) => q.bind(v),
                Arg::Text(s) => q.bind(s),
            };
        }
        q
    }
}
