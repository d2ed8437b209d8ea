//! Compose interpolation, as the compose spec defines it: `$NAME` and `${NAME}` (empty when
//! unset), `${NAME:-word}` (word when unset or empty), `${NAME-word}` (word when unset),
//! `${NAME:?err}` / `${NAME?err}` (an error when unset or empty / unset), `${NAME:+word}` /
//! `${NAME+word}` (word when set and not empty / set), `$$` for a literal `$`; the word
//! may itself hold interpolations (`${a:-${b:-1}}`), substituted only when it is used.

use std::collections::BTreeMap;

use anyhow::{Result, bail};

/// What a `${NAME<op>word}` does with the word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    /// `${NAME}` or `$NAME`.
    Plain,
    /// `:-` (`colon`) or `-`: the word is the default.
    Default { colon: bool },
    /// `:?` or `?`: the word is the error message.
    Required { colon: bool },
    /// `:+` or `+`: the word replaces a set value.
    Alternative { colon: bool },
}

/// A parsed template: literal text and references.
#[derive(Clone, Debug, PartialEq)]
enum Piece {
    Text(String),
    Var {
        name: String,
        op: Op,
        word: Vec<Piece>,
    },
}

/// Substitutes the references of `s` from `vars` (a key present with an empty value is
/// set but empty). A malformed reference, or a `${NAME?err}` whose variable is missing,
/// is an error.
pub fn interpolate(s: &str, vars: &BTreeMap<String, String>) -> Result<String> {
    render(&parse(s)?, vars, s)
}

/// Whether `s` is well formed (for errors at load, before any value is known).
pub fn check(s: &str) -> Result<()> {
    parse(s).map(|_| ())
}

/// The variables `s` references, in order, each with the default a `:-` or `-` form gives
/// it (its word substituted with nothing set, so `${a:-${b:-1}}` gives a the default 1);
/// references inside a word are listed too. A malformed string references nothing.
pub fn references(s: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    if let Ok(pieces) = parse(s) {
        collect(&pieces, &mut out);
    }
    out
}

fn collect(pieces: &[Piece], out: &mut Vec<(String, Option<String>)>) {
    for p in pieces {
        if let Piece::Var { name, op, word } = p {
            let default = match op {
                Op::Default { .. } => Some(render(word, &BTreeMap::new(), "").unwrap_or_default()),
                _ => None,
            };
            out.push((name.clone(), default));
            collect(word, out);
        }
    }
}

fn render(pieces: &[Piece], vars: &BTreeMap<String, String>, whole: &str) -> Result<String> {
    let mut out = String::new();
    for p in pieces {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Var { name, op, word } => {
                let value = vars.get(name);
                let unset_or_empty = value.is_none_or(|v| v.is_empty());
                let missing = |colon: bool| {
                    if colon {
                        unset_or_empty
                    } else {
                        value.is_none()
                    }
                };
                let own = || value.cloned().unwrap_or_default();
                match *op {
                    Op::Plain => out.push_str(&own()),
                    Op::Default { colon } if missing(colon) => {
                        out.push_str(&render(word, vars, whole)?)
                    }
                    Op::Default { .. } => out.push_str(&own()),
                    Op::Required { colon } if missing(colon) => {
                        let message = render(word, vars, whole)?;
                        let why = if message.is_empty() {
                            format!("variable '{name}' is required")
                        } else {
                            format!("variable '{name}' is required: {message}")
                        };
                        bail!("{why} (in \"{whole}\")");
                    }
                    Op::Required { .. } => out.push_str(&own()),
                    Op::Alternative { colon } if !missing(colon) => {
                        out.push_str(&render(word, vars, whole)?)
                    }
                    Op::Alternative { .. } => {}
                }
            }
        }
    }
    Ok(out)
}

fn parse(s: &str) -> Result<Vec<Piece>> {
    let (pieces, rest) = parse_until(s, s, false)?;
    debug_assert!(rest.is_empty());
    Ok(pieces)
}

/// Parses `text` up to its end (or, inside a word, up to the `}` that closes it); returns
/// the pieces and what follows that `}`.
fn parse_until<'a>(text: &'a str, whole: &str, in_word: bool) -> Result<(Vec<Piece>, &'a str)> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    loop {
        let stop = if in_word {
            rest.find(['$', '}'])
        } else {
            rest.find('$')
        };
        let Some(at) = stop else {
            if in_word {
                bail!("unclosed '${{' in \"{whole}\"");
            }
            literal.push_str(rest);
            rest = "";
            break;
        };
        literal.push_str(&rest[..at]);
        if rest[at..].starts_with('}') {
            rest = &rest[at + 1..];
            break;
        }
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            literal.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let (piece, tail) = parse_braced(body, whole)?;
            flush(&mut literal, &mut pieces);
            pieces.push(piece);
            rest = tail;
        } else {
            let len = name_len(after);
            if len == 0 || after.starts_with(|c: char| c.is_ascii_digit()) {
                // a `$` not followed by a name is itself (compose keeps it too)
                literal.push('$');
                rest = after;
            } else {
                flush(&mut literal, &mut pieces);
                pieces.push(Piece::Var {
                    name: after[..len].to_string(),
                    op: Op::Plain,
                    word: vec![],
                });
                rest = &after[len..];
            }
        }
    }
    flush(&mut literal, &mut pieces);
    Ok((pieces, rest))
}

/// The reference after a `${`: its name, operator and word, and the text after its `}`.
fn parse_braced<'a>(body: &'a str, whole: &str) -> Result<(Piece, &'a str)> {
    let len = name_len(body);
    let name = &body[..len];
    if len == 0 || name.starts_with(|c: char| c.is_ascii_digit()) {
        let shown: String = body.chars().take_while(|c| *c != '}').collect();
        bail!("bad variable name '{shown}' in \"{whole}\"");
    }
    let after = &body[len..];
    if let Some(tail) = after.strip_prefix('}') {
        let piece = Piece::Var {
            name: name.to_string(),
            op: Op::Plain,
            word: vec![],
        };
        return Ok((piece, tail));
    }
    let (colon, after) = match after.strip_prefix(':') {
        Some(a) => (true, a),
        None => (false, after),
    };
    let op = match after.chars().next() {
        Some('-') => Op::Default { colon },
        Some('?') => Op::Required { colon },
        Some('+') => Op::Alternative { colon },
        Some(_) => {
            let shown: String = body.chars().take_while(|c| *c != '}').collect();
            bail!("bad variable name '{shown}' in \"{whole}\"");
        }
        None => bail!("unclosed '${{' in \"{whole}\""),
    };
    let (word, tail) = parse_until(&after[1..], whole, true)?;
    let piece = Piece::Var {
        name: name.to_string(),
        op,
        word,
    };
    Ok((piece, tail))
}

fn name_len(s: &str) -> usize {
    s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len())
}

fn flush(literal: &mut String, pieces: &mut Vec<Piece>) {
    if !literal.is_empty() {
        pieces.push(Piece::Text(std::mem::take(literal)));
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Variables from pairs (shared with the stack's tests).
    pub(crate) fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The compose spec's table, worked case by case: set, set-but-empty and unset.
    #[test]
    fn the_compose_spec_forms() {
        let v = vars(&[("set", "v"), ("empty", "")]);
        let i = |s: &str| interpolate(s, &v).unwrap();
        assert_eq!(i("${set}|${empty}|${unset}|$set|$unset"), "v|||v|");
        assert_eq!(i("${set:-d}|${empty:-d}|${unset:-d}"), "v|d|d");
        assert_eq!(i("${set-d}|${empty-d}|${unset-d}"), "v||d");
        assert_eq!(i("${set:+r}|${empty:+r}|${unset:+r}"), "r||");
        assert_eq!(i("${set+r}|${empty+r}|${unset+r}"), "r|r|");
        assert_eq!(i("${set:?no}|${set?no}|${empty?no}"), "v|v|");
        let e = interpolate("${empty:?give it}", &v)
            .unwrap_err()
            .to_string();
        assert!(e.contains("'empty' is required: give it"), "{e}");
        let e = interpolate("x ${unset?}", &v).unwrap_err().to_string();
        assert!(e.contains("'unset' is required (in"), "{e}");
        // nested defaults, used only when needed
        assert_eq!(i("${unset:-${set}}"), "v");
        assert_eq!(i("${unset:-${nope:-in}-x}"), "in-x");
        assert_eq!(i("${set:-${nope?never}}"), "v");
        assert_eq!(i("${unset:-a:b}"), "a:b");
        // $$, a lone $, and a $ before no name
        assert_eq!(i("$$set/$${set}"), "$set/${set}");
        assert_eq!(i("a$ b$ $1 $-"), "a$ b$ $1 $-");
        assert_eq!(i("${unset:-{x}"), "{x");
    }

    #[test]
    fn malformed_references_are_errors() {
        for bad in [
            "${open",
            "${bad name}",
            "${}",
            "${1x}",
            "${a:-${b}",
            "${a!}",
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
        assert!(check("${a:-${b:-c}} $$ $x").is_ok());
    }

    #[test]
    fn references_carry_their_defaults() {
        let r = references("x ${a} ${b:-2} $c ${d-} ${e:-${f:-1}} ${g:?m} ${h:+r}");
        let want: Vec<(String, Option<String>)> = vec![
            ("a".into(), None),
            ("b".into(), Some("2".into())),
            ("c".into(), None),
            ("d".into(), Some(String::new())),
            ("e".into(), Some("1".into())),
            ("f".into(), Some("1".into())),
            ("g".into(), None),
            ("h".into(), None),
        ];
        assert_eq!(r, want);
    }
}
