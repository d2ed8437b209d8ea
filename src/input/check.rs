//! What an endpoint's race breaks: the kind of anomaly its check counts, as a stack file
//! names it. How each kind is counted lives in `measure`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What an endpoint's race breaks, and so what counts as an anomaly. An endpoint names its
/// check in `x-racy.endpoints`: one of the built-in kinds, each with its observe query
/// (but `counter`, which reads the balance and the ledger), or one of the stack's own
/// `x-racy.invariants`, SQL that counts what is broken.
/// A new built-in kind is a variant here and its arm in `measure::metrics::anomalies`.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Check {
    /// A counter that lost increments: ledger rows missing from the balance.
    #[default]
    Counter,
    /// Rows that should be unique: `total` rows, `distinct_values` among them.
    Unique,
    /// Background tasks that did not find their row: `tasks` run, `missed` of them.
    Task,
    /// Apps that failed at start (seed 000): `starts` reported, `failed` of them.
    Start,
    /// A stack's own invariant, by name: its `violations` query counts what is broken
    /// after a burst, out of its `out_of` query or the burst's acknowledged requests.
    Invariant(String),
}

/// The built-in checks, in the order messages list them.
pub const BUILT_IN: [Check; 4] = [Check::Counter, Check::Unique, Check::Task, Check::Start];

impl Check {
    /// The check's name, as in stack files and the `anomaly_kind` column: a built-in
    /// kind's, or the invariant's.
    pub fn name(&self) -> &str {
        match self {
            Check::Counter => "counter",
            Check::Unique => "unique",
            Check::Task => "task",
            Check::Start => "start",
            Check::Invariant(name) => name,
        }
    }

    /// The check of a name: a built-in kind, or else the invariant of that name when it
    /// is one a stack could declare ([`is_invariant_name`]).
    pub fn from_name(name: &str) -> Option<Check> {
        BUILT_IN
            .into_iter()
            .find(|c| c.name() == name)
            .or_else(|| is_invariant_name(name).then(|| Check::Invariant(name.to_string())))
    }

    /// Whether this is a stack's own invariant.
    pub fn is_invariant(&self) -> bool {
        matches!(self, Check::Invariant(_))
    }

    /// The integer columns its observe query must return (none for `counter`, which
    /// reads the balance and the ledger; an invariant's queries return one value each).
    pub fn columns(&self) -> &'static [&'static str] {
        match self {
            Check::Counter | Check::Invariant(_) => &[],
            Check::Unique => &["total", "distinct_values"],
            Check::Task => &["tasks", "missed"],
            Check::Start => &["starts", "failed"],
        }
    }
}

/// Whether `name` can name an invariant: a letter or `_`, then letters, digits and `_`
/// (at most 64), and not a built-in check's name.
pub fn is_invariant_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 64
        && !BUILT_IN.iter().any(|c| c.name() == name)
}

impl Serialize for Check {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Check {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Check, D::Error> {
        let name = String::deserialize(d)?;
        Check::from_name(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "'{name}' is not a check: give counter, unique, task, start, or the name \
                 of one of x-racy.invariants (letters, digits and _)"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_built_in_kinds_or_invariants() {
        assert_eq!(Check::from_name("task"), Some(Check::Task));
        assert_eq!(
            Check::from_name("no_overdraft"),
            Some(Check::Invariant("no_overdraft".into()))
        );
        assert_eq!(Check::from_name("no overdraft"), None);
        assert_eq!(Check::from_name("9lives"), None);
        assert_eq!(Check::from_name(""), None);
        assert!(!is_invariant_name("counter"));
        let json = serde_json::to_string(&Check::Invariant("one_on_call".into())).unwrap();
        assert_eq!(json, "\"one_on_call\"");
        assert_eq!(
            serde_json::from_str::<Check>(&json).unwrap(),
            Check::Invariant("one_on_call".into())
        );
    }
}
