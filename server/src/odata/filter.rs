//! The `$filter` parser (docs/http.md, "Dataverse Web API", "$filter"): a
//! lexer and a recursive-descent parser for the part of OData v4's filter
//! grammar joblog serves — `eq ne gt ge lt le`, `and or not` (`not` binds
//! tightest, then `and`, then `or`), parentheses, `contains(col,'x')` and
//! `startswith(col,'x')`, and literals (integers, `'strings'` with `''` for a
//! quote, GUIDs, `null`, `true`/`false`, ISO 8601 date-times).
//!
//! Written here rather than taken from a crate: no maintained Rust crate
//! parses OData filters into a tree one can check column by column (the
//! `odata-params` crates found accept the whole grammar and would need the
//! same checking on top). Every input is bounded ([`MAX_FILTER_BYTES`],
//! [`MAX_DEPTH`], [`MAX_NODES`]), and anything outside the subset — a
//! function, an operator, a column, a lambda, a navigation path — is an
//! error that names it and its position, never a different query.

use joblog::Timestamp;
use uuid::Uuid;

use super::{Column, Kind};

/// The longest `$filter` accepted, in bytes (after percent-decoding).
pub const MAX_FILTER_BYTES: usize = 8 * 1024;
/// The deepest nesting of parentheses and `not` accepted.
pub const MAX_DEPTH: usize = 32;
/// The most comparisons, functions and logical operators in one filter.
pub const MAX_NODES: usize = 256;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `eq`
    Eq,
    /// `ne`
    Ne,
    /// `gt`
    Gt,
    /// `ge`
    Ge,
    /// `lt`
    Lt,
    /// `le`
    Le,
}

impl CmpOp {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "eq" => CmpOp::Eq,
            "ne" => CmpOp::Ne,
            "gt" => CmpOp::Gt,
            "ge" => CmpOp::Ge,
            "lt" => CmpOp::Lt,
            "le" => CmpOp::Le,
            _ => return None,
        })
    }

    /// The operator with its operands swapped (`5 lt x` is `x gt 5`).
    fn flipped(self) -> Self {
        match self {
            CmpOp::Gt => CmpOp::Lt,
            CmpOp::Ge => CmpOp::Le,
            CmpOp::Lt => CmpOp::Gt,
            CmpOp::Le => CmpOp::Ge,
            other => other,
        }
    }
}

/// A literal value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Literal {
    /// `null`
    Null,
    /// An integer (`42`, `-1`).
    Int(i64),
    /// A string (`'it''s'` is `it's`).
    Text(String),
    /// A GUID, unquoted (`3f2504e0-4f89-11d3-9a0c-0305e82c3301`).
    Guid(Uuid),
    /// A date-time with an offset (`2026-01-01T00:00:00Z`).
    Time(Timestamp),
    /// `true` or `false` (no column of `asyncoperation` is boolean: parsed to
    /// be refused with a clear message).
    Bool(bool),
}

impl Literal {
    fn describe(&self) -> &'static str {
        match self {
            Literal::Null => "null",
            Literal::Int(_) => "an integer",
            Literal::Text(_) => "a string",
            Literal::Guid(_) => "a GUID",
            Literal::Time(_) => "a date-time",
            Literal::Bool(_) => "a boolean",
        }
    }
}

/// A parsed filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// Both hold.
    And(Box<Expr>, Box<Expr>),
    /// Either holds.
    Or(Box<Expr>, Box<Expr>),
    /// It does not hold.
    Not(Box<Expr>),
    /// `column op literal` (a literal on the left is turned around).
    Cmp {
        /// The column.
        col: Column,
        /// The operator.
        op: CmpOp,
        /// The value compared with.
        lit: Literal,
    },
    /// `contains(column, 'text')`.
    Contains(Column, String),
    /// `startswith(column, 'text')`.
    StartsWith(Column, String),
}

/// Why a `$filter` was refused: the message names the part and its
/// position (1-based, in characters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("$filter: {0}")]
pub struct FilterError(pub String);

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// A name: a column, a keyword, a function (dots kept: `Microsoft.Dynamics.CRM.Today`).
    Word(String),
    Str(String),
    Int(i64),
    Guid(Uuid),
    Time(Timestamp),
    LParen,
    RParen,
    Comma,
    /// `/` or `:` (navigation paths, lambdas) and other punctuation OData has.
    Punct(char),
}

impl Tok {
    fn show(&self) -> String {
        match self {
            Tok::Word(w) => format!("'{w}'"),
            Tok::Str(s) => format!("string '{s}'"),
            Tok::Int(i) => format!("number {i}"),
            Tok::Guid(g) => format!("GUID {g}"),
            Tok::Time(t) => format!("date-time {}", t.to_rfc3339()),
            Tok::LParen => "'('".into(),
            Tok::RParen => "')'".into(),
            Tok::Comma => "','".into(),
            Tok::Punct(c) => format!("'{c}'"),
        }
    }
}

/// Splits the input into tokens, each with its 1-based character position.
fn lex(input: &str) -> Result<Vec<(Tok, usize)>, FilterError> {
    let chars: Vec<char> = input.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let pos = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        match c {
            '(' => out.push((Tok::LParen, pos)),
            ')' => out.push((Tok::RParen, pos)),
            ',' => out.push((Tok::Comma, pos)),
            '/' | ':' | '$' | '@' | '*' | '{' | '}' | '[' | ']' | ';' | '=' => out.push((Tok::Punct(c), pos)),
            '\'' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(FilterError(format!("the string starting at position {pos} is not closed")))
                        }
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            s.push('\'');
                            i += 2;
                        }
                        Some('\'') => break,
                        Some(&ch) => {
                            s.push(ch);
                            i += 1;
                        }
                    }
                }
                out.push((Tok::Str(s), pos));
            }
            _ if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '+' => {
                // A GUID may start with a letter or a digit: try it first.
                if let Some(g) = guid_at(&chars, i) {
                    out.push((Tok::Guid(g), pos));
                    i += 36;
                    continue;
                }
                let start = i;
                if c.is_ascii_alphabetic() || c == '_' {
                    while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '.') {
                        i += 1;
                    }
                    out.push((Tok::Word(chars[start..i].iter().collect()), pos));
                    continue;
                }
                // A number or a date-time: digits and the characters of a
                // date-time (an offset may be `+01:00`, sent as %2B).
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '-' | ':' | '.' | '+'))
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                out.push((number_or_time(&word, pos)?, pos));
                continue;
            }
            other => {
                return Err(FilterError(format!("character {other:?} at position {pos} is not understood")));
            }
        }
        i += 1;
    }
    Ok(out)
}

/// A GUID of 36 characters at `i`, not followed by more of a word.
fn guid_at(chars: &[char], i: usize) -> Option<Uuid> {
    let s: String = chars.get(i..i + 36)?.iter().collect();
    let shape =
        s.char_indices().all(|(k, ch)| if [8, 13, 18, 23].contains(&k) { ch == '-' } else { ch.is_ascii_hexdigit() });
    let boundary = chars.get(i + 36).is_none_or(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'));
    if shape && boundary {
        Uuid::parse_str(&s).ok()
    } else {
        None
    }
}

fn number_or_time(word: &str, pos: usize) -> Result<Tok, FilterError> {
    let digits = word.strip_prefix('-').unwrap_or(word);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return word
            .parse::<i64>()
            .map(Tok::Int)
            .map_err(|_| FilterError(format!("number {word} at position {pos} is out of range")));
    }
    if word.contains('T') && word.contains(':') {
        return Timestamp::parse(word).map(Tok::Time).map_err(|_| {
            FilterError(format!(
                "date-time {word} at position {pos} is not valid (write it as 2026-01-01T00:00:00Z, an offset sent as %2B01:00)"
            ))
        });
    }
    if word.len() == 10 && word.as_bytes().get(4) == Some(&b'-') {
        return Err(FilterError(format!(
            "date {word} at position {pos} is not supported: the columns are date-times (write {word}T00:00:00Z)"
        )));
    }
    if digits.contains('.') || digits.contains('e') || digits.contains('E') {
        return Err(FilterError(format!(
            "decimal number {word} at position {pos} is not supported (every numeric column is an integer)"
        )));
    }
    Err(FilterError(format!("literal {word} at position {pos} is not understood")))
}

/// Functions OData (or Dataverse) has that joblog does not serve: named in
/// the refusal as functions rather than as unknown words.
fn is_function_name(w: &str) -> bool {
    w.contains('.')
        || matches!(
            w,
            "endswith"
                | "substring"
                | "tolower"
                | "toupper"
                | "trim"
                | "concat"
                | "length"
                | "indexof"
                | "year"
                | "month"
                | "day"
                | "hour"
                | "minute"
                | "second"
                | "date"
                | "time"
                | "now"
                | "round"
                | "floor"
                | "ceiling"
                | "cast"
                | "isof"
                | "any"
                | "all"
                | "matchesPattern"
                | "fractionalseconds"
                | "totaloffsetminutes"
                | "maxdatetime"
                | "mindatetime"
                | "geo.distance"
        )
}

/// Parses a `$filter` value.
pub fn parse(input: &str) -> Result<Expr, FilterError> {
    if input.len() > MAX_FILTER_BYTES {
        return Err(FilterError(format!("{} bytes is over the limit of {MAX_FILTER_BYTES}", input.len())));
    }
    let toks = lex(input)?;
    if toks.is_empty() {
        return Err(FilterError("it is empty".into()));
    }
    let mut p = Parser { toks, at: 0, nodes: 0, end: input.chars().count() + 1 };
    let e = p.or_expr(0)?;
    if let Some((t, pos)) = p.toks.get(p.at) {
        return Err(FilterError(format!("{} at position {pos} was not expected here", t.show())));
    }
    Ok(e)
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    at: usize,
    nodes: usize,
    /// The position just past the input (where "the end" is).
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at).map(|t| &t.0)
    }

    fn pos(&self) -> usize {
        self.toks.get(self.at).map_or(self.end, |t| t.1)
    }

    fn next(&mut self) -> Option<(Tok, usize)> {
        let t = self.toks.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(x)) if x == w)
    }

    fn node(&mut self) -> Result<(), FilterError> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(FilterError(format!("more than {MAX_NODES} conditions and operators")));
        }
        Ok(())
    }

    fn deeper(&self, depth: usize) -> Result<usize, FilterError> {
        if depth >= MAX_DEPTH {
            return Err(FilterError(format!("nested deeper than {MAX_DEPTH} at position {}", self.pos())));
        }
        Ok(depth + 1)
    }

    fn or_expr(&mut self, depth: usize) -> Result<Expr, FilterError> {
        let mut left = self.and_expr(depth)?;
        while self.is_word("or") {
            self.next();
            self.node()?;
            let right = self.and_expr(depth)?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and_expr(&mut self, depth: usize) -> Result<Expr, FilterError> {
        let mut left = self.unary(depth)?;
        while self.is_word("and") {
            self.next();
            self.node()?;
            let right = self.unary(depth)?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self, depth: usize) -> Result<Expr, FilterError> {
        if self.is_word("not") {
            let depth = self.deeper(depth)?;
            self.next();
            self.node()?;
            return Ok(Expr::Not(Box::new(self.unary(depth)?)));
        }
        self.primary(depth)
    }

    fn expect(&mut self, want: Tok, what: &str) -> Result<(), FilterError> {
        let pos = self.pos();
        match self.next() {
            Some((t, _)) if t == want => Ok(()),
            Some((t, _)) => Err(FilterError(format!("expected {what} at position {pos}, found {}", t.show()))),
            None => Err(FilterError(format!("expected {what} at position {pos}, found the end"))),
        }
    }

    fn primary(&mut self, depth: usize) -> Result<Expr, FilterError> {
        let pos = self.pos();
        match self.peek().cloned() {
            Some(Tok::LParen) => {
                let depth = self.deeper(depth)?;
                self.next();
                let e = self.or_expr(depth)?;
                self.expect(Tok::RParen, "')'")?;
                Ok(e)
            }
            Some(Tok::Word(w)) if self.toks.get(self.at + 1).is_some_and(|t| t.0 == Tok::LParen) => {
                self.function(&w, pos)
            }
            Some(_) => self.comparison(),
            None => Err(FilterError(format!("expected a condition at position {pos}, found the end"))),
        }
    }

    fn function(&mut self, name: &str, pos: usize) -> Result<Expr, FilterError> {
        let make: fn(Column, String) -> Expr = match name {
            "contains" => Expr::Contains,
            "startswith" => Expr::StartsWith,
            _ if is_function_name(name) || Column::parse(name).is_none() => {
                return Err(FilterError(format!("function '{name}' at position {pos} is not supported")));
            }
            _ => return Err(FilterError(format!("'(' after column '{name}' at position {pos} is not understood"))),
        };
        self.node()?;
        self.next();
        self.next();
        let col_pos = self.pos();
        let col = match self.next() {
            Some((Tok::Word(c), _)) => self.column(&c, col_pos)?,
            Some((t, _)) => {
                return Err(FilterError(format!(
                    "{name}'s first argument must be a column; found {} at position {col_pos}",
                    t.show()
                )))
            }
            None => return Err(FilterError(format!("{name} at position {pos} is not closed"))),
        };
        if !col.kind().is_text() {
            return Err(FilterError(format!(
                "{name} at position {pos} needs a text column; '{}' is {}",
                col.name(),
                col.kind().describe()
            )));
        }
        self.expect(Tok::Comma, "','")?;
        let arg_pos = self.pos();
        let text = match self.next() {
            Some((Tok::Str(s), _)) => s,
            Some((t, _)) => {
                return Err(FilterError(format!(
                    "{name}'s second argument must be a 'string'; found {} at position {arg_pos}",
                    t.show()
                )))
            }
            None => return Err(FilterError(format!("{name} at position {pos} is not closed"))),
        };
        self.expect(Tok::RParen, "')'")?;
        Ok(make(col, text))
    }

    fn column(&self, name: &str, pos: usize) -> Result<Column, FilterError> {
        if self.toks.get(self.at).is_some_and(|t| t.0 == Tok::Punct('/')) {
            return Err(FilterError(format!(
                "the path '{name}/…' at position {pos} is not supported (no navigation properties or lambdas)"
            )));
        }
        Column::parse(name).ok_or_else(|| FilterError(format!("column '{name}' at position {pos} is not supported")))
    }

    fn operand(&mut self) -> Result<Operand, FilterError> {
        let pos = self.pos();
        let t = self.next();
        Ok(match t {
            Some((Tok::Word(w), _)) => match w.as_str() {
                "null" => Operand::Lit(Literal::Null, pos),
                "true" => Operand::Lit(Literal::Bool(true), pos),
                "false" => Operand::Lit(Literal::Bool(false), pos),
                "and" | "or" | "not" => {
                    return Err(FilterError(format!("expected a column or a value at position {pos}, found '{w}'")))
                }
                _ => Operand::Col(self.column(&w, pos)?, pos),
            },
            Some((Tok::Str(s), _)) => Operand::Lit(Literal::Text(s), pos),
            Some((Tok::Int(i), _)) => Operand::Lit(Literal::Int(i), pos),
            Some((Tok::Guid(g), _)) => Operand::Lit(Literal::Guid(g), pos),
            Some((Tok::Time(t), _)) => Operand::Lit(Literal::Time(t), pos),
            Some((t, _)) => {
                return Err(FilterError(format!("expected a column or a value at position {pos}, found {}", t.show())))
            }
            None => return Err(FilterError(format!("expected a column or a value at position {pos}, found the end"))),
        })
    }

    fn comparison(&mut self) -> Result<Expr, FilterError> {
        self.node()?;
        let left = self.operand()?;
        let op_pos = self.pos();
        let op = match self.next() {
            Some((Tok::Word(w), _)) => CmpOp::parse(&w).ok_or_else(|| {
                if matches!(w.as_str(), "has" | "in" | "add" | "sub" | "mul" | "div" | "divby" | "mod") {
                    FilterError(format!("operator '{w}' at position {op_pos} is not supported"))
                } else {
                    FilterError(format!("expected an operator (eq ne gt ge lt le) at position {op_pos}, found '{w}'"))
                }
            })?,
            Some((t, _)) => {
                return Err(FilterError(format!(
                    "expected an operator (eq ne gt ge lt le) at position {op_pos}, found {}",
                    t.show()
                )))
            }
            None => {
                return Err(FilterError(format!(
                    "expected an operator (eq ne gt ge lt le) at position {op_pos}, found the end"
                )))
            }
        };
        let right = self.operand()?;
        let (col, op, lit, lit_pos) = match (left, right) {
            (Operand::Col(c, _), Operand::Lit(l, p)) => (c, op, l, p),
            (Operand::Lit(l, p), Operand::Col(c, _)) => (c, op.flipped(), l, p),
            (Operand::Col(a, _), Operand::Col(b, p)) => {
                return Err(FilterError(format!(
                    "comparing two columns ('{}' and '{}' at position {p}) is not supported",
                    a.name(),
                    b.name()
                )))
            }
            (Operand::Lit(_, p), Operand::Lit(..)) => {
                return Err(FilterError(format!("the comparison at position {p} compares two values; name a column")))
            }
        };
        check_types(col, op, &lit, lit_pos)?;
        Ok(Expr::Cmp { col, op, lit })
    }
}

enum Operand {
    Col(Column, usize),
    Lit(Literal, usize),
}

/// A column compared with a value of its type; `null` only with `eq`/`ne`;
/// GUIDs only with `eq`/`ne` (their order means nothing).
fn check_types(col: Column, op: CmpOp, lit: &Literal, pos: usize) -> Result<(), FilterError> {
    let kind = col.kind();
    let ok = match lit {
        Literal::Null => {
            if !matches!(op, CmpOp::Eq | CmpOp::Ne) {
                return Err(FilterError(format!("null at position {pos} can only be compared with eq or ne")));
            }
            true
        }
        Literal::Int(_) => kind == Kind::Int,
        Literal::Text(_) => kind.is_text(),
        Literal::Guid(_) => kind == Kind::Guid,
        Literal::Time(_) => kind == Kind::Time,
        Literal::Bool(_) => false,
    };
    if !ok {
        let hint = match (kind, lit) {
            (Kind::Guid, Literal::Text(_)) => " (write a GUID without quotes)",
            (Kind::Ident, Literal::Guid(_)) => {
                " (in joblog this column holds a name, not a GUID: compare it with a 'string', see docs/http.md)"
            }
            _ => "",
        };
        return Err(FilterError(format!(
            "'{}' is {}; {} at position {pos} cannot be compared with it{hint}",
            col.name(),
            kind.describe(),
            lit.describe()
        )));
    }
    if kind == Kind::Guid && !matches!(op, CmpOp::Eq | CmpOp::Ne) && *lit != Literal::Null {
        return Err(FilterError(format!("'{}' is a GUID: only eq and ne compare GUIDs (position {pos})", col.name())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &str) -> String {
        parse(s).unwrap_err().0
    }

    #[test]
    fn precedence_not_and_or() {
        let e = parse("statecode eq 0 or statecode eq 1 and not statuscode eq 12").unwrap();
        let Expr::Or(_, right) = e else { panic!("or is the loosest: {e:?}") };
        let Expr::And(_, not) = *right else { panic!("and binds tighter than or") };
        assert!(matches!(*not, Expr::Not(_)));
        let e = parse("(statecode eq 0 or statecode eq 1) and name eq 'x'").unwrap();
        assert!(matches!(e, Expr::And(..)));
    }

    #[test]
    fn literals() {
        let e = parse("name eq 'it''s'").unwrap();
        assert_eq!(e, Expr::Cmp { col: Column::Name, op: CmpOp::Eq, lit: Literal::Text("it's".into()) });
        let g = "3f2504e0-4f89-11d3-9a0c-0305e82c3301";
        let e = parse(&format!("asyncoperationid eq {g}")).unwrap();
        assert_eq!(e, Expr::Cmp { col: Column::Id, op: CmpOp::Eq, lit: Literal::Guid(Uuid::parse_str(g).unwrap()) });
        let e = parse("createdon ge 2026-01-01T00:00:00Z").unwrap();
        assert!(matches!(e, Expr::Cmp { lit: Literal::Time(_), op: CmpOp::Ge, .. }));
        let e = parse("5 lt retrycount").unwrap();
        assert_eq!(e, Expr::Cmp { col: Column::RetryCount, op: CmpOp::Gt, lit: Literal::Int(5) });
        assert!(parse("errorcode eq -1001").is_ok());
        assert!(parse("message eq null").is_ok());
        assert!(parse("contains(name,'x') and startswith(_ownerid_value, 'al')").is_ok());
    }

    #[test]
    fn refusals_name_the_part() {
        assert_eq!(err("endswith(name,'x')"), "function 'endswith' at position 1 is not supported");
        assert!(err("name eq 'a' and endswith(name,'x')").contains("function 'endswith' at position 17"));
        assert!(err("statecode has 1").contains("operator 'has' at position 11"));
        assert!(err("nosuch eq 1").contains("column 'nosuch' at position 1"));
        assert!(err("ownerid/fullname eq 'x'").contains("path 'ownerid/…'"));
        assert!(err("Microsoft.Dynamics.CRM.Today(PropertyName='createdon')")
            .contains("function 'Microsoft.Dynamics.CRM.Today'"));
        assert!(err("statecode eq 'x'").contains("cannot be compared"));
        assert!(err("statecode gt null").contains("null"));
        assert!(err("name eq 'x").contains("not closed"));
        assert!(err("retrycount eq 1.5").contains("decimal"));
        assert!(err("createdon gt 2026-01-01").contains("date 2026-01-01"));
        assert!(err("statecode eq 1 statecode").contains("not expected"));
        assert!(err("statecode eq").contains("the end"));
        assert!(err("").contains("empty"));
        assert!(err("name eq retrycount").contains("two columns"));
    }

    #[test]
    fn bounds() {
        let deep = format!("{}statecode eq 1{}", "(".repeat(40), ")".repeat(40));
        assert!(err(&deep).contains("nested deeper"));
        let nots = format!("{}statecode eq 1", "not ".repeat(40));
        assert!(err(&nots).contains("nested deeper"));
        let many = vec!["statecode eq 1"; 300].join(" or ");
        assert!(err(&many).contains("more than"));
        let long = format!("name eq '{}'", "x".repeat(MAX_FILTER_BYTES));
        assert!(err(&long).contains("over the limit"));
    }

    /// Random text over the characters the grammar cares about (a seeded
    /// xorshift): parsing never panics, and every refusal says `$filter:`
    /// and a position or a bound. (The fuzz target `odata_filter` goes on
    /// from raw bytes with coverage.)
    #[test]
    fn random_text_never_panics() {
        let alphabet: Vec<char> = "()',/: -+.$@*eqandortsc0123456789abcdefTZé_".chars().collect();
        let words = ["statecode", "name", "eq", "and", "or", "not", "contains", "null", "2026-01-01T00:00:00Z", "'x'"];
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..30_000 {
            let n = next() % 40;
            let mut text = String::new();
            for _ in 0..n {
                if next() % 4 == 0 {
                    text.push_str(words[(next() % words.len() as u64) as usize]);
                } else {
                    text.push(alphabet[(next() % alphabet.len() as u64) as usize]);
                }
            }
            if let Err(e) = parse(&text) {
                assert!(e.to_string().starts_with("$filter: "), "{text:?}: {e}");
            }
        }
    }
}
