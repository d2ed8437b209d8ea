//! Matrix files: the schema of docs/formats.md#matrices, validation that points at file, line and
//! column, expansion into cells (cartesian product, exclude, include), the run order
//! that keeps restarts few, and slicing that order by count.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use crate::input::source::{InputError, Scalar, Source, parse_yaml, read_text, referenced};

/// What each request adds when a matrix does not say.
pub const DEFAULT_AMOUNT: i64 = 100;

/// What the matrix needs to know about the stacks it names.
pub trait Catalog {
    /// Known stack names, sorted.
    fn stacks(&self) -> Vec<String>;
    /// A stack's endpoint names; `None` for an unknown stack.
    fn endpoints(&self, stack: &str) -> Option<Vec<String>>;
    /// Variables the stack file references, with their `${x:-default}` default.
    fn variables(&self, stack: &str) -> Vec<(String, Option<String>)>;
    /// Variables whose change recreates a service, the one recreating the most first.
    fn restart_variables(&self, stack: &str) -> Vec<String>;
    /// Refuses a cell's variables when they give the stack a setting it cannot start with
    /// (a memory limit that is no size, a replica count that is no count); the error
    /// points into the stack file.
    fn check_variables(
        &self,
        _stack: &str,
        _vars: &BTreeMap<String, String>,
    ) -> Result<(), InputError> {
        Ok(())
    }
}

/// Variables the tool fills in itself; a matrix need not (and may not) set them.
pub const PROVIDED: &[&str] = &["amount", "BASE_IMAGE", "db_password"];
/// Axes that reach only the request, known to every stack.
pub const REQUEST_AXES: &[&str] = &["endpoint", "wait_ms"];
/// The largest value of each numeric key: a burst opens one connection per request and
/// holds every record of a cell in memory, so what a matrix may ask for is bounded before
/// anything starts.
pub const LIMITS: &[(&str, i64)] = &[
    ("requests", 1024),
    ("repetitions", 10_000),
    ("amount", 1_000_000_000),
    ("timeout_ms", 3_600_000),
];
/// Largest number of cells a matrix may expand to.
pub const MAX_CELLS: usize = 100_000;

const KEYS: &[&str] = &[
    "name",
    "stacks",
    "axes",
    "requests",
    "amount",
    "repetitions",
    "timeout_ms",
    "route",
    "include",
    "exclude",
    "expect",
];

/// Values of one axis.
#[derive(Clone, Debug, PartialEq)]
pub enum AxisValues {
    /// Explicit values, normalized to strings.
    List(Vec<String>),
    /// `endpoint: all`: every endpoint of each stack.
    AllEndpoints,
}

/// One axis of the matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    /// Axis name (a stack variable, `endpoint` or `wait_ms`).
    pub name: String,
    /// Its values.
    pub values: AxisValues,
}

/// One entry of `expect:`: which cells (selector over axes) must satisfy which bounds
/// (over metric columns). Values are kept as written, normalized to strings.
#[derive(Clone, Debug, PartialEq)]
pub struct Expectation {
    /// Axis → value, list of values (`a|b`) or comparison (`>=2`).
    pub selector: BTreeMap<String, Vec<String>>,
    /// Metric column → bound (`0`, `>0`, `<=0.05`).
    pub bounds: BTreeMap<String, String>,
    /// What the expectation states, in words (`claim:`), for `racy-matrix claims`.
    pub claim: Option<String>,
    /// Where the claim comes from (`source:`, e.g. `seed 003`).
    pub source: Option<String>,
    /// Whether a miss fails the run (`required: false` only reports it, with `claims`: a
    /// claim measured for what it is, whichever way it goes).
    pub required: bool,
    /// Where the entry starts in the file.
    pub line: usize,
}

/// A loaded, validated matrix.
#[derive(Clone, Debug)]
pub struct Matrix {
    /// Its name (results go to `results/<name>-<time>/`).
    pub name: String,
    /// Stacks, in file order.
    pub stacks: Vec<String>,
    /// Axes, in file order.
    pub axes: Vec<Axis>,
    /// Requests per repetition.
    pub requests: u32,
    /// Amount each request adds.
    pub amount: i64,
    /// Repetitions per cell.
    pub repetitions: u32,
    /// Client timeout per request, if set.
    pub timeout_ms: Option<u64>,
    /// How requests reach the stacks (`route:`), if the file says.
    pub route: Option<crate::input::route::RouteChoice>,
    /// `include` entries.
    pub include: Vec<BTreeMap<String, String>>,
    /// `exclude` entries.
    pub exclude: Vec<BTreeMap<String, String>>,
    /// Expectations checked after the run.
    pub expect: Vec<Expectation>,
}

/// One experiment: a stack and one value per axis (including `endpoint`, `wait_ms`,
/// `delay_ms`, `workers` when the matrix has them).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Cell {
    /// Stack name.
    pub stack: String,
    /// Axis → value.
    pub axes: BTreeMap<String, String>,
}

impl Cell {
    /// The endpoint of the cell.
    pub fn endpoint(&self) -> &str {
        self.get("endpoint").unwrap_or("")
    }

    /// Gap between request launches in ms (0 when absent).
    pub fn wait_ms(&self) -> u64 {
        self.get("wait_ms")
            .and_then(|w| w.parse().ok())
            .unwrap_or(0)
    }

    /// The value of an axis.
    pub fn get(&self, axis: &str) -> Option<&str> {
        self.axes.get(axis).map(String::as_str)
    }

    /// A stable identity: `stack|a=1|b=2` with axes sorted.
    pub fn key(&self) -> String {
        let mut k = self.stack.clone();
        for (a, v) in &self.axes {
            k.push('|');
            k.push_str(a);
            k.push('=');
            k.push_str(v);
        }
        k
    }

    /// A short human label: stack, endpoint, then the other axes.
    pub fn label(&self) -> String {
        let mut parts = vec![self.stack.clone(), self.endpoint().to_string()];
        parts.extend(
            self.axes
                .iter()
                .filter(|(a, _)| a.as_str() != "endpoint")
                .map(|(a, v)| format!("{a}={v}")),
        );
        parts.join(" ")
    }
}

/// A mapping whose keys keep their location; `in_file_order` recovers the order.
type SMap<V> = HashMap<Spanned<String>, V>;

fn in_file_order<V>(m: &SMap<V>) -> Vec<(&Spanned<String>, &V)> {
    let mut v: Vec<_> = m.iter().collect();
    v.sort_by_key(|(k, _)| (k.referenced.line(), k.referenced.column()));
    v
}

/// An axis as written: a list, or one word (`all`). Deserialized by hand rather than as
/// an untagged enum so that every list item keeps its location.
#[derive(Debug)]
enum RawAxis {
    List(Vec<Spanned<Scalar>>),
    One(String),
}

impl<'de> Deserialize<'de> for RawAxis {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawAxis;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of values")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<RawAxis, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = seq.next_element::<Spanned<Scalar>>()? {
                    out.push(v);
                }
                Ok(RawAxis::List(out))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawAxis, E> {
                Ok(RawAxis::One(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RawAxis, E> {
                Ok(RawAxis::One(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RawAxis, E> {
                Ok(RawAxis::One(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawSelector {
    List(Vec<Scalar>),
    One(Scalar),
}

#[derive(Debug, Deserialize)]
struct RawMatrix {
    name: Spanned<String>,
    stacks: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    axes: Option<Spanned<SMap<Spanned<RawAxis>>>>,
    #[serde(default)]
    requests: Option<Spanned<i64>>,
    #[serde(default)]
    amount: Option<Spanned<i64>>,
    #[serde(default)]
    repetitions: Option<Spanned<i64>>,
    #[serde(default)]
    timeout_ms: Option<Spanned<i64>>,
    #[serde(default)]
    route: Option<Spanned<String>>,
    #[serde(default)]
    include: Vec<Spanned<SMap<Scalar>>>,
    #[serde(default)]
    exclude: Vec<Spanned<SMap<Scalar>>>,
    #[serde(default)]
    expect: Vec<Spanned<SMap<Spanned<serde_json::Value>>>>,
}

/// Reads and validates a matrix file.
pub fn load(path: &Path, catalog: &dyn Catalog) -> Result<Matrix, InputError> {
    let text = read_text(path, "the matrix file")?;
    parse(&text, path, catalog)
}

/// Parses and validates matrix text; `path` is used in errors.
///
/// One section after another, each checked against what the ones before it established
/// (the stacks, then their variables, then the axes); the first error is returned.
pub fn parse(text: &str, path: &Path, catalog: &dyn Catalog) -> Result<Matrix, InputError> {
    // Unknown top-level keys first, with a location, before the typed parse.
    check_top_keys(text, path)?;
    let raw: RawMatrix = parse_yaml(text, path)?;
    let r = Reader {
        src: Source { file: path, text },
        catalog,
    };
    let name = r.name(&raw.name)?;
    let stacks = r.stacks(&raw.stacks)?;
    let numbers = r.numbers(&raw)?;
    let route = raw
        .route
        .as_ref()
        .map(|v| {
            crate::input::route::RouteChoice::parse(&v.value)
                .map_err(|e| r.src.at(v, e.to_string()))
        })
        .transpose()?;
    let vars = Variables::of(&stacks, catalog);
    let axes = r.axes(raw.axes.as_ref(), &stacks, &vars)?;
    // Errors about the matrix as a whole point at its axes (or its start).
    let whole = raw.axes.as_ref().map_or((1, 1), referenced);
    r.required_variables(&vars, &axes, whole)?;
    let names = Names {
        stacks: &stacks,
        axes: axes.iter().map(|a| a.name.clone()).collect(),
        vars: &vars,
    };
    let include = r.entries(&raw.include, Entries::Include, &names)?;
    let exclude = r.entries(&raw.exclude, Entries::Exclude, &names)?;
    let expect = r.expectations(&raw.expect, &names.axes)?;
    let m = Matrix {
        name,
        stacks,
        axes,
        requests: numbers.requests,
        amount: numbers.amount,
        repetitions: numbers.repetitions,
        timeout_ms: numbers.timeout_ms,
        route,
        include,
        exclude,
        expect,
    };
    r.check_cells(&m, whole)?;
    Ok(m)
}

/// A matrix file being read: where its errors point, and the stacks it is checked against.
struct Reader<'a> {
    src: Source<'a>,
    catalog: &'a dyn Catalog,
}

/// The numbers of a matrix, defaults filled in.
struct Numbers {
    requests: u32,
    amount: i64,
    repetitions: u32,
    timeout_ms: Option<u64>,
}

/// The variables of the listed stacks.
struct Variables {
    /// Each stack's, with their `${x:-default}` default.
    per_stack: BTreeMap<String, BTreeMap<String, Option<String>>>,
    /// All of them; where stacks give one different defaults, the first stack's.
    all: BTreeMap<String, Option<String>>,
}

impl Variables {
    fn of(stacks: &[String], catalog: &dyn Catalog) -> Variables {
        let mut all = BTreeMap::new();
        let mut per_stack = BTreeMap::new();
        for s in stacks {
            let vars: BTreeMap<_, _> = catalog.variables(s).into_iter().collect();
            for (k, v) in &vars {
                all.entry(k.clone()).or_insert(v.clone());
            }
            per_stack.insert(s.clone(), vars);
        }
        Variables { per_stack, all }
    }

    /// What an axis may be named: the request axes, then the variables the tool does not
    /// set itself.
    fn axis_choices(&self) -> Vec<String> {
        REQUEST_AXES
            .iter()
            .map(|s| s.to_string())
            .chain(
                self.all
                    .keys()
                    .filter(|k| !PROVIDED.contains(&k.as_str()))
                    .cloned(),
            )
            .collect()
    }
}

/// The two lists that edit the product of the axes (GitHub Actions matrix semantics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Entries {
    /// Entries that extend cells, or add cells of their own.
    Include,
    /// Entries that remove the cells they match.
    Exclude,
}

impl Entries {
    /// The key the list is written under.
    fn key(self) -> &'static str {
        match self {
            Entries::Include => "include",
            Entries::Exclude => "exclude",
        }
    }
}

/// What the entries of a matrix may name, known once its axes are.
struct Names<'a> {
    stacks: &'a [String],
    /// Axis names, in file order, then those every matrix has.
    axes: Vec<String>,
    vars: &'a Variables,
}

impl Reader<'_> {
    /// `name`: it names the output folder, so it is a plain, non-empty word.
    fn name(&self, name: &Spanned<String>) -> Result<String, InputError> {
        if name.value.trim().is_empty() {
            return Err(self.src.at(name, "name must not be empty"));
        }
        if !name
            .value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            return Err(self.src.at(
                name,
                "name may hold only letters, digits, '-', '_' and '.' (it names the output folder)",
            ));
        }
        Ok(name.value.clone())
    }

    /// `stacks`: known stacks, each once, at least one.
    fn stacks(&self, raw: &Spanned<Vec<Spanned<String>>>) -> Result<Vec<String>, InputError> {
        if raw.value.is_empty() {
            return Err(self.src.at(raw, "stacks must name at least one stack"));
        }
        let mut stacks = Vec::new();
        for s in &raw.value {
            if self.catalog.endpoints(&s.value).is_none() {
                return Err(self
                    .src
                    .at(s, format!("unknown stack '{}'", s.value))
                    .with_choices(self.catalog.stacks()));
            }
            if stacks.contains(&s.value) {
                return Err(self
                    .src
                    .at(s, format!("stack '{}' is listed twice", s.value)));
            }
            stacks.push(s.value.clone());
        }
        Ok(stacks)
    }

    /// `requests`, `amount`, `repetitions` and `timeout_ms`.
    fn numbers(&self, raw: &RawMatrix) -> Result<Numbers, InputError> {
        let requests = self.positive(&raw.requests, "requests", 8)? as u32;
        if requests > 10_000 {
            return Err(self.src.at(
                raw.requests.as_ref().unwrap(),
                "requests must be at most 10000",
            ));
        }
        let amount = self.positive(&raw.amount, "amount", DEFAULT_AMOUNT)?;
        let repetitions = self.positive(&raw.repetitions, "repetitions", 3)? as u32;
        let timeout_ms = match &raw.timeout_ms {
            None => None,
            Some(_) => Some(self.positive(&raw.timeout_ms, "timeout_ms", 0)? as u64),
        };
        Ok(Numbers {
            requests,
            amount,
            repetitions,
            timeout_ms,
        })
    }

    /// A whole number from 1 to the key's limit ([`LIMITS`]), or `default` when the file
    /// leaves it out.
    fn positive(
        &self,
        v: &Option<Spanned<i64>>,
        what: &str,
        default: i64,
    ) -> Result<i64, InputError> {
        let max = LIMITS
            .iter()
            .find(|(k, _)| *k == what)
            .map_or(i64::from(u32::MAX), |(_, m)| *m);
        match v {
            None => Ok(default),
            Some(s) if s.value >= 1 && s.value <= max => Ok(s.value),
            Some(s) => Err(self.src.at(
                s,
                format!(
                    "{what} must be a whole number from 1 to {max}, got {}",
                    s.value
                ),
            )),
        }
    }

    /// `axes`, in file order, then the request axes the file leaves out (every endpoint,
    /// and `wait_ms: [0]`).
    fn axes(
        &self,
        raw: Option<&Spanned<SMap<Spanned<RawAxis>>>>,
        stacks: &[String],
        vars: &Variables,
    ) -> Result<Vec<Axis>, InputError> {
        let mut axes = Vec::new();
        for (name, values) in raw.map(|r| in_file_order(&r.value)).unwrap_or_default() {
            axes.push(self.axis(name, values, stacks, vars)?);
        }
        if !axes.iter().any(|a| a.name == "endpoint") {
            axes.push(Axis {
                name: "endpoint".into(),
                values: AxisValues::AllEndpoints,
            });
        }
        if !axes.iter().any(|a| a.name == "wait_ms") {
            axes.push(Axis {
                name: "wait_ms".into(),
                values: AxisValues::List(vec!["0".into()]),
            });
        }
        Ok(axes)
    }

    /// One axis: a variable of a listed stack (or a request axis) that the tool does not
    /// set, with a list of values (or `endpoint: all`).
    fn axis(
        &self,
        name: &Spanned<String>,
        values: &Spanned<RawAxis>,
        stacks: &[String],
        vars: &Variables,
    ) -> Result<Axis, InputError> {
        let n = name.value.as_str();
        if PROVIDED.contains(&n) {
            return Err(self.src.at(
                name,
                format!("'{n}' is set by racy-matrix itself and cannot be an axis"),
            ));
        }
        if !REQUEST_AXES.contains(&n) && !vars.all.contains_key(n) {
            return Err(self
                .src
                .at(
                    name,
                    format!(
                        "axis '{n}' is not used by any listed stack (no ${{{n}}} in their compose files)"
                    ),
                )
                .with_choices(vars.axis_choices()));
        }
        let values = match &values.value {
            RawAxis::One(s) if n == "endpoint" && s == "all" => AxisValues::AllEndpoints,
            RawAxis::One(_) => {
                return Err(self.src.at(
                    values,
                    format!(
                        "axis '{n}' must be a list of values{}",
                        if n == "endpoint" { " or `all`" } else { "" }
                    ),
                ));
            }
            RawAxis::List(list) => AxisValues::List(self.axis_list(n, values, list, stacks)?),
        };
        Ok(Axis {
            name: n.to_string(),
            values,
        })
    }

    /// The values of axis `n`, written at `at`: at least one, each valid for the axis and
    /// listed once; endpoints known to every listed stack.
    fn axis_list(
        &self,
        n: &str,
        at: &Spanned<RawAxis>,
        list: &[Spanned<Scalar>],
        stacks: &[String],
    ) -> Result<Vec<String>, InputError> {
        if list.is_empty() {
            return Err(self.src.at(at, format!("axis '{n}' has no values")));
        }
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for v in list {
            let text = v.value.to_string();
            check_value(n, &text).map_err(|m| self.src.at(v, m))?;
            if n == "endpoint" {
                self.endpoint(v, &text, stacks)?;
            }
            if !seen.insert(text.clone()) {
                return Err(self.src.at(v, format!("axis '{n}' lists '{text}' twice")));
            }
            out.push(text);
        }
        Ok(out)
    }

    /// Refuses an endpoint that none of the listed stacks has (a stack that lacks one
    /// another has must exclude its cells: see [`Reader::check_cells`]).
    fn endpoint(
        &self,
        v: &Spanned<Scalar>,
        text: &str,
        stacks: &[String],
    ) -> Result<(), InputError> {
        let mut all = BTreeSet::new();
        for s in stacks {
            let eps = self.catalog.endpoints(s).unwrap_or_default();
            if eps.iter().any(|e| e == text) {
                return Ok(());
            }
            all.extend(eps);
        }
        let whose = match stacks {
            [one] => format!("stack {one}"),
            _ => format!("any of the stacks {}", stacks.join(", ")),
        };
        Err(self
            .src
            .at(v, format!("unknown endpoint '{text}' for {whose}"))
            .with_choices(all.into_iter().collect()))
    }

    /// Every variable without a default must come from an axis or the tool.
    fn required_variables(
        &self,
        vars: &Variables,
        axes: &[Axis],
        whole: (usize, usize),
    ) -> Result<(), InputError> {
        for (s, vars) in &vars.per_stack {
            for (v, default) in vars {
                if default.is_none()
                    && !PROVIDED.contains(&v.as_str())
                    && !axes.iter().any(|a| &a.name == v)
                {
                    return Err(InputError::new(
                        self.src.file,
                        whole,
                        format!(
                            "stack {s} needs a value for '{v}' (it has no default): add an axis '{v}'"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// `include` or `exclude`: each entry names at least one key, listed stacks only.
    fn entries(
        &self,
        list: &[Spanned<SMap<Scalar>>],
        kind: Entries,
        names: &Names,
    ) -> Result<Vec<BTreeMap<String, String>>, InputError> {
        list.iter().map(|e| self.entry(e, kind, names)).collect()
    }

    /// One entry of `include` or `exclude`, keys to values.
    fn entry(
        &self,
        e: &Spanned<SMap<Scalar>>,
        kind: Entries,
        names: &Names,
    ) -> Result<BTreeMap<String, String>, InputError> {
        let what = kind.key();
        if e.value.is_empty() {
            return Err(self
                .src
                .at(e, format!("an {what} entry must name at least one axis")));
        }
        let mut m = BTreeMap::new();
        for (k, v) in in_file_order(&e.value) {
            let text = v.to_string();
            if k.value == "stack" {
                if !names.stacks.contains(&text) {
                    return Err(self
                        .src
                        .at(
                            k,
                            format!("{what} names stack '{text}', which the matrix does not list"),
                        )
                        .with_choices(names.stacks.to_vec()));
                }
            } else {
                self.entry_key(k, kind, names)?;
                check_value(&k.value, &text).map_err(|m| self.src.at(k, m))?;
            }
            m.insert(k.value.clone(), text);
        }
        Ok(m)
    }

    /// An exclude entry removes cells, so it names axes only; an include entry may also
    /// give cells a variable no axis sets, so it may name any variable of a listed stack.
    fn entry_key(
        &self,
        k: &Spanned<String>,
        kind: Entries,
        names: &Names,
    ) -> Result<(), InputError> {
        let axis = names.axes.contains(&k.value);
        if PROVIDED.contains(&k.value.as_str()) {
            return Err(self.src.at(
                k,
                format!(
                    "'{}' is set by racy-matrix itself and cannot be set by an entry",
                    k.value
                ),
            ));
        }
        match kind {
            Entries::Exclude if !axis => Err(self
                .src
                .at(
                    k,
                    format!("exclude names '{}', which is not an axis", k.value),
                )
                .with_choices(names.axes.clone())),
            Entries::Include if !axis && !names.vars.all.contains_key(&k.value) => Err(self
                .src
                .at(
                    k,
                    format!("include names '{}', which no listed stack uses", k.value),
                )
                .with_choices(names.vars.axis_choices())),
            _ => Ok(()),
        }
    }

    /// `expect`: selectors over the axes, bounds over the metrics.
    fn expectations(
        &self,
        raw: &[Spanned<SMap<Spanned<serde_json::Value>>>],
        axes: &[String],
    ) -> Result<Vec<Expectation>, InputError> {
        raw.iter().map(|e| self.expectation(e, axes)).collect()
    }

    /// One entry of `expect`: `where` plus at least one bound.
    fn expectation(
        &self,
        e: &Spanned<SMap<Spanned<serde_json::Value>>>,
        axes: &[String],
    ) -> Result<Expectation, InputError> {
        let mut selector = BTreeMap::new();
        let mut bounds = BTreeMap::new();
        let (mut claim, mut source, mut required) = (None, None, true);
        for (k, v) in in_file_order(&e.value) {
            match k.value.as_str() {
                "where" => selector.extend(self.selector(v, axes)?),
                "claim" => claim = Some(self.words(k, v)?),
                "source" => source = Some(self.words(k, v)?),
                "required" => {
                    required = v
                        .value
                        .as_bool()
                        .ok_or_else(|| self.src.at(v, "'required' must be true or false"))?;
                }
                _ => {
                    bounds.insert(k.value.clone(), self.bound(k, v)?);
                }
            }
        }
        if bounds.is_empty() {
            return Err(self
                .src
                .at(e, "an expectation must bound at least one metric"));
        }
        Ok(Expectation {
            selector,
            bounds,
            claim,
            source,
            required,
            line: e.referenced.line() as usize,
        })
    }

    /// The text of `claim:` or `source:` in an expectation.
    fn words(
        &self,
        k: &Spanned<String>,
        v: &Spanned<serde_json::Value>,
    ) -> Result<String, InputError> {
        match &v.value {
            serde_json::Value::String(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
            _ => Err(self
                .src
                .at(v, format!("'{}' must be a sentence in words", k.value))),
        }
    }

    /// `where`: axes (or `stack`) to a value, a list of values, or a comparison.
    fn selector(
        &self,
        v: &Spanned<serde_json::Value>,
        axes: &[String],
    ) -> Result<BTreeMap<String, Vec<String>>, InputError> {
        let map: BTreeMap<String, RawSelector> =
            serde_json::from_value(v.value.clone()).map_err(|_| {
                self.src.at(
                    v,
                    "where must map axes to a value, a list, or a comparison like \">=2\"",
                )
            })?;
        let mut selector = BTreeMap::new();
        for (axis, sel) in map {
            if axis != "stack" && !axes.contains(&axis) {
                return Err(self
                    .src
                    .at(v, format!("where names '{axis}', which is not an axis"))
                    .with_choices(axes.to_vec()));
            }
            let vals = match sel {
                RawSelector::One(s) => vec![s.to_string()],
                RawSelector::List(l) => l.iter().map(ToString::to_string).collect(),
            };
            selector.insert(axis, vals);
        }
        Ok(selector)
    }

    /// The bound of metric `k`: a number or a comparison, kept as written.
    fn bound(
        &self,
        k: &Spanned<String>,
        v: &Spanned<serde_json::Value>,
    ) -> Result<String, InputError> {
        match &v.value {
            serde_json::Value::String(s) => Ok(s.clone()),
            serde_json::Value::Number(n) => Ok(n.to_string()),
            _ => Err(self.src.at(
                v,
                format!(
                    "bound of '{}' must be a number or a comparison like \">0\"",
                    k.value
                ),
            )),
        }
    }

    /// Refuses a matrix with more than [`MAX_CELLS`] cells, or with a cell whose values
    /// give a stack a setting it cannot start with; both errors point at `whole`.
    fn check_cells(&self, m: &Matrix, whole: (usize, usize)) -> Result<(), InputError> {
        let count = count_cells(m, self.catalog);
        if count > MAX_CELLS {
            return Err(InputError::new(
                self.src.file,
                whole,
                format!("the matrix expands to {count} cells; at most {MAX_CELLS} are allowed"),
            ));
        }
        // Axes reach the stacks' settings through `${var}`: each cell's values must give
        // settings the stack can start with, or the run would fail at that cell's start.
        for cell in expand(m, self.catalog) {
            let eps = self.catalog.endpoints(&cell.stack).unwrap_or_default();
            if !eps.iter().any(|e| e == cell.endpoint()) {
                return Err(InputError::new(
                    self.src.file,
                    whole,
                    format!(
                        "stack {} has no endpoint '{}', and cell {} would measure it: exclude those cells (exclude: [{{stack: {}, endpoint: {}}}])",
                        cell.stack,
                        cell.endpoint(),
                        cell.label(),
                        cell.stack,
                        cell.endpoint()
                    ),
                )
                .with_choices(eps));
            }
            let mut vars = cell.axes;
            vars.insert("amount".into(), m.amount.to_string());
            self.catalog.check_variables(&cell.stack, &vars)?;
        }
        Ok(())
    }
}

fn check_top_keys(text: &str, path: &Path) -> Result<(), InputError> {
    #[derive(Deserialize)]
    struct Keys(SMap<serde::de::IgnoredAny>);
    let Ok(Keys(keys)) = serde_saphyr::from_str::<Keys>(text) else {
        return Ok(()); // the typed parse reports syntax errors with their location
    };
    for (k, _) in in_file_order(&keys) {
        if !KEYS.contains(&k.value.as_str()) {
            let src = Source { file: path, text };
            return Err(src
                .at(k, format!("unknown key '{}'", k.value))
                .with_choices(KEYS.iter().map(|s| s.to_string()).collect()));
        }
    }
    Ok(())
}

fn check_value(axis: &str, v: &str) -> Result<(), String> {
    match axis {
        "wait_ms" => v
            .parse::<u64>()
            .map(|_| ())
            .map_err(|_| format!("wait_ms must be a whole number of ms >= 0, got '{v}'")),
        "workers" | "replicas" => match v.parse::<u64>() {
            Ok(n) if (1..=256).contains(&n) => Ok(()),
            _ => Err(format!(
                "{axis} must be a whole number from 1 to 256, got '{v}'"
            )),
        },
        "delay_ms" => parse_delay(v).map(|_| ()),
        _ if v.is_empty() => Err(format!("axis '{axis}' has an empty value")),
        _ => Ok(()),
    }
}

/// Parses a delay: `N` → (N, N), `LO-HI` → (LO, HI) with LO ≤ HI.
pub fn parse_delay(s: &str) -> Result<(u64, u64), String> {
    let bad = || format!("delay_ms must be N or LO-HI milliseconds, got '{s}'");
    match s.split_once('-') {
        None => {
            let n = s.trim().parse::<u64>().map_err(|_| bad())?;
            Ok((n, n))
        }
        Some((lo, hi)) => {
            let lo = lo.trim().parse::<u64>().map_err(|_| bad())?;
            let hi = hi.trim().parse::<u64>().map_err(|_| bad())?;
            if lo > hi {
                return Err(format!(
                    "delay_ms range '{s}' is reversed (LO must be <= HI)"
                ));
            }
            Ok((lo, hi))
        }
    }
}

/// Parses `K/N` with 1 ≤ K ≤ N.
pub fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let (k, n) = s.split_once('/').ok_or("expected K/N, e.g. 2/4")?;
    let k: usize = k.trim().parse().map_err(|_| "K must be a whole number")?;
    let n: usize = n.trim().parse().map_err(|_| "N must be a whole number")?;
    if n == 0 || k == 0 || k > n {
        return Err(format!("need 1 <= K <= N, got {k}/{n}"));
    }
    Ok((k, n))
}

/// One shard of a matrix's cells, `K/N` on the command line (see [`shard`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// Which shard, from 1.
    pub k: usize,
    /// Of how many.
    pub n: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Shard, String> {
        parse_shard(s).map(|(k, n)| Shard { k, n })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.k, self.n)
    }
}

fn axis_values(axis: &Axis, stack: &str, catalog: &dyn Catalog) -> Vec<String> {
    match &axis.values {
        AxisValues::List(v) => v.clone(),
        AxisValues::AllEndpoints => catalog.endpoints(stack).unwrap_or_default(),
    }
}

fn count_cells(m: &Matrix, catalog: &dyn Catalog) -> usize {
    m.stacks
        .iter()
        .map(|s| {
            m.axes
                .iter()
                .map(|a| axis_values(a, s, catalog).len())
                .fold(1usize, |acc, n| acc.saturating_mul(n))
        })
        .fold(0usize, |acc, n| acc.saturating_add(n))
        .saturating_add(m.include.len())
}

fn matches(cell: &Cell, entry: &BTreeMap<String, String>) -> bool {
    entry.iter().all(|(k, v)| {
        if k == "stack" {
            &cell.stack == v
        } else {
            cell.axes.get(k) == Some(v)
        }
    })
}

/// Every cell of the matrix, in run order.
///
/// Per stack (in file order): the cartesian product of the axes, minus `exclude` entries
/// (an entry removes the cells matching all its keys), plus `include` entries with GitHub
/// Actions semantics (an entry extends every cell whose original axis values it does not
/// change; one that extends none becomes a cell of its own, taking the first value of any
/// axis it does not name). Run order: axes that recreate a service vary slowest, the one
/// that recreates the most services slowest of all (the catalog lists them dearest
/// first), the others follow in file order, so each restart happens once per value and
/// the expensive ones least often.
pub fn expand(m: &Matrix, catalog: &dyn Catalog) -> Vec<Cell> {
    let mut out = Vec::new();
    for stack in &m.stacks {
        let order = RunOrder::new(m, stack, catalog);
        let mut cells = order.product();
        cells.retain(|c| !m.exclude.iter().any(|e| matches(c, e)));
        for inc in &m.include {
            if inc.get("stack").is_none_or(|s| s == stack) {
                order.include(&mut cells, inc);
            }
        }
        // Stable sort by the restart axes only, so added cells join their group.
        cells.sort_by_key(|c| order.restart_key(c));
        out.extend(cells);
    }
    out
}

/// The axes of one stack's cells in run order, and the expansion steps that follow it.
struct RunOrder<'a> {
    stack: &'a str,
    catalog: &'a dyn Catalog,
    /// Axes that recreate a service, dearest first, then the others in file order.
    axes: Vec<&'a Axis>,
    /// Names of the axes that recreate a service.
    restart: BTreeSet<String>,
}

impl<'a> RunOrder<'a> {
    fn new(m: &'a Matrix, stack: &'a str, catalog: &'a dyn Catalog) -> Self {
        let by_cost = catalog.restart_variables(stack);
        let restart: BTreeSet<String> = by_cost.iter().cloned().collect();
        let mut axes: Vec<&Axis> = m
            .axes
            .iter()
            .filter(|a| restart.contains(&a.name))
            .collect();
        axes.sort_by_key(|a| by_cost.iter().position(|v| *v == a.name));
        axes.extend(m.axes.iter().filter(|a| !restart.contains(&a.name)));
        RunOrder {
            stack,
            catalog,
            axes,
            restart,
        }
    }

    fn values(&self, axis: &Axis) -> Vec<String> {
        axis_values(axis, self.stack, self.catalog)
    }

    /// The cartesian product of the axes, the first axis varying slowest.
    fn product(&self) -> Vec<Cell> {
        let mut cells = vec![Cell {
            stack: self.stack.to_string(),
            axes: BTreeMap::new(),
        }];
        for axis in &self.axes {
            let values = self.values(axis);
            let mut next = Vec::with_capacity(cells.len() * values.len());
            for c in &cells {
                for v in &values {
                    let mut c = c.clone();
                    c.axes.insert(axis.name.clone(), v.clone());
                    next.push(c);
                }
            }
            cells = next;
        }
        cells
    }

    /// Applies one include entry: it extends every cell whose axis values it does not
    /// change, or, when there is none, adds a cell of its own.
    fn include(&self, cells: &mut Vec<Cell>, inc: &BTreeMap<String, String>) {
        let mut extended = false;
        for c in cells.iter_mut() {
            // compatible: it changes none of the cell's original axis values
            let compatible = inc.iter().all(|(k, v)| {
                k == "stack" || !self.axes.iter().any(|a| a.name == *k) || c.axes.get(k) == Some(v)
            });
            if compatible {
                extend(c, inc);
                extended = true;
            }
        }
        if !extended {
            let c = self.included_cell(inc);
            if !cells.contains(&c) {
                cells.push(c);
            }
        }
    }

    /// The cell an include entry adds: its values, and the first value of every axis it
    /// does not name.
    fn included_cell(&self, inc: &BTreeMap<String, String>) -> Cell {
        let mut c = Cell {
            stack: self.stack.to_string(),
            axes: BTreeMap::new(),
        };
        for axis in &self.axes {
            if let Some(v) = self.values(axis).first() {
                c.axes.insert(axis.name.clone(), v.clone());
            }
        }
        extend(&mut c, inc);
        c
    }

    /// Where a cell sorts: by the position of its value on each restart axis, in order.
    fn restart_key(&self, c: &Cell) -> Vec<(usize, String)> {
        self.axes
            .iter()
            .filter(|a| self.restart.contains(&a.name))
            .map(|a| {
                let v = c.get(&a.name).unwrap_or("").to_string();
                let pos = self
                    .values(a)
                    .iter()
                    .position(|x| *x == v)
                    .unwrap_or(usize::MAX);
                (pos, v)
            })
            .collect()
    }
}

/// Sets a cell's axes to an include entry's values (all but its `stack`).
fn extend(c: &mut Cell, inc: &BTreeMap<String, String>) {
    for (k, v) in inc {
        if k != "stack" {
            c.axes.insert(k.clone(), v.clone());
        }
    }
}

/// How many times consecutive cells differ in a restart variable of the same stack.
pub fn restarts(cells: &[Cell], catalog: &dyn Catalog) -> usize {
    cells
        .windows(2)
        .filter(|w| {
            w[0].stack == w[1].stack
                && catalog
                    .restart_variables(&w[1].stack)
                    .iter()
                    .any(|v| w[0].get(v) != w[1].get(v))
        })
        .count()
}

/// Slice `k` of `n` (1-based) of cells in run order by count: contiguous chunks whose
/// sizes differ by at most one, so the slices partition the cells exactly. Only the
/// count-based figures of `plan --shards` use it now; `--shard` and `--parallel` balance
/// by estimated time (see [`crate::plan::shard`]).
pub fn shard(cells: &[Cell], k: usize, n: usize) -> Vec<Cell> {
    assert!(n >= 1 && (1..=n).contains(&k), "shard {k}/{n}");
    let len = cells.len();
    let start = (k - 1) * len / n;
    let end = k * len / n;
    cells[start..end].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake;
    impl Catalog for Fake {
        fn stacks(&self) -> Vec<String> {
            vec!["s1".into(), "s2".into()]
        }
        fn endpoints(&self, stack: &str) -> Option<Vec<String>> {
            match stack {
                "s1" => Some(vec!["a".into(), "b".into(), "c".into()]),
                "s2" => Some(vec!["a".into(), "z".into()]),
                _ => None,
            }
        }
        fn variables(&self, _: &str) -> Vec<(String, Option<String>)> {
            vec![
                ("workers".into(), Some("3".into())),
                ("delay_ms".into(), Some(String::new())),
                ("isolation".into(), Some("rc".into())),
                ("amount".into(), None),
            ]
        }
        fn restart_variables(&self, _: &str) -> Vec<String> {
            vec!["workers".into(), "isolation".into()]
        }
    }

    fn p(text: &str) -> Result<Matrix, InputError> {
        parse(text, Path::new("m.yaml"), &Fake)
    }

    const BASE: &str =
        "name: t\nstacks: [s1]\naxes:\n  delay_ms: [\"200\"]\n  workers: [1, 4]\n  endpoint: all\n";

    #[test]
    fn expands_in_restart_order() {
        let m = p(BASE).unwrap();
        assert_eq!((m.requests, m.amount, m.repetitions), (8, 100, 3));
        let cells = expand(&m, &Fake);
        assert_eq!(cells.len(), 6);
        // workers (a restart axis) varies slowest although it comes second in the file
        let w: Vec<_> = cells.iter().map(|c| c.get("workers").unwrap()).collect();
        assert_eq!(w, ["1", "1", "1", "4", "4", "4"]);
        assert_eq!(cells[0].endpoint(), "a");
        assert_eq!(cells[0].wait_ms(), 0, "wait_ms defaults to 0");
        assert_eq!(restarts(&cells, &Fake), 1);
    }

    #[test]
    fn route_is_read_and_an_unknown_one_is_located() {
        assert_eq!(p(BASE).unwrap().route, None);
        let m = p(&format!("{BASE}route: direct\n")).unwrap();
        assert_eq!(m.route, Some(crate::input::route::RouteChoice::Direct));
        let e = p(&format!("{BASE}route: proxy\n")).unwrap_err().to_string();
        assert!(
            e.contains("m.yaml:7:") && e.contains("unknown route 'proxy'"),
            "{e}"
        );
    }

    #[test]
    fn dearest_restart_axis_varies_slowest() {
        // the catalog ranks workers dearer than isolation: file order does not matter
        let m = p("name: t\nstacks: [s1]\naxes:\n  isolation: [x, y]\n  workers: [1, 4]\n  endpoint: [a]\n").unwrap();
        let cells = expand(&m, &Fake);
        let order: Vec<String> = cells
            .iter()
            .map(|c| {
                format!(
                    "{}{}",
                    c.get("workers").unwrap(),
                    c.get("isolation").unwrap()
                )
            })
            .collect();
        assert_eq!(order, ["1x", "1y", "4x", "4y"]);
        assert_eq!(restarts(&cells, &Fake), 3);
    }

    #[test]
    fn all_endpoints_per_stack() {
        let m = p("name: t\nstacks: [s1, s2]\naxes: {endpoint: all}\n").unwrap();
        let cells = expand(&m, &Fake);
        let eps: Vec<_> = cells
            .iter()
            .map(|c| format!("{}:{}", c.stack, c.endpoint()))
            .collect();
        assert_eq!(eps, ["s1:a", "s1:b", "s1:c", "s2:a", "s2:z"]);
    }

    #[test]
    fn numbers_a_run_cannot_hold_are_refused_where_they_are_written() {
        for (key, bad) in [
            ("repetitions", "4294967295"),
            ("requests", "100000"),
            ("amount", "0"),
            ("timeout_ms", "86400000"),
        ] {
            let text = format!("{BASE}{key}: {bad}\n");
            let e = p(&text).unwrap_err().to_string();
            assert!(
                e.contains(&format!("{key} must be a whole number from 1 to")),
                "{e}"
            );
            let line = BASE.lines().count() + 1;
            assert!(e.contains(&format!(":{line}:")), "located: {e}");
        }
        let ok = format!("{BASE}repetitions: 10000\nrequests: 1024\n");
        p(&ok).unwrap();
    }

    #[test]
    fn include_cannot_set_what_racy_matrix_provides() {
        // `amount` is a variable the stacks read, so only the rule refuses it
        let text = format!("{BASE}include:\n  - {{workers: 4, amount: 5}}\n");
        let e = p(&text).unwrap_err().to_string();
        assert!(e.contains("'amount' is set by racy-matrix itself"), "{e}");
        let line = BASE.lines().count() + 2;
        assert!(e.contains(&format!(":{line}:")), "located: {e}");
        let text = format!("{BASE}include:\n  - {{db_password: hunter2secret}}\n");
        let e = p(&text).unwrap_err().to_string();
        assert!(
            e.contains("'db_password' is set by racy-matrix itself"),
            "{e}"
        );
        assert!(!e.contains("hunter2secret"), "{e}");
    }

    #[test]
    fn exclude_and_include() {
        let text = format!(
            "{BASE}exclude:\n  - {{workers: 4, endpoint: b}}\ninclude:\n  - {{workers: 4, isolation: serializable}}\n  - {{workers: 8, endpoint: a}}\n"
        );
        let m = p(&text).unwrap();
        let cells = expand(&m, &Fake);
        assert!(
            !cells
                .iter()
                .any(|c| c.get("workers") == Some("4") && c.endpoint() == "b")
        );
        // include extends the matching cells with a new key...
        let four: Vec<_> = cells
            .iter()
            .filter(|c| c.get("workers") == Some("4"))
            .collect();
        assert_eq!(four.len(), 2);
        assert!(
            four.iter()
                .all(|c| c.get("isolation") == Some("serializable"))
        );
        assert!(
            cells
                .iter()
                .filter(|c| c.get("workers") == Some("1"))
                .all(|c| c.get("isolation").is_none())
        );
        // ...and adds a cell when it would change an original value
        let eight: Vec<_> = cells
            .iter()
            .filter(|c| c.get("workers") == Some("8"))
            .collect();
        assert_eq!(eight.len(), 1);
        assert_eq!(eight[0].get("delay_ms"), Some("200"));
        assert_eq!(cells.len(), 3 + 2 + 1);
        assert_eq!(
            cells.last().unwrap().get("workers"),
            Some("8"),
            "grouped by restart axes"
        );
    }

    #[test]
    fn shards_partition_the_cells() {
        let m = p("name: t\nstacks: [s1, s2]\naxes:\n  workers: [1, 2, 3]\n  endpoint: all\n  wait_ms: [0, 5, 9]\n").unwrap();
        let cells = expand(&m, &Fake);
        for n in 1..=cells.len() + 2 {
            let mut joined = Vec::new();
            let mut sizes = Vec::new();
            for k in 1..=n {
                let s = shard(&cells, k, n);
                sizes.push(s.len());
                joined.extend(s);
            }
            assert_eq!(joined, cells, "n = {n}: no overlap, no miss, same order");
            let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            assert!(hi - lo <= 1, "n = {n}: balanced {sizes:?}");
        }
        assert_eq!(parse_shard("2/4"), Ok((2, 4)));
        assert!(parse_shard("0/4").is_err());
        assert!(parse_shard("5/4").is_err());
        assert!(parse_shard("x").is_err());
    }

    #[test]
    fn on_and_off_stay_words() {
        let m = p("name: t\nstacks: [s1]\naxes:\n  isolation: [ON, OFF, yes]\n").unwrap();
        let cells = expand(&m, &Fake);
        let vals: Vec<_> = cells.iter().map(|c| c.get("isolation").unwrap()).collect();
        assert!(
            vals.contains(&"ON") && vals.contains(&"OFF") && vals.contains(&"yes"),
            "{vals:?}"
        );
    }

    #[test]
    fn delays() {
        assert_eq!(parse_delay("200"), Ok((200, 200)));
        assert_eq!(parse_delay("3000-10000"), Ok((3000, 10000)));
        assert!(parse_delay("10-5").unwrap_err().contains("reversed"));
        assert!(parse_delay("-5").is_err());
        assert!(parse_delay("abc").is_err());
    }

    fn err(text: &str) -> InputError {
        p(text).unwrap_err()
    }

    #[test]
    fn an_endpoint_one_stack_lacks_is_excluded_there() {
        // b is s1's only: without an exclude, s2's cell with b is refused, saying how
        let two = "name: t\nstacks: [s1, s2]\naxes:\n  endpoint: [a, b]\n";
        let e = err(two);
        assert!(
            e.message.starts_with(
                "stack s2 has no endpoint 'b', and cell s2 b wait_ms=0 would measure it: exclude those cells"
            ),
            "{e}"
        );
        assert_eq!(e.choices, ["a", "z"]);
        let m = p(&format!("{two}exclude:\n  - {{stack: s2, endpoint: b}}\n")).unwrap();
        assert_eq!(expand(&m, &Fake).len(), 3);
        // an endpoint no stack has is a typo, at its value
        let e = err("name: t\nstacks: [s1, s2]\naxes:\n  endpoint: [a, y]\n");
        assert_eq!((e.line, e.column), (4, 17), "{e}");
        assert!(
            e.message
                .starts_with("unknown endpoint 'y' for any of the stacks s1, s2")
        );
        assert_eq!(e.choices, ["a", "b", "c", "z"]);
    }

    #[test]
    fn errors_point_at_the_value() {
        let e = err("name: t\nstacks: [s1]\naxes:\n  endpoint: [a, nope]\n");
        assert_eq!((e.line, e.column), (4, 17), "{e}");
        assert_eq!(e.choices, ["a", "b", "c"]);
        assert!(
            e.to_string()
                .starts_with("m.yaml:4:17: unknown endpoint 'nope'"),
            "{e}"
        );

        let e = err("name: t\nstacks: [s1, s9]\n");
        assert_eq!((e.line, e.column), (2, 14), "{e}");
        assert_eq!(e.choices, ["s1", "s2"]);

        let e = err("name: t\nstacks: [s1]\nrepeats: 3\n");
        assert_eq!(e.line, 3, "{e}");
        assert!(e.message.contains("unknown key 'repeats'"));
        assert!(e.choices.contains(&"repetitions".to_string()));

        let e = err("name: t\nstacks: [s1]\naxes:\n  workers: []\n");
        assert_eq!(e.line, 4, "{e}");
        assert!(e.message.contains("no values"), "{e}");

        let e = err("name: t\nstacks: [s1]\naxes:\n  delay_ms: [\"9-3\"]\n");
        assert!(e.message.contains("reversed"), "{e}");
        assert_eq!(e.line, 4);

        let e = err("name: t\nstacks: [s1]\naxes:\n  workers: [0]\n");
        assert!(e.message.contains("1 to 256"), "{e}");

        let e = err("name: t\nstacks: [s1]\naxes:\n  wait_ms: [-1]\n");
        assert!(e.message.contains("wait_ms"), "{e}");

        let e = err("name: t\nstacks: [s1]\naxes:\n  colour: [red]\n");
        assert!(e.message.contains("not used by any listed stack"), "{e}");
        assert!(e.choices.contains(&"workers".to_string()));

        let e = err("name: t\nstacks: [s1]\naxes:\n  workers: [1, 1]\n");
        assert!(e.message.contains("twice"), "{e}");

        let e = err("name: t\nstacks: [s1]\nrequests: many\n");
        assert_eq!(e.line, 3, "{e}");

        let e = err("name: t\nstacks: [s1\n");
        assert!(e.line >= 2, "{e}");

        let e = err("name: t\nstacks: [s1]\nexclude: [{colour: red}]\n");
        assert!(e.message.contains("not an axis"), "{e}");

        let e = err("name: t\nstacks: [s1]\nrequests: 0\n");
        assert!(e.message.contains("from 1 to 1024, got 0"), "{e}");
    }

    #[test]
    fn huge_and_hostile_input_is_refused() {
        let values: Vec<String> = (1..=100).map(|i| i.to_string()).collect();
        let list = values.join(", ");
        let text = format!(
            "name: t\nstacks: [s1]\naxes:\n  wait_ms: [{list}]\n  delay_ms: [{list}]\n  isolation: [{list}]\n"
        );
        let e = err(&text);
        assert!(e.message.contains("3000000 cells"), "{e}");

        let mut bomb = String::from("name: t\nstacks: [s1]\nx0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1]\n");
        for i in 1..30 {
            let prev = i - 1;
            bomb.push_str(&format!(
                "x{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
            ));
        }
        let e = err(&bomb);
        assert!(e.line >= 1, "{e}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(400))]

        /// Random edits of a valid matrix never panic the parser; every error is located
        /// inside the file.
        #[test]
        fn edited_matrices_never_panic(
            edits in proptest::collection::vec((0usize..400, proptest::num::u8::ANY, 0u8..3), 1..10)
        ) {
            let mut bytes = format!("{BASE}requests: 4\nexclude: [{{workers: 4}}]\n").into_bytes();
            for (at, byte, kind) in edits {
                let at = at % (bytes.len() + 1);
                match kind {
                    0 => bytes.insert(at, byte),
                    1 if at < bytes.len() => { bytes.remove(at); }
                    _ if at < bytes.len() => bytes[at] = byte,
                    _ => {}
                }
            }
            if let Ok(text) = String::from_utf8(bytes)
                && let Err(e) = p(&text)
            {
                let lines = text.lines().count().max(1) + 1;
                proptest::prop_assert!(e.line <= lines, "{e} (file has {lines} lines)");
            }
        }

        /// Arbitrary text never panics the parser.
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
            let _ = p(&text);
        }
    }

    #[test]
    fn expectations_are_parsed() {
        let text = format!(
            "{BASE}expect:\n  - where: {{workers: 1}}\n    lost_updates: 0\n  - where: {{workers: [4], endpoint: a}}\n    lost_rate: \">0\"\n"
        );
        let m = p(&text).unwrap();
        assert_eq!(m.expect.len(), 2);
        assert_eq!(m.expect[0].selector["workers"], ["1"]);
        assert_eq!(m.expect[0].bounds["lost_updates"], "0");
        assert_eq!(m.expect[1].bounds["lost_rate"], ">0");
        assert_eq!(m.expect[1].line, 10);
        assert_eq!((&m.expect[0].claim, &m.expect[0].source), (&None, &None));
        let m = p(&format!(
            "{BASE}expect:\n  - where: {{workers: 1}}\n    claim: one worker is safe\n    source: seed 001\n    lost_updates: 0\n"
        ))
        .unwrap();
        let e = &m.expect[0];
        assert_eq!(e.claim.as_deref(), Some("one worker is safe"));
        assert_eq!(e.source.as_deref(), Some("seed 001"));
        assert_eq!(e.bounds.len(), 1, "claim and source are not bounds");
        assert!(e.required);
        let m = p(&format!(
            "{BASE}expect:\n  - where: {{workers: 1}}\n    required: false\n    lost_updates: 0\n"
        ))
        .unwrap();
        assert!(!m.expect[0].required);
        assert!(m.expect[0].bounds.len() == 1);
        let e = err(&format!(
            "{BASE}expect:\n  - where: {{workers: 1}}\n    required: maybe\n    lost_updates: 0\n"
        ));
        assert!(
            e.message.contains("'required' must be true or false"),
            "{e}"
        );
        let e = err(&format!(
            "{BASE}expect:\n  - where: {{workers: 1}}\n    claim: 3\n    lost_updates: 0\n"
        ));
        assert!(e.message.contains("'claim' must be a sentence"), "{e}");
        assert_eq!(e.line, 9, "{e}");
        let e = err(&format!(
            "{BASE}expect:\n  - where: {{colour: 1}}\n    lost_updates: 0\n"
        ));
        assert!(e.message.contains("not an axis"), "{e}");
    }
}
