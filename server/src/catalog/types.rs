//! SQL type names (as Flink and Fluss users write them) to Arrow types.
//!
//! The parser is a small recursive descent over tokens so nested types such as
//! `MAP<STRING, ARRAY<ROW<a INT, b DECIMAL(10, 2)>>>` work. It returns the normalized spelling
//! too, which is what `get_table` echoes back.

use crate::error::{Error, Result};
use arrow_schema::{DataType, Field, Fields, TimeUnit};
use std::sync::Arc;

/// A parsed SQL type: its canonical spelling and its Arrow type.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlType {
    pub normalized: String,
    pub arrow: DataType,
}

/// Parses a SQL type name, naming the column in the error.
pub fn parse_sql_type(column: &str, text: &str) -> Result<SqlType> {
    let tokens = tokenize(text).map_err(|e| bad(column, text, &e))?;
    let mut parser = Parser { tokens, pos: 0 };
    let ty = parser.parse_type().map_err(|e| bad(column, text, &e))?;
    if parser.pos != parser.tokens.len() {
        return Err(bad(column, text, &format!("unexpected {:?} after the type", parser.tokens[parser.pos])));
    }
    Ok(ty)
}

fn bad(column: &str, text: &str, why: &str) -> Error {
    Error::invalid(format!("column {column:?}: invalid type {text:?}: {why}"))
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Number(u32),
    Punct(char),
}

fn tokenize(text: &str) -> std::result::Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            let s: String = chars[start..i].iter().collect();
            tokens.push(Token::Number(s.parse().map_err(|_| format!("number {s} is too large"))?));
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            tokens.push(Token::Word(chars[start..i].iter().collect()));
        } else if c == '`' {
            let start = i + 1;
            i += 1;
            while i < chars.len() && chars[i] != '`' {
                i += 1;
            }
            if i == chars.len() {
                return Err("unterminated `quoted` field name".into());
            }
            tokens.push(Token::Word(chars[start..i].iter().collect()));
            i += 1;
        } else if "<>(),".contains(c) {
            tokens.push(Token::Punct(c));
            i += 1;
        } else {
            return Err(format!("unexpected character {c:?}"));
        }
    }
    if tokens.is_empty() {
        return Err("empty type".into());
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

type PResult<T> = std::result::Result<T, String>;

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> PResult<Token> {
        let t = self.tokens.get(self.pos).cloned().ok_or("unexpected end of type")?;
        self.pos += 1;
        Ok(t)
    }

    fn eat_punct(&mut self, c: char) -> bool {
        if self.peek() == Some(&Token::Punct(c)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_punct(&mut self, c: char) -> PResult<()> {
        if self.eat_punct(c) {
            Ok(())
        } else {
            Err(format!("expected '{c}', found {:?}", self.peek()))
        }
    }

    fn eat_word(&mut self, w: &str) -> bool {
        if matches!(self.peek(), Some(Token::Word(x)) if x.eq_ignore_ascii_case(w)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn number(&mut self) -> PResult<u32> {
        match self.next()? {
            Token::Number(n) => Ok(n),
            other => Err(format!("expected a number, found {other:?}")),
        }
    }

    /// `(n)` if present.
    fn optional_len(&mut self) -> PResult<Option<u32>> {
        if self.eat_punct('(') {
            let n = self.number()?;
            self.expect_punct(')')?;
            Ok(Some(n))
        } else {
            Ok(None)
        }
    }

    /// A nested element type, which may carry `NOT NULL`.
    fn parse_nested(&mut self) -> PResult<(SqlType, bool)> {
        let ty = self.parse_type()?;
        let nullable = !(self.eat_word("NOT") && {
            if !self.eat_word("NULL") {
                return Err("expected NULL after NOT".into());
            }
            true
        });
        Ok((ty, nullable))
    }

    fn parse_type(&mut self) -> PResult<SqlType> {
        let word = match self.next()? {
            Token::Word(w) => w.to_ascii_uppercase(),
            other => return Err(format!("expected a type name, found {other:?}")),
        };
        let simple = |n: &str, t: DataType| Ok(SqlType { normalized: n.to_string(), arrow: t });
        match word.as_str() {
            "BOOLEAN" | "BOOL" => simple("BOOLEAN", DataType::Boolean),
            "TINYINT" => simple("TINYINT", DataType::Int8),
            "SMALLINT" => simple("SMALLINT", DataType::Int16),
            "INT" | "INTEGER" => simple("INT", DataType::Int32),
            "BIGINT" => simple("BIGINT", DataType::Int64),
            "FLOAT" | "REAL" => simple("FLOAT", DataType::Float32),
            "DOUBLE" => {
                self.eat_word("PRECISION");
                simple("DOUBLE", DataType::Float64)
            }
            "STRING" => simple("STRING", DataType::Utf8),
            "VARCHAR" | "CHAR" => {
                let n = self.optional_len()?;
                if n == Some(0) {
                    return Err(format!("{word} length must be >= 1"));
                }
                let normalized = match n {
                    Some(n) => format!("{word}({n})"),
                    None => word.clone(),
                };
                Ok(SqlType { normalized, arrow: DataType::Utf8 })
            }
            "BYTES" => simple("BYTES", DataType::Binary),
            "VARBINARY" => {
                let normalized = match self.optional_len()? {
                    Some(n) => format!("VARBINARY({n})"),
                    None => "VARBINARY".into(),
                };
                Ok(SqlType { normalized, arrow: DataType::Binary })
            }
            "BINARY" => {
                let n = self.optional_len()?.unwrap_or(1);
                if n == 0 || n > i32::MAX as u32 {
                    return Err("BINARY length must be >= 1".into());
                }
                Ok(SqlType { normalized: format!("BINARY({n})"), arrow: DataType::FixedSizeBinary(n as i32) })
            }
            "DECIMAL" | "NUMERIC" | "DEC" => {
                let (p, s) = if self.eat_punct('(') {
                    let p = self.number()?;
                    let s = if self.eat_punct(',') { self.number()? } else { 0 };
                    self.expect_punct(')')?;
                    (p, s)
                } else {
                    (10, 0)
                };
                if !(1..=38).contains(&p) {
                    return Err(format!("DECIMAL precision {p} is outside 1..=38"));
                }
                if s > p {
                    return Err(format!("DECIMAL scale {s} exceeds precision {p}"));
                }
                Ok(SqlType { normalized: format!("DECIMAL({p}, {s})"), arrow: DataType::Decimal128(p as u8, s as i8) })
            }
            "DATE" => simple("DATE", DataType::Date32),
            "TIME" => {
                let p = self.optional_len()?.unwrap_or(0);
                let arrow = match p {
                    0 => DataType::Time32(TimeUnit::Second),
                    1..=3 => DataType::Time32(TimeUnit::Millisecond),
                    4..=6 => DataType::Time64(TimeUnit::Microsecond),
                    7..=9 => DataType::Time64(TimeUnit::Nanosecond),
                    _ => return Err(format!("TIME precision {p} is outside 0..=9")),
                };
                Ok(SqlType { normalized: format!("TIME({p})"), arrow })
            }
            "TIMESTAMP" | "TIMESTAMP_LTZ" => {
                let p = self.optional_len()?.unwrap_or(6);
                let mut ltz = word == "TIMESTAMP_LTZ";
                if !ltz && self.eat_word("WITH") {
                    if !(self.eat_word("LOCAL") && self.eat_word("TIME") && self.eat_word("ZONE")) {
                        return Err("expected WITH LOCAL TIME ZONE".into());
                    }
                    ltz = true;
                } else if !ltz && self.eat_word("WITHOUT") && !(self.eat_word("TIME") && self.eat_word("ZONE")) {
                    return Err("expected WITHOUT TIME ZONE".into());
                }
                let unit = time_unit(p)?;
                let tz = ltz.then(|| Arc::from("UTC"));
                let name = if ltz { "TIMESTAMP_LTZ" } else { "TIMESTAMP" };
                Ok(SqlType { normalized: format!("{name}({p})"), arrow: DataType::Timestamp(unit, tz) })
            }
            "ARRAY" => {
                self.expect_punct('<')?;
                let (elem, nullable) = self.parse_nested()?;
                self.expect_punct('>')?;
                let nn = if nullable { "" } else { " NOT NULL" };
                Ok(SqlType {
                    normalized: format!("ARRAY<{}{nn}>", elem.normalized),
                    arrow: DataType::List(Arc::new(Field::new("element", elem.arrow, nullable))),
                })
            }
            "MAP" => {
                self.expect_punct('<')?;
                let (key, _) = self.parse_nested()?;
                self.expect_punct(',')?;
                let (value, nullable) = self.parse_nested()?;
                self.expect_punct('>')?;
                let nn = if nullable { "" } else { " NOT NULL" };
                let entries = Field::new(
                    "entries",
                    DataType::Struct(Fields::from(vec![Field::new("key", key.arrow, false), Field::new("value", value.arrow, nullable)])),
                    false,
                );
                Ok(SqlType {
                    normalized: format!("MAP<{}, {}{nn}>", key.normalized, value.normalized),
                    arrow: DataType::Map(Arc::new(entries), false),
                })
            }
            "ROW" | "STRUCT" => {
                let close = if self.eat_punct('<') {
                    '>'
                } else {
                    self.expect_punct('(')?;
                    ')'
                };
                let mut fields = Vec::new();
                let mut parts = Vec::new();
                loop {
                    let name = match self.next()? {
                        Token::Word(w) => w,
                        other => return Err(format!("expected a field name, found {other:?}")),
                    };
                    let (ty, nullable) = self.parse_nested()?;
                    if fields.iter().any(|f: &Field| f.name() == &name) {
                        return Err(format!("duplicate ROW field {name:?}"));
                    }
                    let nn = if nullable { "" } else { " NOT NULL" };
                    parts.push(format!("`{name}` {}{nn}", ty.normalized));
                    fields.push(Field::new(name, ty.arrow, nullable));
                    if !self.eat_punct(',') {
                        break;
                    }
                }
                self.expect_punct(close)?;
                Ok(SqlType { normalized: format!("ROW<{}>", parts.join(", ")), arrow: DataType::Struct(Fields::from(fields)) })
            }
            other => Err(format!("unknown type name {other}")),
        }
    }
}

fn time_unit(precision: u32) -> PResult<TimeUnit> {
    Ok(match precision {
        0 => TimeUnit::Second,
        1..=3 => TimeUnit::Millisecond,
        4..=6 => TimeUnit::Microsecond,
        7..=9 => TimeUnit::Nanosecond,
        _ => return Err(format!("TIMESTAMP precision {precision} is outside 0..=9")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arrow(t: &str) -> DataType {
        parse_sql_type("c", t).unwrap().arrow
    }

    #[test]
    fn given_scalar_type_names_when_parsed_should_map_to_arrow() {
        assert_eq!(arrow("bigint"), DataType::Int64);
        assert_eq!(arrow("INTEGER"), DataType::Int32);
        assert_eq!(arrow("VARCHAR(20)"), DataType::Utf8);
        assert_eq!(arrow("DECIMAL(10,2)"), DataType::Decimal128(10, 2));
        assert_eq!(arrow("BINARY(16)"), DataType::FixedSizeBinary(16));
        assert_eq!(arrow("TIMESTAMP(3)"), DataType::Timestamp(TimeUnit::Millisecond, None));
        assert_eq!(arrow("TIMESTAMP_LTZ(3)"), DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())));
        assert_eq!(arrow("TIMESTAMP(9) WITH LOCAL TIME ZONE"), DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())));
        assert_eq!(arrow("TIME"), DataType::Time32(TimeUnit::Second));
        assert_eq!(arrow("DATE"), DataType::Date32);
    }

    #[test]
    fn given_nested_types_when_parsed_should_normalize_and_map() {
        let t = parse_sql_type("c", "map<string, array<row<a int not null, b decimal(5,1)>>>").unwrap();
        assert_eq!(t.normalized, "MAP<STRING, ARRAY<ROW<`a` INT NOT NULL, `b` DECIMAL(5, 1)>>>");
        assert!(matches!(t.arrow, DataType::Map(_, false)));
        assert_eq!(parse_sql_type("c", &t.normalized).unwrap(), t, "normalized spelling parses to the same type");
    }

    #[test]
    fn given_bad_types_when_parsed_should_name_column_and_problem() {
        for (t, why) in [
            ("BIGGINT", "unknown type name"),
            ("DECIMAL(40,2)", "precision"),
            ("ARRAY<INT", "expected '>'"),
            ("INT INT", "unexpected"),
            ("", "empty"),
        ] {
            let err = parse_sql_type("col_x", t).unwrap_err().to_string();
            assert!(err.contains("col_x") && err.contains(why), "{t}: {err}");
        }
    }
}
