//! Secrets kept out of every output: the one [`Redactor`] a stack instance's secrets are
//! collected into, which every path that shows or stores text the engine, a database or
//! a service wrote passes that text through; and [`url`], which hides the password of a
//! database URL where the URL is made.

use std::collections::BTreeMap;

use crate::input::stack::Driver;

/// What replaces a secret.
const MASK: &str = "****";

/// The secrets of one stack instance, collected once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Redactor {
    /// Longest first, so that a secret inside another is not replaced first.
    secrets: Vec<String>,
}

impl Redactor {
    /// A redactor for `secrets`. Those shorter than 4 characters are left out: too short
    /// to tell from ordinary words (the URLs that carry them are hidden by [`url`]).
    pub fn new<S: Into<String>>(secrets: impl IntoIterator<Item = S>) -> Redactor {
        let mut secrets: Vec<String> = secrets
            .into_iter()
            .map(Into::into)
            .filter(|s| s.len() >= 4)
            .collect();
        secrets.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        secrets.dedup();
        Redactor { secrets }
    }

    /// The secrets of a stack instance running with `vars`: the password racy-matrix
    /// gives it (`db_password`) and the one its database takes, which a stack may read
    /// from its own environment instead; `driver` is the instance's interpolated driver,
    /// when it could be made.
    pub fn of_instance(vars: &BTreeMap<String, String>, driver: Option<&Driver>) -> Redactor {
        let given = vars.get("db_password").cloned();
        let taken = driver.map(|d| d.database.password.clone());
        Redactor::new(given.into_iter().chain(taken))
    }

    /// `text` with every secret replaced by `****`.
    pub fn clean(&self, text: &str) -> String {
        self.secrets
            .iter()
            .fold(text.to_string(), |t, s| t.replace(s.as_str(), MASK))
    }
}

/// The URL with its password replaced by `****`, for printing.
pub fn url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    match (rest.find(':'), rest.find('@')) {
        (Some(colon), Some(at)) if colon < at => {
            format!(
                "{}{}:{MASK}{}",
                &url[..scheme_end + 3],
                &rest[..colon],
                &rest[at..]
            )
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_replaced_wherever_they_stand() {
        let r = Redactor::new(["s3cretPW"]);
        assert_eq!(
            r.clean("auth for s3cretPW failed; url x:s3cretPW@h"),
            "auth for **** failed; url x:****@h"
        );
        assert_eq!(
            Redactor::new(["rac"]).clean("racy-matrix"),
            "racy-matrix",
            "too short to replace"
        );
        // a secret inside a longer one: the longer goes first, nothing of it is left
        let r = Redactor::new(["hunter2", "xhunter2x"]);
        assert_eq!(r.clean("pw=xhunter2x or hunter2"), "pw=**** or ****");
    }

    #[test]
    fn an_instance_hides_the_given_and_the_taken_password() {
        let vars = BTreeMap::from([("db_password".to_string(), "given-pw-1".to_string())]);
        let r = Redactor::of_instance(&vars, None);
        assert_eq!(r.clean("given-pw-1"), "****");
        assert_eq!(
            Redactor::of_instance(&BTreeMap::new(), None),
            Redactor::default()
        );
    }

    #[test]
    fn a_url_keeps_all_but_its_password() {
        assert_eq!(
            url("mysql://racy:s3cr%3At%40x@127.0.0.1:3306/racy"),
            "mysql://racy:****@127.0.0.1:3306/racy"
        );
        assert_eq!(
            url("sqlite:///data/db.sqlite3"),
            "sqlite:///data/db.sqlite3"
        );
    }
}
