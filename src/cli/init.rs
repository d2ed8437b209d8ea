//! `racy-matrix init`: writes the drafted `racy.yaml` of a compose file into the stacks
//! directory and says what to do next (the drafting is `input::init`'s).

use std::path::Path;

use anyhow::{Context, anyhow};

use crate::cli::outcome::{Failure, Verdict};
use crate::input::init::{RACY_FILE, draft};
use crate::input::source::InputError;

/// `racy-matrix init`: writes `STACKS/NAME/racy.yaml` for `compose_file` (NAME defaults
/// to the compose file's directory name), refusing to overwrite one unless `force`, and
/// prints what it guessed and what to do next.
pub fn command(
    compose_file: &Path,
    name: Option<&str>,
    stacks: &Path,
    force: bool,
) -> Result<Verdict, Failure> {
    let name = match name {
        Some(n) => checked_name(n)?,
        None => default_name(compose_file)?,
    };
    let dir = stacks.join(&name);
    let file = dir.join(RACY_FILE);
    if file.exists() && !force {
        return Err(Failure::Input(anyhow!(
            "{} already exists; racy-matrix init does not overwrite it (--force does)",
            file.display()
        )));
    }
    let own = dir.join("compose.yaml");
    if own.exists() {
        return Err(Failure::Input(anyhow!(
            "{} exists: stack {name} is a compose.yaml stack, and a stack directory holds either that or {RACY_FILE}; choose another --name",
            own.display()
        )));
    }
    let draft = draft(compose_file, &dir)?;
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("creating {}", dir.display()))
        .map_err(Failure::Local)?;
    crate::store::results::write_atomically(&file, draft.text.as_bytes())
        .map_err(Failure::Local)?;
    let stacks_flag = if stacks == Path::new("stacks") {
        String::new()
    } else {
        format!(" --stacks {}", stacks.display())
    };
    println!("wrote {}", file.display());
    for line in &draft.summary {
        println!("  {line}");
    }
    println!("next:");
    println!("  edit {} (the TODOs)", file.display());
    println!(
        "  racy-matrix check {name}{stacks_flag}   # brings it up once, one request per endpoint"
    );
    println!(
        "  racy-matrix plan MATRIX   # a matrix naming stack {name}, e.g. a copy of matrices/quick.yaml"
    );
    println!("  racy-matrix run MATRIX");
    Ok(Verdict::Ok)
}

/// A `--name` as given, when it can name a stack directory.
fn checked_name(name: &str) -> Result<String, Failure> {
    let ok = !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(name.to_string())
    } else {
        Err(Failure::Input(anyhow!(
            "--name '{name}' cannot name a stack directory (letters, digits, - _ .)"
        )))
    }
}

/// The compose file's directory name, lowercased, other than `[a-z0-9-_]` made `-`.
fn default_name(compose_file: &Path) -> Result<String, Failure> {
    let real = compose_file.canonicalize().map_err(|e| {
        InputError::new(
            compose_file,
            (0, 0),
            format!("cannot read the compose file: {e}"),
        )
    })?;
    let dir_name = real
        .parent()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let name: String = dir_name
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '-' | '_' => c,
            _ => '-',
        })
        .collect();
    if name.trim_matches('-').is_empty() {
        return Err(Failure::Input(anyhow!(
            "cannot name a stack after the directory of {}; give --name",
            compose_file.display()
        )));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::input::init::tests::Fixture;

    const FLASK: &str = "\
services:
  db:
    image: postgres
  web:
    build: .
    ports: [\"8000:8000\"]
    depends_on: [db]
";

    #[test]
    fn an_existing_racy_yaml_is_kept_without_force() {
        let fx = Fixture::new("force");
        let compose = fx.write("My App/docker-compose.yml", FLASK);
        fx.write("My App/.env", "POSTGRES_PASSWORD=x\n");
        let stacks = fx.0.join("stacks");
        let written = stacks.join("my-app").join(RACY_FILE);
        assert_eq!(
            command(&compose, None, &stacks, false).unwrap(),
            Verdict::Ok
        );
        std::fs::write(&written, "mine\n").unwrap();
        let e = command(&compose, None, &stacks, false).unwrap_err();
        assert!(matches!(e, Failure::Input(_)));
        assert!(
            e.to_string().contains(&written.display().to_string()),
            "{e}"
        );
        assert!(e.to_string().contains("--force"), "{e}");
        assert_eq!(std::fs::read_to_string(&written).unwrap(), "mine\n");
        command(&compose, None, &stacks, true).unwrap();
        assert!(
            std::fs::read_to_string(&written)
                .unwrap()
                .contains("x-racy:")
        );
    }
}
