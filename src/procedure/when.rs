//! `when` expressions: `from_version < 2.2.3 && from_version >= 2.2.0`, `hop.raft`,
//! `node.role == "primary" || !(x ~ "2.1")`. Operands are variable names, quoted strings or bare
//! version literals; two operands that both parse as versions compare as versions.

use std::cmp::Ordering;

use super::template::Scope;
use super::version::{Op, Version};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WhenError {
    #[error("cannot parse `when` expression: {0}")]
    Syntax(String),
    #[error("unknown variable `{0}`")]
    Unknown(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Var(String),
    Literal(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A lone operand: true when its value is `true`.
    Truthy(Operand),
    Cmp(Operand, CmpOp, Operand),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Op(Op),
    /// `x ~ "2.1"`: x is in that version line.
    InLine,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LParen,
    RParen,
    And,
    Or,
    Not,
    Cmp(CmpOp),
    Str(String),
    Word(String),
}

fn tokenize(s: &str) -> Result<Vec<Tok>, WhenError> {
    let mut toks = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let two = |i: usize| -> String { chars[i..(i + 2).min(chars.len())].iter().collect() };
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let pair = two(i);
        let (tok, len) = match pair.as_str() {
            "&&" => (Tok::And, 2),
            "||" => (Tok::Or, 2),
            "==" => (Tok::Cmp(CmpOp::Op(Op::Eq)), 2),
            "!=" => (Tok::Cmp(CmpOp::Op(Op::Ne)), 2),
            "<=" => (Tok::Cmp(CmpOp::Op(Op::Le)), 2),
            ">=" => (Tok::Cmp(CmpOp::Op(Op::Ge)), 2),
            _ => match c {
                '(' => (Tok::LParen, 1),
                ')' => (Tok::RParen, 1),
                '!' => (Tok::Not, 1),
                '<' => (Tok::Cmp(CmpOp::Op(Op::Lt)), 1),
                '>' => (Tok::Cmp(CmpOp::Op(Op::Gt)), 1),
                '~' => (Tok::Cmp(CmpOp::InLine), 1),
                '"' | '\'' => {
                    let mut j = i + 1;
                    let mut text = String::new();
                    while j < chars.len() && chars[j] != c {
                        if chars[j] == '\\' && j + 1 < chars.len() {
                            j += 1;
                        }
                        text.push(chars[j]);
                        j += 1;
                    }
                    if j >= chars.len() {
                        return Err(WhenError::Syntax("unterminated string".into()));
                    }
                    (Tok::Str(text), j + 1 - i)
                }
                c if is_word(c) => {
                    let mut j = i;
                    while j < chars.len() && is_word(chars[j]) {
                        j += 1;
                    }
                    (Tok::Word(chars[i..j].iter().collect()), j - i)
                }
                other => {
                    return Err(WhenError::Syntax(format!("unexpected character `{other}`")));
                }
            },
        };
        toks.push(tok);
        i += len;
    }
    Ok(toks)
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | '-')
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    depth: usize,
}

/// Deeper nesting than this is certainly a mistake, and must not exhaust the stack.
const MAX_DEPTH: usize = 64;
const MAX_TOKENS: usize = 1024;

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn or(&mut self) -> Result<Expr, WhenError> {
        let mut left = self.and()?;
        while self.peek() == Some(&Tok::Or) {
            self.pos += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, WhenError> {
        let mut left = self.unary()?;
        while self.peek() == Some(&Tok::And) {
            self.pos += 1;
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, WhenError> {
        if matches!(self.peek(), Some(Tok::Not | Tok::LParen)) {
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return Err(WhenError::Syntax(
                    "the expression is nested too deeply".into(),
                ));
            }
            let e = if self.next() == Some(Tok::Not) {
                Expr::Not(Box::new(self.unary()?))
            } else {
                let e = self.or()?;
                if self.next() != Some(Tok::RParen) {
                    return Err(WhenError::Syntax("missing `)`".into()));
                }
                e
            };
            self.depth -= 1;
            return Ok(e);
        }
        let left = self.operand()?;
        if let Some(Tok::Cmp(op)) = self.peek().cloned() {
            self.pos += 1;
            let right = self.operand()?;
            return Ok(Expr::Cmp(left, op, right));
        }
        Ok(Expr::Truthy(left))
    }

    fn operand(&mut self) -> Result<Operand, WhenError> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(Operand::Literal(s)),
            Some(Tok::Word(w)) => {
                let starts_numeric = w.starts_with(|c: char| c.is_ascii_digit())
                    || (w.starts_with(['v', 'V'])
                        && w[1..].starts_with(|c: char| c.is_ascii_digit()));
                if starts_numeric || w == "true" || w == "false" {
                    Ok(Operand::Literal(w))
                } else {
                    Ok(Operand::Var(w))
                }
            }
            Some(t) => Err(WhenError::Syntax(format!(
                "expected a variable, a version or a quoted string, found {}",
                describe(&t)
            ))),
            None => Err(WhenError::Syntax("the expression ends too early".into())),
        }
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::LParen => "`(`".into(),
        Tok::RParen => "`)`".into(),
        Tok::And => "`&&`".into(),
        Tok::Or => "`||`".into(),
        Tok::Not => "`!`".into(),
        Tok::Cmp(_) => "a comparison operator".into(),
        Tok::Str(s) => format!("\"{s}\""),
        Tok::Word(w) => format!("`{w}`"),
    }
}

impl Expr {
    pub fn parse(s: &str) -> Result<Expr, WhenError> {
        let toks = tokenize(s)?;
        if toks.is_empty() {
            return Err(WhenError::Syntax("the expression is empty".into()));
        }
        // `a && a && ...` builds a left-deep tree that evaluation walks recursively.
        if toks.len() > MAX_TOKENS {
            return Err(WhenError::Syntax(format!(
                "the expression is too long (over {MAX_TOKENS} tokens)"
            )));
        }
        let mut p = Parser {
            toks,
            pos: 0,
            depth: 0,
        };
        let e = p.or()?;
        match p.peek() {
            None => Ok(e),
            Some(t) => Err(WhenError::Syntax(format!("unexpected {}", describe(t)))),
        }
    }

    /// The variable names the expression reads.
    pub fn variables(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect(&self, out: &mut Vec<String>) {
        let mut add = |o: &Operand| {
            if let Operand::Var(v) = o {
                out.push(v.clone());
            }
        };
        match self {
            Expr::Truthy(o) => add(o),
            Expr::Cmp(a, _, b) => {
                add(a);
                add(b);
            }
            Expr::Not(e) => e.collect(out),
            Expr::And(a, b) | Expr::Or(a, b) => {
                a.collect(out);
                b.collect(out);
            }
        }
    }

    pub fn eval(&self, scope: &Scope) -> Result<bool, WhenError> {
        Ok(match self {
            Expr::Truthy(o) => value(o, scope)? == "true",
            Expr::Cmp(a, op, b) => compare(&value(a, scope)?, *op, &value(b, scope)?),
            Expr::Not(e) => !e.eval(scope)?,
            Expr::And(a, b) => a.eval(scope)? && b.eval(scope)?,
            Expr::Or(a, b) => a.eval(scope)? || b.eval(scope)?,
        })
    }
}

fn value(o: &Operand, scope: &Scope) -> Result<String, WhenError> {
    match o {
        Operand::Literal(s) => Ok(s.clone()),
        Operand::Var(v) => scope.get(v).ok_or_else(|| WhenError::Unknown(v.clone())),
    }
}

fn compare(a: &str, op: CmpOp, b: &str) -> bool {
    let versions = Version::parse(a).ok().zip(Version::parse(b).ok());
    match op {
        CmpOp::InLine => match versions {
            Some((x, line)) => x.in_line(&line),
            None => a.starts_with(b),
        },
        CmpOp::Op(op) => {
            let ord: Ordering = match versions {
                Some((x, y)) => x.cmp(&y),
                None => a.cmp(b),
            };
            op.holds(ord)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(pairs: &[(&str, &str)]) -> Scope {
        let mut s = Scope::default();
        for (k, v) in pairs {
            s.set(*k, *v);
        }
        s
    }

    fn eval(e: &str, pairs: &[(&str, &str)]) -> bool {
        Expr::parse(e).unwrap().eval(&scope(pairs)).unwrap()
    }

    #[test]
    fn version_ranges() {
        let e = "from_version < 2.2.3 && from_version >= 2.2.0";
        assert!(eval(e, &[("from_version", "2.2.1")]));
        assert!(!eval(e, &[("from_version", "2.2.10")]));
        assert!(!eval(e, &[("from_version", "2.1.9")]));
    }

    #[test]
    fn strings_lines_not_and_parens() {
        let s = &[
            ("node.role", "primary"),
            ("hop.version", "1.26.11"),
            ("hop.raft", "true"),
        ];
        assert!(eval("node.role == \"primary\"", s));
        assert!(eval("node.role != 'replica'", s));
        assert!(eval("hop.version ~ \"1.26\"", s));
        assert!(!eval("hop.version ~ 1.2", s));
        assert!(eval("hop.raft", s));
        assert!(eval(
            "!(node.role == \"replica\" || hop.version < 1.26) && hop.raft",
            s
        ));
        assert!(eval("hop.version >= v1.26.9", s));
    }

    #[test]
    fn errors_and_variables() {
        assert!(matches!(Expr::parse("a <"), Err(WhenError::Syntax(_))));
        assert!(matches!(Expr::parse("(a"), Err(WhenError::Syntax(_))));
        assert!(matches!(Expr::parse("a b"), Err(WhenError::Syntax(_))));
        assert!(matches!(Expr::parse("a = b"), Err(WhenError::Syntax(_))));
        assert!(matches!(Expr::parse(""), Err(WhenError::Syntax(_))));
        let deep = format!("{}a{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(matches!(Expr::parse(&deep), Err(WhenError::Syntax(_))));
        let long = vec!["a"; 100_000].join(" && ");
        assert!(matches!(Expr::parse(&long), Err(WhenError::Syntax(_))));
        assert!(Expr::parse("!!(a)")
            .unwrap()
            .eval(&scope(&[("a", "true")]))
            .unwrap());
        let e = Expr::parse("x < 1.2 || y == \"z\"").unwrap();
        assert_eq!(e.variables(), vec!["x", "y"]);
        assert_eq!(
            e.eval(&Scope::default()),
            Err(WhenError::Unknown("x".into()))
        );
    }
}
