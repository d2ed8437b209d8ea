//! Per-request values: a request field of `x-racy.request` may hold `${expr}`, an integer
//! expression of the request's index in its burst (`request`, from 0) and the burst's
//! number (`burst`, from 0), so that the requests of one burst differ:
//! `doctor: "${request % 2 + 1}"` sends doctor 1, 2, 1, 2, … (docs/formats.md#per-request-values).
//!
//! An expression is integers, `request`, `burst`, `+ - * / %`, unary `-` and parentheses,
//! with the usual precedence; `/` and `%` truncate toward zero as Rust's integers do, and
//! their right side must be a constant other than 0, so that no index can divide by zero.
//! A `${...}` that names neither `request` nor `burst` is a matrix variable, substituted per
//! cell as everywhere else in the stack file.

/// A parsed expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// A whole number.
    Num(i64),
    /// The request's index in its burst.
    Request,
    /// The burst's number (its repetition).
    Burst,
    /// `-e`.
    Neg(Box<Expr>),
    /// `a op b`.
    Bin(Box<Expr>, Op, Box<Expr>),
}

/// A binary operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `+`.
    Add,
    /// `-`.
    Sub,
    /// `*`.
    Mul,
    /// `/`.
    Div,
    /// `%`.
    Rem,
}

impl Expr {
    /// Parses the text between `${` and `}`.
    pub fn parse(text: &str) -> Result<Expr, String> {
        let tokens = tokens(text)?;
        let mut p = Parser { tokens, at: 0 };
        let e = p.sum()?;
        match p.tokens.get(p.at) {
            None => Ok(e),
            Some(t) => Err(format!("unexpected '{}'", t.text())),
        }
    }

    /// Its value for request `request` of burst `burst`; `None` when a step overflows.
    pub fn eval(&self, request: i64, burst: i64) -> Option<i64> {
        Some(match self {
            Expr::Num(n) => *n,
            Expr::Request => request,
            Expr::Burst => burst,
            Expr::Neg(e) => e.eval(request, burst)?.checked_neg()?,
            Expr::Bin(a, op, b) => {
                let (a, b) = (a.eval(request, burst)?, b.eval(request, burst)?);
                match op {
                    Op::Add => a.checked_add(b)?,
                    Op::Sub => a.checked_sub(b)?,
                    Op::Mul => a.checked_mul(b)?,
                    Op::Div => a.checked_div(b)?,
                    Op::Rem => a.checked_rem(b)?,
                }
            }
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Num(i64),
    Name(String),
    Sym(char),
}

impl Token {
    fn text(&self) -> String {
        match self {
            Token::Num(n) => n.to_string(),
            Token::Name(s) => s.clone(),
            Token::Sym(c) => c.to_string(),
        }
    }
}

fn tokens(text: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c.is_whitespace() {
            continue;
        }
        if c.is_ascii_digit() {
            let mut end = i + 1;
            while let Some(&(j, d)) = chars.peek() {
                if !d.is_ascii_digit() {
                    break;
                }
                end = j + 1;
                chars.next();
            }
            let n = text[i..end]
                .parse()
                .map_err(|_| format!("{} is too large a number", &text[i..end]))?;
            out.push(Token::Num(n));
        } else if c.is_ascii_alphabetic() || c == '_' {
            let mut end = i + 1;
            while let Some(&(j, d)) = chars.peek() {
                if !(d.is_ascii_alphanumeric() || d == '_') {
                    break;
                }
                end = j + 1;
                chars.next();
            }
            out.push(Token::Name(text[i..end].to_string()));
        } else if "+-*/%()".contains(c) {
            out.push(Token::Sym(c));
        } else {
            return Err(format!("'{c}' is not part of an expression"));
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn sym(&mut self, set: &str) -> Option<char> {
        match self.peek() {
            Some(Token::Sym(c)) if set.contains(*c) => {
                let c = *c;
                self.at += 1;
                Some(c)
            }
            _ => None,
        }
    }

    fn sum(&mut self) -> Result<Expr, String> {
        let mut e = self.product()?;
        while let Some(c) = self.sym("+-") {
            let op = if c == '+' { Op::Add } else { Op::Sub };
            e = Expr::Bin(Box::new(e), op, Box::new(self.product()?));
        }
        Ok(e)
    }

    fn product(&mut self) -> Result<Expr, String> {
        let mut e = self.unary()?;
        while let Some(c) = self.sym("*/%") {
            let op = match c {
                '*' => Op::Mul,
                '/' => Op::Div,
                _ => Op::Rem,
            };
            let right = self.unary()?;
            if op != Op::Mul {
                match constant(&right) {
                    Some(0) => return Err(format!("'{c} 0' divides by zero")),
                    Some(_) => {}
                    None => {
                        return Err(format!(
                            "the right side of '{c}' must be a number, not an expression of request or burst (which could be 0)"
                        ));
                    }
                }
            }
            e = Expr::Bin(Box::new(e), op, Box::new(right));
        }
        Ok(e)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if self.sym("-").is_some() {
            return Ok(Expr::Neg(Box::new(self.unary()?)));
        }
        if self.sym("(").is_some() {
            let e = self.sum()?;
            return match self.sym(")") {
                Some(_) => Ok(e),
                None => Err("a '(' is not closed".into()),
            };
        }
        let t = self.peek().cloned();
        self.at += 1;
        match t {
            Some(Token::Num(n)) => Ok(Expr::Num(n)),
            Some(Token::Name(n)) if n == "request" => Ok(Expr::Request),
            Some(Token::Name(n)) if n == "burst" => Ok(Expr::Burst),
            Some(Token::Name(n)) => Err(format!(
                "'{n}' is not request or burst (an expression may name only those; a matrix variable is a ${{name}} of its own)"
            )),
            Some(t) => Err(format!("unexpected '{}'", t.text())),
            None => Err("the expression ends early".into()),
        }
    }
}

/// The value of an expression that names neither `request` nor `burst`.
fn constant(e: &Expr) -> Option<i64> {
    e.eval(0, 0).filter(|_| !names_index(e))
}

fn names_index(e: &Expr) -> bool {
    match e {
        Expr::Num(_) => false,
        Expr::Request | Expr::Burst => true,
        Expr::Neg(e) => names_index(e),
        Expr::Bin(a, _, b) => names_index(a) || names_index(b),
    }
}

/// Whether the body of a `${...}` is a per-request expression: it names `request` or
/// `burst` as a word.
fn is_per_request(body: &str) -> bool {
    body.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .any(|w| w == "request" || w == "burst")
}

/// The `${...}` spans of `s` that are per-request expressions: (start of `$`, end after
/// `}`, body). `$$` is a literal dollar and starts none.
fn spans(s: &str) -> Vec<(usize, usize, &str)> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i + 1 < b.len() {
        if b[i] == b'$' && b[i + 1] == b'$' {
            i += 2;
            continue;
        }
        if b[i] == b'$' && b[i + 1] == b'{' {
            let Some(len) = s[i + 2..].find(['}', '{', '$']) else {
                break;
            };
            let end = i + 2 + len;
            if b[end] == b'}' && is_per_request(&s[i + 2..end]) {
                out.push((i, end + 1, &s[i + 2..end]));
                i = end + 1;
                continue;
            }
        }
        i += 1;
    }
    out
}

/// A request field as written, made ready for the per-cell substitution of matrix
/// variables: each per-request `${expr}` is parsed (an error says what is wrong with the
/// first bad one) and written `$${expr}`, which that substitution turns back into
/// `${expr}` for [`render`].
pub fn escape(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len() + 2);
    let mut last = 0;
    for (start, end, body) in spans(s) {
        Expr::parse(body).map_err(|e| format!("'${{{body}}}': {e}"))?;
        out.push_str(&s[last..start]);
        out.push('$');
        out.push_str(&s[start..end]);
        last = end;
    }
    out.push_str(&s[last..]);
    Ok(out)
}

/// Whether a substituted field holds a per-request expression.
pub fn varies(s: &str) -> bool {
    !spans(s).is_empty()
}

/// A substituted field's value for request `request` of burst `burst`: each `${expr}`
/// replaced by its value.
pub fn render(s: &str, request: u32, burst: u32) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    for (start, end, body) in spans(s) {
        let value = Expr::parse(body)
            .map_err(|e| format!("'${{{body}}}': {e}"))?
            .eval(i64::from(request), i64::from(burst))
            .ok_or_else(|| {
                format!("'${{{body}}}' overflows for request {request} of burst {burst}")
            })?;
        out.push_str(&s[last..start]);
        out.push_str(&value.to_string());
        last = end;
    }
    out.push_str(&s[last..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, request: i64, burst: i64) -> i64 {
        Expr::parse(text).unwrap().eval(request, burst).unwrap()
    }

    #[test]
    fn expressions_are_worked_as_by_hand() {
        // request % 2 + 1 over a burst of 4: 1 2 1 2
        let seen: Vec<i64> = (0..4).map(|r| value("request % 2 + 1", r, 0)).collect();
        assert_eq!(seen, vec![1, 2, 1, 2]);
        // precedence and parentheses: 2 + 3 * 4 = 14, (2 + 3) * 4 = 20
        assert_eq!(value("2 + 3 * 4", 0, 0), 14);
        assert_eq!(value("(2 + 3) * 4", 0, 0), 20);
        // left to right: 10 - 3 - 2 = 5; 7 / 2 = 3; -7 % 3 = -1 (truncated as Rust's)
        assert_eq!(value("10 - 3 - 2", 0, 0), 5);
        assert_eq!(value("request / 2", 7, 0), 3);
        assert_eq!(value("-request % 3", 7, 0), -1);
        // burst 3, request 5: 3 * 100 + 5 = 305, a value unique in the run
        assert_eq!(value("burst*100+request", 5, 3), 305);
        assert_eq!(
            Expr::parse("request * 9223372036854775807")
                .unwrap()
                .eval(2, 0),
            None
        );
    }

    #[test]
    fn what_cannot_be_evaluated_is_refused_saying_why() {
        let e = |t: &str| Expr::parse(t).unwrap_err();
        assert_eq!(e("request % 0"), "'% 0' divides by zero");
        assert!(e("10 / request").starts_with("the right side of '/' must be a number"));
        assert!(e("request + amount").starts_with("'amount' is not request or burst"));
        assert_eq!(e("request +"), "the expression ends early");
        assert_eq!(e("(request"), "a '(' is not closed");
        assert_eq!(e("request ^ 2"), "'^' is not part of an expression");
        assert_eq!(e("request 2"), "unexpected '2'");
    }

    #[test]
    fn fields_keep_matrix_variables_and_evaluate_per_request_ones() {
        // matrix variables are left for the per-cell substitution; per-request ones are
        // escaped so that it writes them back as they were
        assert_eq!(
            escape("${amount:-100}/${request % 2 + 1}").unwrap(),
            "${amount:-100}/$${request % 2 + 1}"
        );
        assert_eq!(escape("$${request}").unwrap(), "$${request}");
        assert_eq!(escape("plain").unwrap(), "plain");
        let bad = escape("${request % }").unwrap_err();
        assert_eq!(bad, "'${request % }': the expression ends early");
        assert!(
            escape("${requests}").is_ok(),
            "a variable named requests is a matrix variable"
        );
        // after substitution: each request its own value
        let field = "doctor-${request % 2 + 1}";
        assert!(varies(field) && !varies("${amount}") && !varies("1"));
        let seen: Vec<String> = (0..3).map(|r| render(field, r, 0).unwrap()).collect();
        assert_eq!(seen, ["doctor-1", "doctor-2", "doctor-1"]);
        assert_eq!(render("${burst}:${request}", 4, 2).unwrap(), "2:4");
    }
}
